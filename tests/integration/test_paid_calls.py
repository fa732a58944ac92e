"""No paid model call without a hold of its own, and none unmetered (issue 17, hole 1, the gaps
decision 107 left): an attempt that may be billed (timed out, cut off) is metered at its hold and
the next attempt is reserved anew — where that does not fit, no retry: the run pauses at the
month's budget or ends at its tree's; and a call begun by a worker that died (killed at its
timeout mid-call, or crashed after the answer arrived but before its commit) is metered as an
estimated entry by whoever next finds its reservation — the retried slice, or the run's end."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agenthq.services import get_services
from agenthq.store import tenant_scope
from agenthq.store.items import Quota, Reservation, Run, RunTreeBudget
from agenthq.usage import counters, quota
from tests.integration.test_model_metering import (
    assert_metered_at_least_billed_and_everything_agrees,
    billed_micro_usd,
    billed_once_settled,
    micro,
    model_entries,
)
from tests.support import assert_dense, create_agent, events_of, launch, services_with, set_tier, signup, wait_for

pytestmark = pytest.mark.slow

ENDED = ("succeeded", "failed", "cancelled", "timed_out")
#: Short calls: an attempt gives up after 0.5 s of silence; three attempts a call.
SHORT_CALLS = {"model_timeout_seconds": 0.5, "model_max_attempts": 3, "model_max_wait_seconds": 5}


class Recorder:
    """The real (offline) model, keeping each request it is sent."""

    def __init__(self, real) -> None:
        self.real, self.requests = real, []

    def create_message(self, request):
        self.requests.append(request)
        return self.real.create_message(request)


def hold_of_first_call(api, name: str, personality: str, text: str) -> int:
    """What the first call of a run of ``text`` reserves (micro-dollars), for an agent ``name`` of
    ``personality`` alone in its workspace: a run of a probe workspace with the same agent and a text
    of the same bytes (ids are of one length) makes the same request."""
    probe = signup(api, tag="probe", tier="pro")
    agent = create_agent(probe, name, personality)
    model = Recorder(get_services().model)
    with services_with(model=model):
        run = wait_for(probe, launch(probe, agent["id"], text.replace("{wid}", probe.workspace_id)).json()["id"])
    assert run["status"] == "succeeded", run
    return quota.hold_for(model.requests[0], get_services().now()).micro_usd


def dollars(micro_usd: int) -> str:
    return f"{Decimal(micro_usd) / 1_000_000:.6f}"


def calls_with(cloud, marker: str) -> int:
    return sum(marker in str(body) for body in cloud.model_server.requests)


def month_of(workspace_id: str) -> Quota:
    with tenant_scope(workspace_id):
        item = Quota.get_or_none(*Quota.key(workspace_id, counters.month(get_services().now())))
    assert item is not None
    return item


def held_by(workspace_id: str, run_id: str) -> list[Reservation]:
    with tenant_scope(workspace_id):
        return list(Reservation.query(Run.partition(workspace_id, run_id), Reservation.sk.startswith("RESERVE#")))


# --------------------------------------------------------------------------- a hold per attempt


def test_calls_timing_out_with_room_for_one_hold_make_one_paid_attempt_and_the_run_pauses(cloud, api):
    """The month has room for one call's hold and a half. The call times out (the API may bill it):
    it is metered at its hold, and its retry would need a hold of its own, which does not fit — so no
    retry: the run pauses at the month's budget. Today's main retried on the one hold (three paid
    attempts, the month's spend past its budget by two holds)."""
    text = "Summarise marker-room-{wid}."
    hold = hold_of_first_call(api, "slow-model", "architect", text)
    tenant = signup(api, tier="pro")
    budget = hold + hold // 2
    set_tier(api, tenant.workspace_id, "enterprise",
             limit_overrides={"price_usd_per_month": "4800", "budget_usd_per_month": dollars(budget)})
    agent = create_agent(tenant, "slow-model", "architect")
    marker = "marker-room-" + tenant.workspace_id
    cloud.model_server.faults.add({"stall_seconds": 2.0, "times": None, "match": marker})
    try:
        with services_with(settings=SHORT_CALLS):
            run = wait_for(tenant, launch(tenant, agent["id"], text.replace("{wid}", tenant.workspace_id)).json()["id"],
                           statuses=("paused", *ENDED), timeout=120)
    finally:
        cloud.model_server.faults.clear()
    assert run["status"] == "paused", run
    assert calls_with(cloud, marker) == 1, "one attempt: the retry had no room for its hold"
    billed = billed_once_settled(cloud, tenant.workspace_id, 1)

    (lost,) = model_entries(tenant.workspace_id, run["id"])
    assert lost.estimated is True and int(lost.cost_micro_usd) == hold
    month = month_of(tenant.workspace_id)
    assert int(month.used_micro_usd) == hold and int(month.committed_micro_usd) <= budget, \
        "the month's used + reserved stays within its budget"
    assert billed_micro_usd(billed) <= hold <= budget, "what the API billed stays within the budget"
    assert held_by(tenant.workspace_id, run["id"]) == [], "the paused run holds nothing"
    events = events_of(tenant, run["id"])
    assert_dense(events)
    (paused,) = [e for e in events if e["type"] == "run.paused"]
    assert paused["data"]["reason"] == "budget_usd_per_month", paused


def test_calls_timing_out_under_a_root_budget_for_one_hold_end_the_run_within_it(cloud, api):
    """The tree variant: a run whose own budget (its tree's, as a root) holds one call and a half.
    The timed-out attempt is metered at its hold; the retry's hold does not fit in what is left, so
    the run ends budget_exhausted without it. The tree's spend, its ledger and the API's bill stay
    within the root's budget (today's main: three attempts on one hold, three holds spent)."""
    text = "Summarise marker-tree-{wid}."
    hold = hold_of_first_call(api, "frugal-model", "architect", text)
    tenant = signup(api, tier="pro")
    budget = hold + hold // 2
    agent = create_agent(tenant, "frugal-model", "architect", budget_usd=dollars(budget))
    marker = "marker-tree-" + tenant.workspace_id
    cloud.model_server.faults.add({"stall_seconds": 2.0, "times": None, "match": marker})
    try:
        with services_with(settings=SHORT_CALLS):
            run = wait_for(tenant, launch(tenant, agent["id"], text.replace("{wid}", tenant.workspace_id)).json()["id"],
                           timeout=120)
    finally:
        cloud.model_server.faults.clear()
    assert run["status"] == "failed" and run["error"]["reason"] == "budget_exhausted", run
    assert calls_with(cloud, marker) == 1, "one attempt: the retry had no room for its hold"
    billed = billed_once_settled(cloud, tenant.workspace_id, 1)

    (lost,) = model_entries(tenant.workspace_id, run["id"])
    assert lost.estimated is True and int(lost.cost_micro_usd) == hold
    with tenant_scope(tenant.workspace_id):
        tree = RunTreeBudget.get(*RunTreeBudget.key(tenant.workspace_id, run["id"]))
    assert int(tree.used_micro_usd) == int(tree.committed_micro_usd) == hold <= budget, \
        "the tree's spend is its ledger's and within the root's budget; nothing stays reserved"
    assert billed_micro_usd(billed) <= budget
    assert_metered_at_least_billed_and_everything_agrees(tenant, run, billed)


# --------------------------------------------------------------------------- a worker that dies mid-call


class AnsweredThenDied:
    """The real model, except that the worker "dies" once its first matching call was answered
    (billed), before the step could commit the answer: an error no step catches."""

    def __init__(self, real, marker: str) -> None:
        self.real, self.marker, self.died = real, marker, 0

    def create_message(self, request):
        response = self.real.create_message(request)
        if not self.died and self.marker in str(request.messages[0]):
            self.died += 1
            raise SystemError("the container died after the answer arrived")
        return response


def test_a_slice_that_dies_after_the_answer_arrived_leaves_that_call_metered_as_estimated(cloud, api):
    """The retried slice finds the call begun under the step's reservation with no ledger entry:
    it meters that call (estimated, at the hold) before calling again. Today's main reused the
    reservation: the first call, billed, was in no ledger."""
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "fragile-worker", "architect")
    marker = "marker-died-" + tenant.workspace_id
    model = AnsweredThenDied(get_services().model, marker)
    with services_with(model=model):
        run = wait_for(tenant, launch(tenant, agent["id"], f"Summarise {marker}.").json()["id"])
    assert model.died == 1
    assert run["status"] == "succeeded", run
    billed = cloud.model_server.billed(tenant.workspace_id)
    assert len(billed) == 2, "the server answered (and billed) both calls"

    lost, answered = model_entries(tenant.workspace_id, run["id"])
    assert lost.estimated is True and lost.entry.startswith("model#unanswered_"), lost.entry
    assert answered.estimated is None and answered.entry == f"model#{billed[1]['id']}"
    assert int(lost.cost_micro_usd) >= billed_micro_usd(billed[:1])
    events = events_of(tenant, run["id"])
    assert_dense(events)
    assert [e["type"] for e in events].count("model.called") == 1, "one answer was kept"
    assert_metered_at_least_billed_and_everything_agrees(tenant, run, billed)


def test_a_worker_killed_at_its_timeout_mid_call_leaves_each_call_metered(cloud, api):
    """The run worker runs in its own processes here, killed at its timeout (6 s) as Lambda kills
    it; the model stalls 12 s on every call (below the adapter's 60 s). Each slice dies mid-call;
    Step Functions retries it three times, then records the failure. Each retried slice meters the
    call its predecessor began, and the run's end the last one: four paid calls, four estimated
    entries, the month's metered cost at least what the server billed. Today's main metered none."""
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "killed-worker", "architect")
    marker = "marker-killed-" + tenant.workspace_id
    cloud.model_server.faults.add({"stall_seconds": 12.0, "times": None, "match": marker})
    try:
        with cloud.runtime.timeout_changed("RunStepsFunction", 6.0):
            run = wait_for(tenant, launch(tenant, agent["id"], f"Summarise {marker}.").json()["id"], timeout=240)
    finally:
        cloud.model_server.faults.clear()
    assert run["status"] == "failed", run
    calls = calls_with(cloud, marker)
    assert calls == 4, f"one call per invocation of the slice: {calls}"
    billed = billed_once_settled(cloud, tenant.workspace_id, calls, timeout=60)
    assert len(billed) == calls

    entries = model_entries(tenant.workspace_id, run["id"])
    assert len(entries) == calls and all(e.estimated for e in entries), [e.entry for e in entries]
    events = events_of(tenant, run["id"])
    assert_dense(events)
    assert [e["type"] for e in events] == ["run.queued", "run.started", "run.failed"]
    assert events[-1]["data"]["usage"]["cost_usd"] == run["usage"]["cost_usd"] != "0.000000", \
        "the run's end counts the call it metered"
    assert micro(run["usage"]["cost_usd"]) == calls * int(entries[0].cost_micro_usd)
    assert_metered_at_least_billed_and_everything_agrees(tenant, run, billed)


def test_a_hold_a_call_was_begun_under_is_marked_once_and_never_given_back(api):
    """quota.start_call marks a held reservation once (a second attempt cannot claim it); release and
    release_all leave a marked hold held (its call may be billed: it is metered, not given back), unless
    its caller knows no attempt under it was billed."""
    from agenthq import ids

    tenant = signup(api, tier="pro")
    wid, run_id = tenant.workspace_id, ids.new_id()
    hold, at = quota.Hold(tokens=1_000, micro_usd=5_000), get_services().now()
    key = Reservation.key(wid, run_id, 1)
    with tenant_scope(wid):
        assert quota.reserve(wid, run_id, 1, hold, quota.workspace_limits(wid), at) is None
        assert quota.start_call(wid, Reservation.get(*key), "unanswered_first") is True
        assert quota.start_call(wid, Reservation.get(*key), "unanswered_second") is False, "one call per hold"
        assert Reservation.get(*key).call_started == "unanswered_first"
        quota.release_all(wid, run_id)
        quota.release(wid, run_id, 1)
        assert Reservation.get_or_none(*key) is not None, "a hold a call was begun under is not given back"
        assert int(month_of(wid).committed_micro_usd) == 5_000
        quota.release(wid, run_id, 1, unbilled=True)
        assert Reservation.get_or_none(*key) is None
        assert int(month_of(wid).committed_micro_usd) == 0
        assert quota.start_call(wid, Reservation(*key), "unanswered_late") is False, "a hold given back"


# --------------------------------------------------------------------------- the mark rides on the commit before (275)

TWO_CALLS = 'Check.\n/tool calculator {"expression": "6*7"}'  # a tool turn, then the answer: two model calls


def test_a_slice_that_crashes_after_the_commit_that_marked_the_next_call_meters_exactly_what_was_billed(cloud, api):
    """The act step's reply writes the next call's reservation marked for that call (decision 275); the
    slice crashes right after that commit, before the call. It takes the mark off as it fails, so the
    retried slice reserves the call as one never begun: no estimated entry, the ledger is exactly what
    the server billed (decision 205 kept a write of its own per call for this crash)."""
    from tests.support import StepFault, step_faults

    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "crash-after-reply", "sre")
    with step_faults(StepFault(steps=("act",), when="after",
                               match=lambda event: event.get("workspace_id") == tenant.workspace_id)) as faults:
        run = wait_for(tenant, launch(tenant, agent["id"], TWO_CALLS).json()["id"])
    assert faults[0].fired == 1, "the fault was injected"
    assert run["status"] == "succeeded", run
    billed = cloud.model_server.billed(tenant.workspace_id)
    assert len(billed) == 2, "two calls, each made once"
    entries = model_entries(tenant.workspace_id, run["id"])
    assert [e.estimated for e in entries] == [None, None], [e.entry for e in entries]
    assert micro(run["usage"]["cost_usd"]) == billed_micro_usd(billed), "metered exactly what was billed"
    assert_metered_at_least_billed_and_everything_agrees(tenant, run, billed)


def test_the_commit_before_a_call_marks_it_and_a_slice_that_hands_back_takes_the_mark_off(cloud, api, monkeypatch):
    """Start's commit writes the first call's reservation marked; a slice that hands back before the
    call (here: no time left for a model call after start) takes the mark off, and the next slice marks
    it just before its request (``quota.start_call``, the one write of its own). The slice that goes on
    from an act step's reply to the call it marked writes nothing more for it: two calls, one
    ``start_call``, and nothing estimated."""
    from agenthq.runs import engine
    from tests.integration.test_run_slots import RecordedOrchestrator, new_run

    tenant = signup(api, tier="pro")
    wid = tenant.workspace_id
    agent = create_agent(tenant, "hands-back", "sre")
    marked: list[str] = []
    real_start_call = quota.start_call

    def start_call(workspace_id, reservation, call):
        marked.append(reservation.sk)
        return real_start_call(workspace_id, reservation, call)

    monkeypatch.setattr(quota, "start_call", start_call)
    with services_with(orchestrator=RecordedOrchestrator()):
        run_id = new_run(tenant, agent["id"], TWO_CALLS)
        event = {"workspace_id": wid, "run_id": run_id}
        assert engine.run_step(get_services(), {**event, "step": "start"}, seconds_left=lambda: 0.0) == \
            {"next": "think", "turn": 1}, "start, then it hands back: no time left for a model call"
        (held,) = held_by(wid, run_id)
        assert held.sk == "RESERVE#000001" and held.call_started is None, "the mark taken off as it handed back"
        assert engine.run_step(get_services(), {**event, "step": "think", "turn": 1})["next"] == "done"
    assert marked == ["RESERVE#000001"], "the second call's reservation came marked with the act step's reply"
    run = wait_for(tenant, run_id)
    assert run["status"] == "succeeded", run
    billed = cloud.model_server.billed(wid)
    assert len(billed) == 2
    assert [e.estimated for e in model_entries(wid, run_id)] == [None, None]
    assert micro(run["usage"]["cost_usd"]) == billed_micro_usd(billed)
    assert_metered_at_least_billed_and_everything_agrees(tenant, run, billed)


def test_a_run_ended_before_its_next_call_by_a_slice_that_did_not_make_the_last_one_meters_it(cloud, api):
    """A slice dies after its call was answered (billed); the retried slice finds the run past its
    deadline and ends it (``timed_out``) without a call of its own. It committed a step (the run's
    outcome) before the end, yet the call begun under the reservation was not its own: the end meters it
    (estimated, at the hold) and gives nothing back unmetered. Found by the invariant fuzzer: the end
    skipped the read because the slice had committed, and the marked hold stayed held by an ended run."""
    from datetime import timedelta

    from agenthq.runs import engine
    from tests.integration.test_run_slots import RecordedOrchestrator, new_run

    tenant = signup(api, tier="pro")
    wid = tenant.workspace_id
    agent = create_agent(tenant, "dies-then-late", "architect")
    marker = "marker-late-" + wid
    model = AnsweredThenDied(get_services().model, marker)
    with services_with(orchestrator=RecordedOrchestrator(), model=model):
        run_id = new_run(tenant, agent["id"], f"Summarise {marker}.")
        event = {"workspace_id": wid, "run_id": run_id}
        with pytest.raises(SystemError):
            engine.run_step(get_services(), {**event, "step": "start"})
        assert model.died == 1
        with tenant_scope(wid):  # the retry comes after the run's deadline
            Run(*Run.key(wid, run_id)).update(actions=[Run.deadline.set(get_services().now() - timedelta(seconds=1))])
        assert engine.run_step(get_services(), {**event, "step": "think", "turn": 1})["next"] == "done"
    run = wait_for(tenant, run_id)
    assert run["status"] == "timed_out", run
    assert held_by(wid, run_id) == [], "an ended run holds no reservation"
    billed = cloud.model_server.billed(wid)
    assert len(billed) == 1
    (lost,) = model_entries(wid, run_id)
    assert lost.estimated is True and int(lost.cost_micro_usd) >= billed_micro_usd(billed)
    assert_metered_at_least_billed_and_everything_agrees(tenant, run, billed)
