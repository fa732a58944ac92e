"""A subscribe flood on one tenant's connection against another tenant's ping/pong.

Tenant B pings over its own connection: first alone (the baseline, measured in this run), then while
tenant A floods subscribes on one connection as fast as its socket takes them (900: below the
local front's send queue of 1,000 frames, which would close A as a client that does not read). Printed: B's ping/pong
p50 and p99 during the flood as ratios to the baseline's (the done-when is at most 2×), and what
happened to A's flood — answered, refused per connection (``rate_limited``), refused at the gateway's
subscribe route throttle, throttled Lambda invocations. Never asserted: ratios, not timings.
"""

from __future__ import annotations

import json
import statistics
import subprocess  # nosec B404  # the flooder: this interpreter on this module
import sys
import threading
import time
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


def _warm(ws: Any, cloud: Any, at_once: int = 8) -> None:
    """Pings sent ``at_once`` until the ws function starts no more environments: every one this machine
    gives it is warm, as on a function that has served traffic (a cold start is not the flood's doing:
    any burst of messages scales a function out, on Lambda too; bench.handlers measures cold starts)."""
    for _ in range(5):
        before = cloud.runtime.cold_starts("LiveFunction")
        for _ in range(at_once):
            ws.send(json.dumps({"action": "ping"}))
        pongs = 0
        while pongs < at_once:
            if json.loads(ws.recv(timeout=120)).get("type") == "pong":
                pongs += 1
        if cloud.runtime.cold_starts("LiveFunction") == before:
            return


def run(cloud: Any, pings: int = 60, flood: int = 900) -> dict[str, float]:
    from websockets.sync.client import connect

    from tests.support import client_for, signup

    with client_for(cloud) as api:
        flooder = signup(api, tag="bench-flood-a")  # free tier, both
        victim = signup(api, tag="bench-flood-b")
    throttles_before = cloud.runtime.throttles("LiveFunction")
    throttled_before = cloud.websocket.throttle.throttled.get("subscribe", 0)
    # The flooder is a client of its own, in a process of its own (as it is on a machine of its own): its
    # sending and reading do not take this process's interpreter from the local cloud it floods.
    with subprocess.Popen([sys.executable, "-m", "bench.live_flood"], cwd=ROOT, text=True,  # nosec B603  # this interpreter, a fixed module
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as a:
        assert a.stdin is not None and a.stdout is not None  # nosec B101  # type narrowing: both piped
        a.stdin.write(json.dumps({"url": cloud.ws_url, "headers": flooder.headers, "flood": flood}) + "\n")
        a.stdin.flush()
        if a.stdout.readline().strip() != "connected":
            raise RuntimeError("the flooder could not connect")
        with connect(cloud.ws_url, additional_headers=victim.headers, proxy=None, open_timeout=60) as b:
            _warm(b, cloud)
            _pings(b, 10)
            baseline = _pings(b, pings)
            cold_before = cloud.runtime.cold_starts("LiveFunction")
            a.stdin.write("go\n")
            a.stdin.flush()
            during = _pings(b, pings)
            cold_during = cloud.runtime.cold_starts("LiveFunction") - cold_before
        answers: dict[str, int] = json.loads(a.stdout.readline() or "{}")
    p50, p99 = statistics.median(baseline), _percentile(baseline, 0.99)
    f50, f99 = statistics.median(during), _percentile(during, 0.99)
    figures = {"ping_p50_ratio": f50 / p50, "ping_p99_ratio": f99 / p99,
               "lambda_throttles": float(cloud.runtime.throttles("LiveFunction") - throttles_before),
               "route_throttled": float(cloud.websocket.throttle.throttled.get("subscribe", 0) - throttled_before),
               "cold_starts": float(cold_during)}
    print_table(f"Subscribe flood on one connection ({flood} subscribes) vs another tenant's ping "
                f"(ratio to its own baseline, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms)", [
                    ("ping/pong p50 during the flood", figures["ping_p50_ratio"], f"{f50 * 1000:.1f} ms"),
                    ("ping/pong p99 during the flood", figures["ping_p99_ratio"], f"{f99 * 1000:.1f} ms"),
                ])
    print(f"  the flood's answers: {dict(sorted(answers.items()))}; refused at the subscribe route's throttle: "
          f"{int(figures['route_throttled'])}; ws invocations throttled by its reservation: "
          f"{int(figures['lambda_throttles'])}; ws cold starts during the pings: {cold_during}")
    return figures


def _flooder() -> None:
    """The flooding tenant's client (``python -m bench.live_flood``): reads ``{url, headers, flood}``,
    connects ("connected"), waits for "go", then sends ``flood`` subscribes as fast as its socket takes
    them while it reads every answer, until all are answered or 10 s pass in silence; prints the
    answers counted by kind (one JSON line)."""
    from websockets.sync.client import connect

    setup = json.loads(sys.stdin.readline())
    answers: dict[str, int] = {}
    with connect(setup["url"], additional_headers=setup["headers"], proxy=None, open_timeout=60) as a:
        print("connected", flush=True)
        sys.stdin.readline()

        def read() -> None:
            while sum(answers.values()) < setup["flood"]:
                try:
                    frame = json.loads(a.recv(timeout=10))
                except Exception:  # noqa: BLE001 - silent for 10 s, or closed
                    return
                key = frame.get("code") or frame.get("type") or frame.get("message") or "?"
                answers[key] = answers.get(key, 0) + 1

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        subscribe = json.dumps({"action": "subscribe", "workspace": True})
        for _ in range(setup["flood"]):
            a.send(subscribe)
        reader.join(300)
    print(json.dumps(answers), flush=True)


if __name__ == "__main__":
    _flooder()
