"""`make dev`: run AgentHQ on the local cloud until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path

from local.cloud import DATA_DIR, LocalCloud, LocalCloudConfig
from local.lambda_runtime import DEFAULT_CONCURRENCY

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"
#: Variables of the process the local cloud hands on to every function (as a stack parameter would on AWS).
PASSED_TO_FUNCTIONS = ("SENTRY_DSN",)


def load_env_file(path: Path = ENV_FILE, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set the ``NAME=value`` lines of the checkout's ``.env`` (see .env.example) that the
    environment does not set already (what you export wins). Blank lines and ``#`` comments are
    skipped; ``export`` and quotes around the value are allowed. Returns the names it set."""
    if environ is None:
        environ = os.environ
    if not path.exists():
        return []
    added = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.isidentifier():
            raise SystemExit(f"error: {path}:{number}: expected NAME=value, found {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if name not in environ:
            environ[name] = value
            added.append(name)
    return added


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("AGENTHQ_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("AGENTHQ_PORT", "3000")),
                        help="REST API port (default 3000, env AGENTHQ_PORT)")
    parser.add_argument("--ws-port", type=int, default=int(os.environ.get("AGENTHQ_WS_PORT", "3001")),
                        help="WebSocket API port (default 3001, env AGENTHQ_WS_PORT)")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("AGENTHQ_DATA_DIR", DATA_DIR)),
                        help="where DynamoDB Local keeps its data (default .data/)")
    parser.add_argument("--in-memory", action="store_true", help="keep no data after exit")
    parser.add_argument("--log-level", default=os.environ.get("AGENTHQ_LOG_LEVEL", "WARNING"))
    parser.add_argument("--in-process", action="store_true",
                        help="run every handler in this process, on threads (no worker processes; a handler past "
                             "its timeout is not stopped)")
    parser.add_argument("--lambda-concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help=f"worker processes per function (default {DEFAULT_CONCURRENCY}; "
                             "ReservedConcurrentExecutions wins)")
    parser.add_argument("--profile-dir", type=Path, default=os.environ.get("AGENTHQ_PROFILE_DIR") or None,
                        help="write a cProfile of every invocation there (python -m pstats to read them)")
    parser.add_argument("--model-latency", type=float,
                        default=float(os.environ.get("AGENTHQ_MODEL_LATENCY_SECONDS", "0")),
                        help="seconds the offline model takes per call, as Claude's take seconds (default 0, env "
                             "AGENTHQ_MODEL_LATENCY_SECONDS)")
    parser.add_argument("--model-tokens-per-second", type=float,
                        default=float(os.environ.get("AGENTHQ_MODEL_TOKENS_PER_SECOND", "0")),
                        help="the rate the offline model streams its output at (default 0: all at once after the "
                             "latency; env AGENTHQ_MODEL_TOKENS_PER_SECOND)")
    parser.add_argument("--require-verified-email", action="store_true",
                        default=os.environ.get("AGENTHQ_REQUIRE_VERIFIED_EMAIL", "") == "true",
                        help="a signup's workspace launches runs only once the link mailed to the mailbox folder is "
                             "used (RequireVerifiedEmail, on by default on AWS; env AGENTHQ_REQUIRE_VERIFIED_EMAIL=true)")
    parser.add_argument("--no-iam", action="store_true",
                        help="do not check the functions' AWS calls against their IAM policies (AWS always does)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    load_env_file()
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("local").setLevel(args.log_level.upper())  # DEBUG shows every IAM decision (local.iam)
    config = LocalCloudConfig(
        host=args.host,
        rest_port=args.port,
        ws_port=args.ws_port,
        data_dir=None if args.in_memory else args.data_dir,
        log_level=args.log_level.upper(),
        anthropic_api_key=os.environ.get("ANTHROPIC_API_KEY") or None,
        model_latency_seconds=args.model_latency,
        model_tokens_per_second=args.model_tokens_per_second,
        iam=not args.no_iam,
        environment={name: os.environ[name] for name in PASSED_TO_FUNCTIONS if os.environ.get(name)},
        lambda_workers=not args.in_process,
        lambda_concurrency=args.lambda_concurrency,
        profile_dir=str(args.profile_dir.resolve()) if args.profile_dir else None,
        require_verified_email=args.require_verified_email,
    )
    if config.profile_dir:
        Path(config.profile_dir).mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    started = time.monotonic()
    print("Starting the AgentHQ local cloud ...", flush=True)
    cloud = LocalCloud(config)
    try:
        cloud.start()
    except Exception as exc:  # a clear line, not a traceback, for a newcomer
        print(f"error: the local cloud could not start: {exc}", file=sys.stderr)
        return 1
    try:
        print(cloud.banner(time.monotonic() - started), flush=True)
        stop.wait()
        print("\nStopping ...", flush=True)
    finally:
        cloud.stop()
    print("Stopped. Data is kept in", config.data_dir or "(memory: discarded)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
