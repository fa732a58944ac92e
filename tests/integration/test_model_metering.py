"""Every paid model call is metered (issue 17, hole 1): a call whose answer never
arrives — a timeout, a stream cut off midway — is a ledger entry marked
``estimated`` at its reserved upper bound, each attempt (the adapter's retries
and Step Functions' retries of the slice alike), so the month's metered cost is
never below what the offline model server answered (its billing log)."""

from __future__ import annotations

import time

import pytest

from agenthq.services import get_services
from agenthq.store import tenant_scope
from agenthq.store.items import Quota, Reservation, Run
from agenthq.usage import Usage, counters, ledger
from agenthq.usage.vector import TokenUsage
from tests.support import assert_dense, create_agent, events_of, launch, services_with, signup, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture()
def tenant(api):
    return signup(api, tag="metering", tier="pro")


def micro(dollars: str) -> int:
    whole, _, fraction = dollars.partition(".")
    return int(whole) * 1_000_000 + int(fraction)


def model_entries(workspace_id: str, run_id: str) -> list:
    with tenant_scope(workspace_id):
        return sorted((e for e in ledger.entries(workspace_id, run_id) if e.entry.startswith("model#")),
                      key=lambda e: e.at)


def billed_once_settled(cloud, workspace_id: str, calls: int, timeout: float = 60) -> list[dict]:
    """The server's billing log for the workspace once it holds ``calls`` answers (a stalled
    answer is produced, and billed, after its client gave up on it)."""
    deadline = time.monotonic() + timeout
    while len(billed := cloud.model_server.billed(workspace_id)) < calls and time.monotonic() < deadline:
        time.sleep(0.1)
    return billed


def billed_micro_usd(billed: list[dict]) -> int:
    """What Anthropic would bill for these answers, priced as the ledger prices a call."""
    on = get_services().now().date()
    return sum(Usage.model_call(b["model"], TokenUsage(b["input_tokens"], b["output_tokens"],
                                                       b["cache_creation_input_tokens"],
                                                       b["cache_read_input_tokens"]), on).cost_micro_usd
               for b in billed)


def assert_metered_at_least_billed_and_everything_agrees(tenant, run: dict, billed: list[dict]) -> None:
    """The month's metered cost ≥ what the server answered; ledger = run = counters = quota;
    no reservation left (each settled or released once)."""
    workspace_id = tenant.workspace_id
    with tenant_scope(workspace_id):
        entries = list(ledger.entries(workspace_id, run["id"]))
        month = counters.read(workspace_id, counters.month(get_services().now()))
        quota = Quota.get_or_none(*Quota.key(workspace_id, counters.month(get_services().now())))
        left = list(Reservation.query(Run.partition(workspace_id, run["id"]), Reservation.sk.startswith("RESERVE#")))
    total = sum((Usage.of(e) for e in entries), Usage())
    assert micro(run["usage"]["cost_usd"]) == total.cost_micro_usd
    assert run["usage"]["input_tokens"] == total.input_tokens and run["usage"]["output_tokens"] == total.output_tokens
    assert month == total, "a fresh workspace: its month is this one run"
    assert int(quota.used_micro_usd) == int(quota.committed_micro_usd) == total.cost_micro_usd
    assert int(quota.used_tokens) == int(quota.committed_tokens) == total.tokens.total
    assert left == [], "every reservation was settled or released"
    usage = tenant.get("/usage", params={"period": "month"}).json()
    assert micro(usage["limits"]["budget_usd_per_month"]["used"]) == total.cost_micro_usd
    assert micro(usage["usage"]["model_cost_usd"]) == total.cost_micro_usd
    assert total.cost_micro_usd >= billed_micro_usd(billed) > 0, "metered is never below billed"


def test_a_model_call_that_times_out_is_metered_as_estimated_and_its_retry_as_answered(cloud, tenant):
    agent = create_agent(tenant, "slow-model", "architect")
    marker = "marker-stall-" + tenant.workspace_id
    cloud.model_server.faults.add({"stall_seconds": 3.0, "times": 1, "match": marker})
    with services_with(settings={"model_timeout_seconds": 1.0}):
        run = wait_for(tenant, launch(tenant, agent["id"], f"Summarise {marker}.").json()["id"])
    assert run["status"] == "succeeded", run
    billed = billed_once_settled(cloud, tenant.workspace_id, 2)
    assert len(billed) == 2, "the server answered both calls: the one the adapter gave up on, and the retry"

    events = events_of(tenant, run["id"])
    assert_dense(events)
    (called,) = [e for e in events if e["type"] == "model.called"]
    assert called["data"]["attempts"] == 2 and called["data"]["unanswered_attempts"] == 1
    lost, answered = model_entries(tenant.workspace_id, run["id"])
    assert lost.estimated is True and lost.entry.startswith("model#unanswered_")
    # (the stalled call is answered, and billed, after its retry was)
    (answered_bill,) = [b for b in billed if answered.entry == f"model#{b['id']}"]
    (lost_bill,) = [b for b in billed if b is not answered_bill]
    assert not answered.estimated
    assert int(answered.cost_micro_usd) == billed_micro_usd([answered_bill]) == micro(called["data"]["cost_usd"])
    assert int(lost.cost_micro_usd) >= billed_micro_usd([lost_bill]), "estimated at the most the call can cost"
    assert int(lost.output_tokens) == get_services().settings.model_max_tokens
    assert_metered_at_least_billed_and_everything_agrees(tenant, run, billed)


def test_a_stream_cut_off_midway_is_metered_as_estimated_under_its_message_id(cloud, tenant):
    agent = create_agent(tenant, "cut-off", "architect")
    marker = "marker-cut-" + tenant.workspace_id
    cloud.model_server.faults.add({"cut_after_events": 3, "times": 1, "match": marker})
    run = wait_for(tenant, launch(tenant, agent["id"], f"Summarise {marker}.").json()["id"])
    assert run["status"] == "succeeded", run
    billed = cloud.model_server.billed(tenant.workspace_id)
    assert len(billed) == 2

    lost, answered = model_entries(tenant.workspace_id, run["id"])
    assert (lost.entry, lost.estimated) == (f"model#{billed[0]['id']}", True), "the cut message's own id"
    assert (answered.entry, answered.estimated) == (f"model#{billed[1]['id']}", None)
    assert int(lost.cost_micro_usd) >= billed_micro_usd(billed[:1])
    assert_metered_at_least_billed_and_everything_agrees(tenant, run, billed)


def test_calls_timing_out_until_the_run_fails_are_each_metered_across_the_slices_retries(cloud, tenant):
    """Two attempts per slice, three slices (Step Functions retries ModelUnavailable twice): six
    paid calls, six estimated entries; the run fails model_unavailable with their cost on it."""
    agent = create_agent(tenant, "never-answered", "architect")
    marker = "marker-stall-forever-" + tenant.workspace_id
    cloud.model_server.faults.add({"stall_seconds": 2.0, "times": None, "match": marker})
    try:
        with services_with(settings={"model_timeout_seconds": 0.5, "model_max_attempts": 2,
                                     "model_max_wait_seconds": 5}):
            run = wait_for(tenant, launch(tenant, agent["id"], f"Summarise {marker}.").json()["id"], timeout=120)
    finally:
        cloud.model_server.faults.clear()
    assert run["status"] == "failed" and run["error"]["reason"] == "model_unavailable", run
    calls = sum(marker in str(body) for body in cloud.model_server.requests)
    billed = billed_once_settled(cloud, tenant.workspace_id, calls)
    assert calls == len(billed) == 6, (calls, len(billed))

    entries = model_entries(tenant.workspace_id, run["id"])
    assert len(entries) == 6 and all(e.estimated for e in entries), "each paid call once"
    assert len({e.entry for e in entries}) == 6
    events = events_of(tenant, run["id"])
    assert [e["type"] for e in events] == ["run.queued", "run.started", "run.failed"]
    assert events[-1]["data"]["usage"]["cost_usd"] == run["usage"]["cost_usd"] != "0.000000"
    assert_metered_at_least_billed_and_everything_agrees(tenant, run, billed)


def test_the_offline_model_honours_max_tokens_as_anthropic_does(cloud, tenant):
    """Issue 17, hole 10: a local answer never passes ``max_tokens``, so a call never costs more locally than
    the reservation AWS would hold it to: the run ends truncated, with only the tokens produced metered."""
    agent = create_agent(tenant, "long-winded", "architect")
    with services_with(settings={"model_max_tokens": 16}):
        run = wait_for(tenant, launch(tenant, agent["id"], "Explain everything at length. " * 30).json()["id"])
    assert run["status"] == "succeeded", run
    events = events_of(tenant, run["id"])
    (called,) = [e for e in events if e["type"] == "model.called"]
    assert called["data"]["stop_reason"] == "max_tokens"
    assert 0 < called["data"]["usage"]["output_tokens"] <= 16
    assert events[-1]["type"] == "run.succeeded" and events[-1]["data"]["truncated"] is True
    (billed,) = cloud.model_server.billed(tenant.workspace_id)
    assert billed["output_tokens"] == called["data"]["usage"]["output_tokens"]
    assert_metered_at_least_billed_and_everything_agrees(tenant, run, [billed])
    assert micro(run["usage"]["cost_usd"]) == billed_micro_usd([billed]), "an answered call: metered as billed"
