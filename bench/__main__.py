"""`python -m bench`: run every benchmark on a fresh in-memory local cloud."""

from __future__ import annotations

import argparse
import sys

from local.cloud import LocalCloud, LocalCloudConfig


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("-n", type=int, default=300, help="samples per warm measurement")
    parser.add_argument("--imports", type=int, default=5, help="fresh processes per import measurement")
    args = parser.parse_args()
    sys.path.insert(0, "layers/common")
    from bench import handlers

    with LocalCloud(LocalCloudConfig(rest_port=0, data_dir=None)) as cloud:
        print("AgentHQ benchmarks (figures are ratios to a baseline measured in this run)")
        handlers.run(cloud, n=args.n, imports=args.imports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
