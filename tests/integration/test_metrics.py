"""The application's metrics are added when their events happen, on the local cloud's real code
paths: a run starting, calling the model, ending each way; the model API throttling; a 429 the API
answers; a usage alert crossing a threshold (once). Every custom metric the dashboard and the
alarms of template.yaml show is among them.

While it records what the functions add (``metrics_added``), the local cloud runs them in this
process. Other tests' runs may still be finishing in the background, so counts of
run events are "at least"; calls made on this test's own thread are counted exactly.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest

from agenthq.observability import APPLICATION_METRICS
from agenthq.services import get_services
from agenthq.store import tenant_scope
from agenthq.usage import alerts, counters, quota
from local.template import LocalStack, Resolver, load_template, resources_of_type
from tests.support import (
    PASSWORD,
    AnswerHeld,
    assert_error,
    client_for,
    create_agent,
    launch,
    metrics_added,
    services_with,
    set_tier,
    signup,
    total,
    wait_for,
)

pytestmark = pytest.mark.slow

CALCULATE = 'What is 6 * 7?\n/tool calculator {"expression": "6 * 7"}'


class RecordedEvents:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict]] = []

    def publish(self, detail_type: str, detail: dict) -> None:
        self.published.append((detail_type, detail))


def shown_by_the_template() -> set[str]:
    """The custom metrics the alarms and the dashboard of template.yaml read."""
    template = load_template()
    names = set()
    for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        for metric in [props] if "MetricName" in props else [q["MetricStat"]["Metric"] for q in props["Metrics"]
                                                             if "MetricStat" in q]:
            if metric["Namespace"] == {"Ref": "MetricsNamespace"}:
                names.add(metric["MetricName"])
    stack = LocalStack()
    body = json.loads(Resolver(template, stack).resolve(template["Resources"]["Dashboard"]["Properties"]
                                                        ["DashboardBody"]))
    namespace = Resolver(template, stack).ref("MetricsNamespace")
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if row and row[0] == namespace:
                names.add(row[1])
    return names


def test_every_metric_the_dashboard_and_alarms_show_is_added_when_its_event_happens(cloud, api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "counted", "sre")
    me = threading.get_ident()
    with metrics_added() as added:
        # A run: it starts, calls the model twice (a tool in between), and succeeds.
        done = wait_for(tenant, launch(tenant, agent["id"], CALCULATE).json()["id"])
        assert done["status"] == "succeeded"
        usage = done["usage"]
        assert total(added, "RunsStarted") >= 1 and total(added, "RunsSucceeded") >= 1
        assert total(added, "RunSteps") >= 3 and total(added, "ModelCalls") >= 2
        assert total(added, "ModelInputTokens") >= usage["input_tokens"]
        assert usage["input_tokens"] + usage["cache_write_tokens"] + usage["cache_read_tokens"] > 0
        assert total(added, "ModelOutputTokens") >= usage["output_tokens"] > 0
        assert total(added, "ModelCostMicroUSD") >= Decimal(usage["cost_usd"]) * 1_000_000 > 0  # (exact: no float)
        for tokens in ("ModelCacheWriteTokens", "ModelCacheReadTokens"):
            assert any(m.name == tokens for m in added), f"{tokens} is published, zero or not"

        # The model API throttles once (then answers): one throttle, and the run still succeeds.
        marker = f"throttled-{tenant.workspace_id}"
        cloud.model_server.faults.add({"status": 429, "retry_after": 0, "match": marker})
        assert wait_for(tenant, launch(tenant, agent["id"], f"Hi {marker}").json()["id"])["status"] == "succeeded"
        assert total(added, "ModelThrottles") >= 1

        # A run the model refuses fails; one cancelled; one past its timeout.
        marker = f"refused-{tenant.workspace_id}"
        cloud.model_server.faults.add({"status": 400, "match": marker})
        assert wait_for(tenant, launch(tenant, agent["id"], f"Hi {marker}").json()["id"])["status"] == "failed"
        assert total(added, "RunsFailed") >= 1

        cloud.model_server.latency_seconds = 1.0
        try:
            slow = launch(tenant, agent["id"], CALCULATE).json()["id"]
            assert tenant.post(f"/runs/{slow}/cancel").status_code == 202
            assert wait_for(tenant, slow)["status"] == "cancelled"
        finally:
            cloud.model_server.latency_seconds = 0.0
        assert total(added, "RunsCancelled") >= 1

        late_marker = f"late-{tenant.workspace_id}"
        with services_with(model=AnswerHeld(get_services().model, late_marker, seconds=4.0)):  # after the deadline
            late = tenant.api.post(tenant.path(f"/agents/{agent['id']}/runs"), headers=tenant.headers,
                                   json={"input": f"Slowly {late_marker}.\n/tool current_time {{}}",
                                         "timeout_seconds": 3})
            assert wait_for(tenant, late.json()["id"])["status"] == "timed_out"
        assert total(added, "RunsTimedOut") >= 1

        # Runs per day used up: the launch that crossed 80% and 100% alerted, the next one is a 429.
        daily = signup(api, tier="pro")
        set_tier(api, daily.workspace_id, "enterprise", limit_overrides={"runs_per_day": 1})
        one = create_agent(daily, "once", "sre")
        before = total(added, "UsageAlerts")
        assert launch(daily, one["id"], "Once.").status_code == 202
        assert total(added, "UsageAlerts") - before >= 2
        assert_error(launch(daily, one["id"], "Twice."), 429, "quota_exceeded")
        assert total(added, "RequestsQuotaExceeded") >= 1

        # Failed logins past the limit: 429 rate_limited, counted by the function that answered it.
        with client_for(cloud) as client:
            for _ in range(5):
                assert client.post("/auth/login", json={"email": tenant.email, "password": "not-" + PASSWORD}
                                   ).status_code == 401
            assert_error(client.post("/auth/login", json={"email": tenant.email, "password": PASSWORD}), 429,
                         "rate_limited")
        assert total(added, "RequestsRateLimited") >= 1

        # A usage alert on the model budget, where the alert is stored: once per threshold and period.
        at = get_services().now()
        period = counters.month(at)
        with tenant_scope(tenant.workspace_id):
            assert len(alerts.check(RecordedEvents(), tenant.workspace_id, quota.BUDGET, 85, 100, period, at)) == 1
            assert (total(added, "UsageAlerts", me), total(added, "BudgetAlerts", me)) == (1, 1)
            assert alerts.check(RecordedEvents(), tenant.workspace_id, quota.BUDGET, 90, 100, period, at) == []
            assert total(added, "BudgetAlerts", me) == 1, "the 80% alert is counted once"
            assert len(alerts.check(RecordedEvents(), tenant.workspace_id, quota.BUDGET, 100, 100, period, at)) == 1
            assert len(alerts.check(RecordedEvents(), tenant.workspace_id, quota.TOKENS, 95, 100, period, at)) == 1
        assert (total(added, "UsageAlerts", me), total(added, "BudgetAlerts", me)) == (3, 2)

    seen = {m.name for m in added}
    assert seen <= APPLICATION_METRICS
    shown = shown_by_the_template()
    assert shown - {"BroadcastFailures"} <= seen, f"shown but never added here: {shown - seen}"
    assert "BroadcastFailures" in shown  # added by the broadcaster's handler (tests/unit/test_observability.py)
