"""Live status latency: a run event stored → received by a WebSocket client.

For 1 and for 200 subscribers of one run: p50 and p99 over every event of
the run (received time minus the event's ``at``, the time the step stored
it), each as a ratio to one DynamoDB PutItem (median) measured in the same run.
The path includes the stream mapping's polling (about 4 times a second per
shard, as Lambda polls), so p50 is dominated by it.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from datetime import datetime
from typing import Any

from bench.common import median_seconds, print_table


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _watch(url: str, headers: dict[str, str], runs: int, latencies: list[float], lock: threading.Lock,
           ready: threading.Barrier) -> None:
    from websockets.sync.client import connect

    ended = 0
    with connect(url, additional_headers=headers, proxy=None, open_timeout=60) as ws:
        ws.send(json.dumps({"action": "subscribe", "workspace": True}))
        json.loads(ws.recv(timeout=60))  # subscribed
        ready.wait()
        while ended < runs:
            frame = json.loads(ws.recv(timeout=180))
            if frame.get("type") != "run.event":
                continue
            at = datetime.fromisoformat(frame["event"]["at"]).timestamp()
            with lock:
                latencies.append(time.time() - at)
            if frame["event"]["type"] in ("run.succeeded", "run.failed", "run.cancelled", "run.timed_out"):
                ended += 1


def run(cloud: Any, subscriber_counts: tuple[int, ...] = (1, 200), runs: int = 3, putitem_samples: int = 100) -> None:
    """Subscribers of the workspace (every run's status changes) see ``runs`` runs launched after they are in."""
    from tests.support import client_for, create_agent, signup

    ddb = cloud.client("dynamodb")
    table = cloud.config.stack.table_name
    put = median_seconds(lambda: ddb.put_item(TableName=table, Item={
        "pk": {"S": f"BENCH#{uuid.uuid4()}"}, "sk": {"S": "META"}, "type": {"S": "Bench"}}),
        putitem_samples, warmup=10)
    rows = []
    with client_for(cloud) as api:
        for count in subscriber_counts:
            tenant = signup(api, tag=f"bench-live-{count}", tier="pro")
            agent = create_agent(tenant, "live-bench", "sre")
            latencies: list[float] = []
            lock = threading.Lock()
            ready = threading.Barrier(count + 1)
            threads = [threading.Thread(target=_watch, args=(cloud.ws_url, tenant.headers, runs, latencies, lock,
                                                             ready), daemon=True) for _ in range(count)]
            for thread in threads:
                thread.start()
            ready.wait()
            for _ in range(runs):
                tenant.post(f"/agents/{agent['id']}/runs", json={"input": "Bench.\n/tool calculator "
                                                                           '{"expression": "1 + 1"}'},
                            headers={"Idempotency-Key": str(uuid.uuid4())})
            for thread in threads:
                thread.join(300)
            p50, p99 = statistics.median(latencies), _percentile(latencies, 0.99)
            rows.append((f"event latency p50, {count} subscriber(s)", p50 / put,
                         f"{p50 * 1000:.0f} ms over {len(latencies)} deliveries"))
            rows.append((f"event latency p99, {count} subscriber(s)", p99 / put, f"{p99 * 1000:.0f} ms"))
    print_table(f"Live status (ratio to one DynamoDB PutItem, median {put * 1000:.1f} ms)", rows)
