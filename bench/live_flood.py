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
import threading
import time
from typing import Any

from bench.common import print_table


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


def run(cloud: Any, pings: int = 60, flood: int = 900) -> dict[str, float]:
    from websockets.sync.client import connect

    from tests.support import client_for, signup

    with client_for(cloud) as api:
        flooder = signup(api, tag="bench-flood-a")  # free tier, both
        victim = signup(api, tag="bench-flood-b")
    throttles_before = cloud.runtime.throttles("LiveFunction")
    throttled_before = cloud.websocket.throttle.throttled.get("subscribe", 0)
    with connect(cloud.ws_url, additional_headers=victim.headers, proxy=None, open_timeout=60) as b, \
            connect(cloud.ws_url, additional_headers=flooder.headers, proxy=None, open_timeout=60) as a:
        _pings(b, 10)  # warm
        baseline = _pings(b, pings)
        answers: dict[str, int] = {}

        def read_a() -> None:  # every answer to the flood, until it is all answered or 10 s pass in silence
            while sum(answers.values()) < flood:
                try:
                    frame = json.loads(a.recv(timeout=10))
                except Exception:  # noqa: BLE001 - silent for 10 s, or closed
                    return
                key = frame.get("code") or frame.get("type") or frame.get("message") or "?"
                answers[key] = answers.get(key, 0) + 1

        reader = threading.Thread(target=read_a, daemon=True)
        reader.start()
        subscribe = json.dumps({"action": "subscribe", "workspace": True})

        def send_flood() -> None:
            for _ in range(flood):
                a.send(subscribe)

        sender = threading.Thread(target=send_flood, daemon=True)
        sender.start()
        during = _pings(b, pings)
        sender.join(120)
        reader.join(300)
    p50, p99 = statistics.median(baseline), _percentile(baseline, 0.99)
    f50, f99 = statistics.median(during), _percentile(during, 0.99)
    figures = {"ping_p50_ratio": f50 / p50, "ping_p99_ratio": f99 / p99,
               "lambda_throttles": float(cloud.runtime.throttles("LiveFunction") - throttles_before),
               "route_throttled": float(cloud.websocket.throttle.throttled.get("subscribe", 0) - throttled_before)}
    print_table(f"Subscribe flood on one connection ({flood} subscribes) vs another tenant's ping "
                f"(ratio to its own baseline, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms)", [
                    ("ping/pong p50 during the flood", figures["ping_p50_ratio"], f"{f50 * 1000:.1f} ms"),
                    ("ping/pong p99 during the flood", figures["ping_p99_ratio"], f"{f99 * 1000:.1f} ms"),
                ])
    print(f"  the flood's answers: {dict(sorted(answers.items()))}; refused at the subscribe route's throttle: "
          f"{int(figures['route_throttled'])}; ws invocations throttled by its reservation: "
          f"{int(figures['lambda_throttles'])}")
    return figures
