"""`python -m bench.load` (``make load``): see bench/load/__init__.py."""

from __future__ import annotations

import argparse
import sys

from bench.load import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description="AgentHQ's load test (locust)")
    parser.add_argument("--users", type=int, default=100, help="concurrent users (default 100)")
    parser.add_argument("--spawn-rate", type=float, default=2,
                        help="users started per second (default 2: all 100 in 50 s, then 70 s all together)")
    parser.add_argument("--seconds", type=int, default=120,
                        help="how long the users act (default 120); runs in flight then finish")
    parser.add_argument("--url", help="a running REST API (…/v1) instead of a fresh local cloud")
    parser.add_argument("--ws-url", help="its WebSocket API (default ws://127.0.0.1:3001/v1)")
    parser.add_argument("--cloud-arg", action="append", default=[],
                        help="an argument for the local cloud it starts (python -m local …), e.g. --lambda-concurrency=8")
    args = parser.parse_args(argv)
    result = run(users=args.users, spawn_rate=args.spawn_rate, seconds=args.seconds, url=args.url,
                 ws_url=args.ws_url, cloud_args=tuple(args.cloud_arg))
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
