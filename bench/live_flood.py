"""A subscribe flood on one tenant's connection against another tenant's ping/pong.

Tenant B pings over its own connection, one ping at a time, in rounds: ``pings`` alone (the baseline),
then ``pings`` while tenant A floods subscribes on one connection at ``rate`` a second (10x the
subscribe route's throttle), from the first ping of the round to its last; three rounds, so that what
the shared machine does to both is spread over both. Printed: B's ping/pong p50 and p99 during the
flood as ratios to the baseline's (the done-when is at most 2x), and what happened to A's flood:
answered, refused per connection (``rate_limited``), refused at the gateway's subscribe route
throttle, throttled Lambda invocations. Never asserted: ratios, not timings.
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


def run(cloud: Any, pings: int = 100, rate: float = 1000.0, rounds: int = 3) -> dict[str, float]:
    from websockets.sync.client import connect

    from tests.support import client_for, signup

    with client_for(cloud) as api:
        flooder = signup(api, tag="bench-flood-a")  # free tier, both
        victim = signup(api, tag="bench-flood-b")
    throttles_before = cloud.runtime.throttles("LiveFunction")
    throttled_before = cloud.websocket.throttle.throttled.get("subscribe", 0)
    baseline: list[float] = []
    during: list[float] = []
    answers: dict[str, int] = {}
    # The flooder is a client of its own, in a process of its own (as it is on a machine of its own): its
    # sending and reading do not take this process's interpreter from the local cloud it floods.
    with subprocess.Popen([sys.executable, "-m", "bench.live_flood"], cwd=ROOT, text=True,  # nosec B603  # this interpreter, a fixed module
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as a:
        assert a.stdin is not None and a.stdout is not None  # nosec B101  # type narrowing: both piped
        a.stdin.write(json.dumps({"url": cloud.ws_url, "headers": flooder.headers, "rate": rate}) + "\n")
        a.stdin.flush()
        if a.stdout.readline().strip() != "connected":
            raise RuntimeError("the flooder could not connect")
        with connect(cloud.ws_url, additional_headers=victim.headers, proxy=None, open_timeout=60) as b:
            _warm(b, cloud)
            _pings(b, 10)
            cold_before = cloud.runtime.cold_starts("LiveFunction")
            for _ in range(rounds):
                baseline += _pings(b, pings)
                a.stdin.write("go\n")
                a.stdin.flush()
                if a.stdout.readline().strip() != "flooding":
                    raise RuntimeError("the flooder stopped")
                during += _pings(b, pings)
                a.stdin.write("stop\n")
                a.stdin.flush()
                for key, count in json.loads(a.stdout.readline() or "{}").items():
                    answers[key] = answers.get(key, 0) + count
            cold_during = cloud.runtime.cold_starts("LiveFunction") - cold_before
        a.stdin.close()
    p50, p99 = statistics.median(baseline), _percentile(baseline, 0.99)
    f50, f99 = statistics.median(during), _percentile(during, 0.99)
    figures = {"ping_p50_ratio": f50 / p50, "ping_p99_ratio": f99 / p99,
               "lambda_throttles": float(cloud.runtime.throttles("LiveFunction") - throttles_before),
               "route_throttled": float(cloud.websocket.throttle.throttled.get("subscribe", 0) - throttled_before),
               "cold_starts": float(cold_during), "flooded": float(sum(answers.values()))}
    print_table(f"Subscribe flood on one connection ({rate:.0f}/s for the whole of each of {rounds} rounds of "
                f"{pings} pings) vs another tenant's ping (ratio to its own baseline in the rounds between, "
                f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms)", [
                    ("ping/pong p50 during the flood", figures["ping_p50_ratio"], f"{f50 * 1000:.1f} ms"),
                    ("ping/pong p99 during the flood", figures["ping_p99_ratio"], f"{f99 * 1000:.1f} ms"),
                ])
    print(f"  the flood's answers: {dict(sorted(answers.items()))}; refused at the subscribe route's throttle: "
          f"{int(figures['route_throttled'])}; ws invocations throttled by its reservation: "
          f"{int(figures['lambda_throttles'])}; ws cold starts during the pings: {cold_during}")
    return figures


def _flooder() -> None:
    """The flooding tenant's client (``python -m bench.live_flood``): reads ``{url, headers, rate}``,
    connects ("connected"); then for each "go" says "flooding" and sends subscribes at ``rate`` a second
    while it reads every answer, until "stop"; then, once the answers have stopped for 2 s, prints them
    counted by kind (one JSON line). Ends when its input does."""
    from websockets.sync.client import connect

    setup = json.loads(sys.stdin.readline())
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


if __name__ == "__main__":
    _flooder()
