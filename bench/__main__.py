"""`python -m bench`: run every benchmark on a fresh in-memory local cloud."""

from __future__ import annotations

import argparse
import sys

from local.cloud import LocalCloud, LocalCloudConfig

BENCHMARKS = ("handlers", "runs", "cost_control", "memory", "live", "live_flood", "sessions", "webhooks")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", choices=BENCHMARKS, help="run one benchmark (default: all)")
    parser.add_argument("-n", type=int, default=300, help="samples per warm measurement")
    parser.add_argument("--imports", type=int, default=5, help="fresh processes per import measurement")
    parser.add_argument("--runs", type=int, default=3, help="timed agent runs (after one accounting run)")
    args = parser.parse_args()
    sys.path.insert(0, "layers/common")
    from bench import cost_control, handlers, live, live_flood, memory, runs, sessions, webhooks

    selected = [args.only] if args.only else list(BENCHMARKS)
    with LocalCloud(LocalCloudConfig(rest_port=0, ws_port=0, data_dir=None)) as cloud:
        print("AgentHQ benchmarks (figures are ratios to a baseline measured in this run)")
        if "handlers" in selected:
            handlers.run(cloud, n=args.n, imports=args.imports)
        if "runs" in selected:
            runs.run(cloud, runs=args.runs, getitem_samples=min(args.n, 100))
        if "cost_control" in selected:
            cost_control.run(cloud, samples=max(100, args.n))
        if "memory" in selected:
            memory.run(cloud)
        if "live" in selected:
            live.run(cloud)
        if "live_flood" in selected:
            live_flood.run(cloud)
        if "sessions" in selected:
            sessions.run(cloud)
        if "webhooks" in selected:
            webhooks.run(cloud)
    return 0


if __name__ == "__main__":
    sys.exit(main())
