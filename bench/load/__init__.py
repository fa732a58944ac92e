"""The load test (``make load``, ``python -m bench.load``): locust, headless, bounded in users and time.

By default it starts a fresh local cloud of its own (``python -m local --in-memory`` on free loopback
ports, its output in ``.artifacts/load/cloud.log``) and stops it afterwards, so figures never depend on
what ``make dev`` holds; ``--url``/``--ws-url`` aim it at a local cloud (or a stack) already running
instead. Locust runs in a process of its own (it patches the standard library with gevent). The users
are in ``bench/load/users.py``. It prints, per request kind: requests, errors, throughput, p50, p95,
p99; the 429s that documented throttles answered (each retried after ``Retry-After``, as a real client
does: not errors); and the total error count — and exits 1 if there was any error.

Never part of ``make test`` (a smoke test runs it for a few seconds with a handful of users).
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess  # nosec B404  # starts this interpreter on the local cloud and on locust
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / ".artifacts" / "load"
USERS_FILE = Path(__file__).resolve().parent / "users.py"


@dataclass
class Row:
    kind: str  # "POST /auth/signup", "WS run: launch → end", ...
    requests: int
    errors: int
    rps: float
    p50: float  # ms
    p95: float
    p99: float


@dataclass
class Result:
    users: int
    seconds: float
    spawn_rate: float = 0.0
    rows: list[Row] = field(default_factory=list)  # request kinds (the 429s a client retried excluded)
    throttled: list[Row] = field(default_factory=list)  # 429s answered by documented throttles, retried
    total: Row | None = None
    failures: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, error, occurrences)

    @property
    def errors(self) -> int:
        return sum(row.errors for row in self.rows + self.throttled)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCloudProcess:
    """``python -m local --in-memory`` on free ports, as a child process, until stopped."""

    def __init__(self, log_path: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.rest_port, self.ws_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.rest_port}/v1"
        self.ws_url = f"ws://127.0.0.1:{self.ws_port}/v1"
        self.log_path = log_path
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalCloudProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the child's lifetime
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANTHROPIC_"))}
        self.process = subprocess.Popen(  # nosec B603  # fixed argv: this interpreter, our own module
            [sys.executable, "-m", "local", "--in-memory", "--port", str(self.rest_port), "--ws-port",
             str(self.ws_port), *self.extra_args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the local cloud exited ({self.process.returncode}); see {self.log_path}")
            health = f"{self.url}/health"
            try:
                with urllib.request.urlopen(health, timeout=5) as response:  # nosec B310  # our local cloud's URL
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"the local cloud did not come up in 180 s; see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_locust(url: str, ws_url: str, users: int, spawn_rate: float, seconds: int, prefix: Path) -> None:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AGENTHQ_LOAD_WS_URL": ws_url}
    with open(f"{prefix}.log", "wb") as log:  # locust's own summary and warnings
        _locust(url, users, spawn_rate, seconds, prefix, env, log)


def _locust(url: str, users: int, spawn_rate: float, seconds: int, prefix: Path, env: dict[str, str],
            log: Any) -> None:
    subprocess.run(  # nosec B603  # fixed argv: this interpreter running locust on our users file
        [sys.executable, "-m", "locust", "-f", str(USERS_FILE), "--headless", "--host", url,
         "--users", str(users), "--spawn-rate", str(spawn_rate), "--run-time", f"{seconds}s",
         "--stop-timeout", "150", "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
         "--exit-code-on-error", "0"],
        cwd=ROOT, env=env, check=True, stdout=log, stderr=subprocess.STDOUT)


def read_result(prefix: Path, users: int, seconds: float, spawn_rate: float = 0.0) -> Result:
    result = Result(users=users, seconds=seconds, spawn_rate=spawn_rate)
    with open(f"{prefix}_stats.csv", newline="", encoding="utf-8") as f:
        for line in csv.DictReader(f):
            http = line["Name"].split(" ", 1)[0] in ("GET", "POST", "PUT", "PATCH", "DELETE")
            row = Row(kind=line["Name"] if http or not line["Type"] else f"{line['Type']} {line['Name']}", requests=int(line["Request Count"]), errors=int(line["Failure Count"]),
                      rps=float(line["Requests/s"]), p50=float(line["50%"] or 0), p95=float(line["95%"] or 0),
                      p99=float(line["99%"] or 0))
            if line["Name"] == "Aggregated":
                result.total = row
            elif "[429, retried]" in line["Name"]:
                result.throttled.append(row)
            else:
                result.rows.append(row)
    failures_path = Path(f"{prefix}_failures.csv")
    if failures_path.exists():
        with open(failures_path, newline="", encoding="utf-8") as f:
            for line in csv.DictReader(f):
                result.failures.append((f"{line['Method']} {line['Name']}", line["Error"], int(line["Occurrences"])))
    return result


def print_result(result: Result, target: str) -> None:
    print(f"\nLoad test: {result.users} users (started {result.spawn_rate:g} a second) for {result.seconds:.0f} s "
          f"against {target}, on {os.cpu_count()} CPU cores")
    print("(latencies in ms; 429s of documented throttles were retried after Retry-After, as a client does, and "
          "are not errors)\n")
    width = max([len(r.kind) for r in result.rows + result.throttled] + [12])
    header = f"  {'request kind'.ljust(width)}  {'requests':>8}  {'errors':>6}  {'req/s':>7}  {'p50':>7}  " \
             f"{'p95':>7}  {'p99':>7}"
    print(header)
    for row in sorted(result.rows, key=lambda r: r.kind):
        print(f"  {row.kind.ljust(width)}  {row.requests:>8}  {row.errors:>6}  {row.rps:>7.2f}  {row.p50:>7.0f}  "
              f"{row.p95:>7.0f}  {row.p99:>7.0f}")
    if result.total is not None:
        t = result.total
        print(f"  {'all'.ljust(width)}  {t.requests:>8}  {t.errors:>6}  {t.rps:>7.2f}  {t.p50:>7.0f}  {t.p95:>7.0f}  "
              f"{t.p99:>7.0f}")
    print("\n  429 from documented throttles, each retried after Retry-After (not errors): "
          + (", ".join(f"{row.kind} × {row.requests}" for row in result.throttled) or "none"))
    print(f"\n  errors: {result.errors}")
    for kind, error, count in result.failures:
        print(f"    {count} × {kind}: {error}")


def run(users: int = 100, spawn_rate: float = 2, seconds: int = 120, url: str | None = None,
        ws_url: str | None = None, artifacts: Path = ARTIFACTS, quiet: bool = False,
        cloud_args: tuple[str, ...] = ()) -> Result:
    """Run the load test (against a local cloud of its own unless ``url`` is given); its result."""
    prefix = artifacts / "locust"
    if url is None:
        with LocalCloudProcess(artifacts / "cloud.log", cloud_args) as cloud:
            if not quiet:
                print(f"Local cloud up at {cloud.url} (its log: {cloud.log_path}); "
                      f"{users} users, {spawn_rate}/s, {seconds} s ...", flush=True)
            run_locust(cloud.url, cloud.ws_url, users, spawn_rate, seconds, prefix)
            target = f"a fresh local cloud ({cloud.url})"
    else:
        run_locust(url, ws_url or "ws://127.0.0.1:3001/v1", users, spawn_rate, seconds, prefix)
        target = url
    result = read_result(prefix, users, seconds, spawn_rate)
    if not quiet:
        print_result(result, target)
    return result
