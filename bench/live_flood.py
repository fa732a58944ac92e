"""A subscribe flood on one tenant's connection against another tenant's ping/pong.

Tenant B pings over its own connection, one ping at a time, in rounds: ``pings`` alone (the baseline),
then ``pings`` while tenant A floods subscribes on one connection at ``rate`` a second (10x the
subscribe route's throttle) from the first ping of the round to its last, then ``pings`` beside a
control: processes burning the cores the flood took from this machine (measured) and touching no
AgentHQ. Three rounds, so that the machine's own noise falls on all three. Both tenants' clients run
in processes of their own, as they do on machines of their own. On AWS API Gateway and the Lambda
environments that refuse the flood run on machines of their own too; here they share two cores with B,
and any load that large slows B's pings (a lone busy loop: p99 ~3x). The ratio to the control is what
the flood does to B beyond taking the machine's CPU — queues, throttles, concurrency that tenants share
(the done-when is at most 2x); the ratio to the baseline is printed beside it. Also printed: what
happened to A's flood — answered, refused per connection (``rate_limited``), refused at the gateway's
subscribe route throttle, throttled Lambda invocations. Never asserted: ratios, not timings.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess  # nosec B404  # the flooder: this interpreter on this module
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, print_table


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _pings(ws: Any, n: int, gap: float = 0.02) -> list[float]:
    """``n`` ping/pong round trips (seconds), one at a time."""
    times = []
    for _ in range(n):
        began = time.perf_counter()
        ws.send(json.dumps({"action": "ping"}))
        while True:
            frame = json.loads(ws.recv(timeout=120))
            if frame.get("type") == "pong":
                break
        times.append(time.perf_counter() - began)
        time.sleep(gap)
    return times


def _warm(b: _Client, cloud: Any) -> None:
    """Pings sent 8 at once until the ws function starts no more environments: every one this machine
    gives it is warm, as on a function that has served traffic (a cold start is not the flood's doing:
    any burst of messages scales a function out, on Lambda too; bench.handlers measures cold starts)."""
    for _ in range(5):
        before = cloud.runtime.cold_starts("LiveFunction")
        b.ask("burst")
        if cloud.runtime.cold_starts("LiveFunction") == before:
            return


class _Client:
    """A tenant's client in a process of its own (``python -m bench.live_flood <role>``), as it is on a
    machine of its own: its sending and reading do not take the local cloud's interpreter (and its GIL)
    from the front it talks to. Told what to do a line at a time; answers a line."""

    def __init__(self, role: str, url: str, headers: dict[str, str], **setup: Any) -> None:
        self.role = role
        self.process = subprocess.Popen([sys.executable, "-m", "bench.live_flood", role], cwd=ROOT,  # nosec B603  # this interpreter, a fixed module
                                        text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if self.ask(json.dumps({"url": url, "headers": headers, **setup})) != "connected":
            raise RuntimeError(f"the {role} could not connect")

    def ask(self, line: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None  # nosec B101  # type narrowing: both piped
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if not answer:
            raise RuntimeError(f"the {self.role} stopped")
        return answer

    def close(self) -> None:
        assert self.process.stdin is not None  # nosec B101  # type narrowing: piped
        self.process.stdin.close()
        self.process.wait(30)


def _machine_busy() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of this whole machine so far, all cores; None where /proc is not."""
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    total = sum(fields[:8]) / os.sysconf("SC_CLK_TCK")
    return total - (fields[3] + fields[4]) / os.sysconf("SC_CLK_TCK"), total


def _cores_busy(pings: Callable[[], list[float]]) -> tuple[list[float], float | None]:
    """``pings()``, and how many of the machine's cores were busy meanwhile (on average)."""
    before, began = _machine_busy(), time.perf_counter()
    times = pings()
    after, took = _machine_busy(), time.perf_counter() - began
    return times, None if before is None or after is None else (after[0] - before[0]) / took


BURNER = """
import sys, time
share = float(sys.argv[1])
while True:
    began = time.perf_counter()
    while time.perf_counter() - began < 0.01:
        pass
    time.sleep(0.01 * (1 - share) / share)
"""


def run(cloud: Any, pings: int = 300, rate: float = 1000.0, rounds: int = 3) -> dict[str, float]:
    from tests.support import client_for, signup

    with client_for(cloud) as api:
        flooder = signup(api, tag="bench-flood-a")  # free tier
        victim = signup(api, tag="bench-flood-b", tier="starter")  # its pings are API calls: more than free's 1,000 a day
    throttles_before = cloud.runtime.throttles("LiveFunction")
    throttled_before = cloud.websocket.throttle.throttled.get("subscribe", 0)
    baseline: list[float] = []
    during: list[float] = []
    control: list[float] = []
    answers: dict[str, int] = {}
    shares: list[float] = []

    def ping(n: int) -> list[float]:
        return [float(t) for t in json.loads(b.ask(f"ping {n}"))]

    a = _Client("flooder", cloud.ws_url, flooder.headers, rate=rate)
    b = _Client("pinger", cloud.ws_url, victim.headers)
    try:
        _warm(b, cloud)
        ping(10)
        cold_before = cloud.runtime.cold_starts("LiveFunction")
        for _ in range(rounds):
            times, quiet = _cores_busy(lambda: ping(pings))
            baseline += times
            if a.ask("go") != "flooding":
                raise RuntimeError("the flooder stopped")
            times, flooded = _cores_busy(lambda: ping(pings))
            during += times
            for key, count in json.loads(a.ask("stop")).items():
                answers[key] = answers.get(key, 0) + count
            if quiet is None or flooded is None:
                continue
            # The control: burners taking the cores the flood took (client, front, functions), no AgentHQ.
            extra = max(0.05, flooded - quiet)
            shares.append(extra)
            count = math.ceil(extra)
            burners = [subprocess.Popen([sys.executable, "-c", BURNER, str(extra / count)])  # nosec B603  # this interpreter, a fixed program
                       for _ in range(count)]
            try:
                control += ping(pings)
            finally:
                for burner in burners:
                    burner.kill()
                    burner.wait()
        cold_during = cloud.runtime.cold_starts("LiveFunction") - cold_before
    finally:
        a.close()
        b.close()
    p50, p99 = statistics.median(baseline), _percentile(baseline, 0.99)
    f50, f99 = statistics.median(during), _percentile(during, 0.99)
    c50, c99 = (statistics.median(control), _percentile(control, 0.99)) if control else (p50, p99)
    figures = {"ping_p50_ratio": f50 / p50, "ping_p99_ratio": f99 / p99,
               "ping_p50_vs_control": f50 / c50, "ping_p99_vs_control": f99 / c99,
               "flood_cores": statistics.mean(shares) if shares else 0.0,
               "lambda_throttles": float(cloud.runtime.throttles("LiveFunction") - throttles_before),
               "route_throttled": float(cloud.websocket.throttle.throttled.get("subscribe", 0) - throttled_before),
               "cold_starts": float(cold_during), "flooded": float(sum(answers.values()))}
    print_table(f"Subscribe flood on one connection ({rate:.0f}/s for the whole of each of {rounds} rounds of "
                f"{pings} pings) vs another tenant's ping (ratio to its own baseline in the rounds between, "
                f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms)", [
                    ("ping/pong p50 during the flood", figures["ping_p50_ratio"], f"{f50 * 1000:.1f} ms"),
                    ("ping/pong p99 during the flood", figures["ping_p99_ratio"], f"{f99 * 1000:.1f} ms"),
                ])
    if control:
        print_table(f"The same pings beside the control (processes burning the {figures['flood_cores']:.2f} cores the "
                    f"flood took from this machine — its client, the local API Gateway and Lambda — with no AgentHQ "
                    f"in it: p50 {c50 * 1000:.1f} ms, p99 {c99 * 1000:.1f} ms); the flood's ratio to it", [
                        ("ping/pong p50 during the flood", figures["ping_p50_vs_control"], "vs the control"),
                        ("ping/pong p99 during the flood", figures["ping_p99_vs_control"], "vs the control"),
                    ])
    print(f"  the flood's answers: {dict(sorted(answers.items()))}; refused at the subscribe route's throttle: "
          f"{int(figures['route_throttled'])}; ws invocations throttled by its reservation: "
          f"{int(figures['lambda_throttles'])}; ws cold starts during the pings: {cold_during}")
    return figures


def _pinger(setup: dict[str, Any]) -> None:
    """The other tenant's client: "ping N" → the N round trips' seconds (a JSON list); "burst" → 8 pings
    sent at once, "done" when their pongs are back. Ends when its input does."""
    from websockets.sync.client import connect

    with connect(setup["url"], additional_headers=setup["headers"], proxy=None, open_timeout=60) as b:
        print("connected", flush=True)
        for line in sys.stdin:
            if line.strip() == "burst":
                for _ in range(8):
                    b.send(json.dumps({"action": "ping"}))
                pongs = 0
                while pongs < 8:
                    if json.loads(b.recv(timeout=120)).get("type") == "pong":
                        pongs += 1
                print("done", flush=True)
            else:
                print(json.dumps(_pings(b, int(line.split()[1]))), flush=True)


def _flooder(setup: dict[str, Any]) -> None:
    """The flooding tenant's client: for each "go" says "flooding" and sends subscribes at ``rate`` a
    second while it reads every answer, until "stop"; then, once the answers have stopped for 2 s, prints
    them counted by kind (one JSON line). Ends when its input does."""
    from websockets.sync.client import connect

    gap = 1.0 / float(setup["rate"])
    subscribe = json.dumps({"action": "subscribe", "workspace": True})
    with connect(setup["url"], additional_headers=setup["headers"], proxy=None, open_timeout=60) as a:
        print("connected", flush=True)
        while sys.stdin.readline().strip() == "go":
            answers: dict[str, int] = {}
            stop = threading.Event()

            def read(answers: dict[str, int] = answers, stop: threading.Event = stop) -> None:
                while True:
                    try:
                        frame = json.loads(a.recv(timeout=2))
                    except TimeoutError:
                        if stop.is_set():
                            return
                        continue
                    except Exception:  # noqa: BLE001 - closed
                        return
                    key = frame.get("code") or frame.get("type") or frame.get("message") or "?"
                    answers[key] = answers.get(key, 0) + 1

            def send(stop: threading.Event = stop) -> None:
                began, sent = time.perf_counter(), 0
                while not stop.is_set():
                    a.send(subscribe)
                    sent += 1
                    ahead = began + sent * gap - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)

            reader = threading.Thread(target=read, daemon=True)
            sender = threading.Thread(target=send, daemon=True)
            reader.start()
            sender.start()
            print("flooding", flush=True)
            sys.stdin.readline()  # "stop"
            stop.set()
            sender.join(10)
            reader.join(60)
            print(json.dumps(answers), flush=True)


if __name__ == "__main__":  # a tenant's client: its role, then its setup ``{url, headers, …}`` on stdin
    {"flooder": _flooder, "pinger": _pinger}[sys.argv[1]](json.loads(sys.stdin.readline()))
