"""Webhook delivery latency: a run's end stored → its signed delivery received by an endpoint on loopback.

For ``runs`` runs of one workspace with one webhook, one after the other: p50 and p99 of (received time − the event's
``timestamp``, the time the run's last step stored it), and the gap between a failed first attempt and
its retry (the schedule says 5 s), each as a ratio to one DynamoDB PutItem (median) measured in the same
run. The path is the table stream (polled about 4 times a second, as Lambda polls) → the delivery
function (fan-out) → the queue (polled likewise) → the delivery function (the attempt).
"""

from __future__ import annotations

import json
import statistics
import uuid
from datetime import datetime
from typing import Any

from bench.common import median_seconds, print_table


def run(cloud: Any, runs: int = 10, putitem_samples: int = 100) -> None:
    from tests.e2e.test_webhooks import Receiver
    from tests.support import client_for, create_agent, signup

    ddb = cloud.client("dynamodb")
    table = cloud.config.stack.table_name
    put = median_seconds(lambda: ddb.put_item(TableName=table, Item={
        "pk": {"S": f"BENCH#{uuid.uuid4()}"}, "sk": {"S": "META"}, "type": {"S": "Bench"}}),
        putitem_samples, warmup=10)
    receiver = Receiver().start()
    try:
        with client_for(cloud) as api:
            tenant = signup(api, tag="bench-webhooks", tier="pro")
            made = tenant.post("/webhooks", json={"url": receiver.url, "events": ["run.succeeded"]})
            assert made.status_code == 201, made.text  # nosec B101  # a benchmark's sanity check
            agent = create_agent(tenant, "webhook-bench", "sre")
            for done in range(runs):  # one at a time: the path's own latency, not a queue of them
                tenant.post(f"/agents/{agent['id']}/runs", json={"input": "Bench."},
                            headers={"Idempotency-Key": str(uuid.uuid4())})
                receiver.wait(done + 1, timeout=120)
            received = receiver.received[:runs]
            latencies = [r["wall"] - datetime.fromisoformat(json.loads(r["body"])["timestamp"].replace(
                "+0000", "+00:00")).timestamp() for r in received]
            receiver.answers = [(503, {})]  # the next run's delivery fails once
            tenant.post(f"/agents/{agent['id']}/runs", json={"input": "Bench."},
                        headers={"Idempotency-Key": str(uuid.uuid4())})
            first, second = receiver.wait(runs + 2, timeout=120)[runs:runs + 2]
            gap = second["at"] - first["at"]
    finally:
        receiver.stop()
    p50, p99 = statistics.median(latencies), sorted(latencies)[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print_table(f"Webhook deliveries (ratio to one DynamoDB PutItem, median {put * 1000:.1f} ms)", [
        ("run end → delivery received, p50", p50 / put, f"{p50 * 1000:.0f} ms over {len(latencies)} deliveries"),
        ("run end → delivery received, p99", p99 / put, f"{p99 * 1000:.0f} ms"),
        ("failed attempt → its retry (schedule: 5 s)", gap / put, f"{gap:.2f} s"),
    ])
