"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess  # nosec B404  # runs this interpreter on the benchmark's own code
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def median_seconds(fn: Callable[[], object], n: int, warmup: int = 0) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def fresh_process_seconds(code: str, n: int, env: dict[str, str] | None = None) -> float:
    """Median wall time of ``python -c code`` in fresh processes."""
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True,  # nosec B603  # fixed argv, no shell
                       env={**os.environ, **(env or {})}, cwd=ROOT)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def fresh_process_cpu_seconds(codes: dict[str, str], n: int, env: dict[str, str] | None = None) -> dict[str, float]:
    """Median CPU time (user + system) of ``python -c code`` in fresh processes,
    for each of ``codes``, their samples interleaved: CPU time, unlike wall
    time, does not grow while other processes hold this shared machine's
    cores, and interleaving spreads what drift remains over all of them."""
    samples: dict[str, list[float]] = {name: [] for name in codes}
    for _ in range(n):
        for name, code in codes.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", code], check=True,  # nosec B603  # fixed argv, no shell
                           env={**os.environ, **(env or {})}, cwd=ROOT)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            samples[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {name: statistics.median(values) for name, values in samples.items()}


def print_table(title: str, rows: list[tuple[str, float, str]]) -> None:
    print(f"\n{title}")
    width = max(len(r[0]) for r in rows)
    for name, ratio, detail in rows:
        print(f"  {name.ljust(width)}  {ratio:8.2f}x   {detail}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def print_rows(title: str, rows: list[tuple[str, str, str]]) -> None:
    """A table of figures that are not ratios: (name, value, detail)."""
    print(f"\n{title}")
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    for name, value, detail in rows:
        print(f"  {name.ljust(width)}  {value.rjust(value_width)}   {detail}".rstrip())
