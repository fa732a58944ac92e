"""Benchmarks: `make bench` (or `python -m bench`). Figures are ratios against a
baseline measured in the same run, because this machine is shared and noisy."""
