"""A model call reserved just before midnight on a month's last day and
answered after it (issue 17, hole 10): the call belongs to the month whose
budget admitted it — its reservation is settled (or released) there, and its
ledger entry and its day's and month's counters say that month too — and the
new month starts with nothing of it. Driven by the services' injectable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agenthq.adapters.model import ModelUnavailable, UnansweredCall
from agenthq.agent_lookup import find_agent
from agenthq.runs.engine import run_step
from agenthq.runs.launch import create_run_record
from agenthq.services import Services, get_services
from agenthq.store import tenant_scope
from agenthq.store.items import Quota, Reservation, Run, RunTreeBudget
from agenthq.usage import Usage, counters, ledger
from tests.support import create_agent, signup

pytestmark = pytest.mark.slow

JUST_BEFORE = datetime(2026, 11, 30, 23, 59, 59, 900_000, tzinfo=UTC)
OLD_MONTH, NEW_MONTH = "MONTH#2026-11", "MONTH#2026-12"
OLD_DAY, NEW_DAY = "DAY#2026-11-30", "DAY#2026-12-01"


class MovingClock:
    """The services' clock, which the test (and the model, as it answers) moves on."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


class SlowModel:
    """The real (offline) model, whose answer takes ``seconds`` of the test's clock —
    or, with ``fails``, which gives up after them (ModelUnavailable, as after its retries)."""

    def __init__(self, real, clock: MovingClock, seconds: float, fails: bool = False,
                 unanswered: tuple[UnansweredCall, ...] = ()) -> None:
        self.real, self.clock, self.seconds, self.fails, self.unanswered = real, clock, seconds, fails, unanswered
        self.calls = 0

    def create_message(self, request):
        self.calls += 1
        self.clock.at += timedelta(seconds=self.seconds)
        if self.fails:
            raise ModelUnavailable("overloaded (offline fault)", status=529, unanswered=self.unanswered)
        return self.real.create_message(request)


def started_at_the_months_end(api, model_for):
    """A run launched and started at 23:59:59.9 UTC on 30 November: its first
    model call is reserved then (with the start), and answered by ``model_for(clock)``."""
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "night-shift", "sre")
    clock = MovingClock(JUST_BEFORE)
    real = get_services()
    model = model_for(real.model, clock)
    services = Services(real.settings, clock, model=model)
    with tenant_scope(tenant.workspace_id):
        run = create_run_record(services, tenant.workspace_id, find_agent(tenant.workspace_id, agent["id"]),
                                "Say good night.", created_by=tenant.user_id)
    return tenant, services, model, run


def quota_of(workspace_id: str, period: str) -> tuple[int, int]:
    """(used, reserved) micro-dollars of ``period``'s quota."""
    with tenant_scope(workspace_id):
        quota = Quota.get_or_none(*Quota.key(workspace_id, period))
    if quota is None:
        return 0, 0
    return int(quota.used_micro_usd), int(quota.committed_micro_usd) - int(quota.used_micro_usd)


def counted(workspace_id: str, period: str) -> Usage:
    with tenant_scope(workspace_id):
        return counters.read(workspace_id, period)


def test_a_call_reserved_at_23_59_59_9_on_the_months_last_day_and_answered_after_midnight_is_that_months(api):
    tenant, services, model, run = started_at_the_months_end(
        api, lambda real, clock: SlowModel(real, clock, seconds=2.0))
    wid = tenant.workspace_id
    with tenant_scope(wid):
        assert run_step(services, {"step": "start", "workspace_id": wid, "run_id": run.id}, lambda: 1_000.0) == {
            "next": "done", "turn": 1}
        ended = Run.get(*Run.key(wid, run.id))
        (call,) = [e for e in ledger.entries(wid, run.id) if e.entry.startswith("model#")]
        left = list(Reservation.query(Run.partition(wid, run.id), Reservation.sk.startswith("RESERVE#")))
    assert model.calls == 1 and ended.status == "succeeded"
    assert ended.finished_at >= datetime(2026, 12, 1, tzinfo=UTC), "the answer came after midnight"
    cost = int(call.cost_micro_usd)
    assert cost > 0 and left == []

    assert quota_of(wid, OLD_MONTH) == (cost, 0), "November's budget admitted it: it is spent there, nothing held"
    assert quota_of(wid, NEW_MONTH) == (0, 0), "December starts with nothing of it"
    assert counted(wid, OLD_MONTH).cost_micro_usd == cost, "November's counters agree with its quota"
    assert counted(wid, NEW_MONTH).cost_micro_usd == 0
    assert counted(wid, OLD_DAY).cost_micro_usd == cost and counted(wid, NEW_DAY).cost_micro_usd == 0
    assert counted(wid, OLD_DAY).model_calls == 1
    assert call.at < datetime(2026, 12, 1, tzinfo=UTC), "its ledger entry is dated when the call was made"
    assert counted(wid, NEW_DAY).agent_seconds == int(ended.agent_seconds), "the run's end is counted when it ends"


def test_a_call_reserved_before_midnight_that_fails_after_it_gives_back_the_old_months_reservation(api):
    tenant, services, model, run = started_at_the_months_end(
        api, lambda real, clock: SlowModel(real, clock, seconds=2.0, fails=True))
    wid = tenant.workspace_id
    with tenant_scope(wid), pytest.raises(ModelUnavailable):
        run_step(services, {"step": "start", "workspace_id": wid, "run_id": run.id}, lambda: 1_000.0)
    assert model.calls == 1
    with tenant_scope(wid):
        left = list(Reservation.query(Run.partition(wid, run.id), Reservation.sk.startswith("RESERVE#")))
    assert left == []
    assert quota_of(wid, OLD_MONTH) == (0, 0), "nothing is left reserved in November"
    assert quota_of(wid, NEW_MONTH) == (0, 0)


def test_a_call_reserved_before_midnight_whose_answer_never_arrives_is_estimated_in_the_old_month(api):
    """The adapter gave up after midnight on an attempt the API may bill: it is metered at the
    call's reserved upper bound (estimated), in November — where it was reserved."""
    lost = (UnansweredCall(id="unanswered_0123456789abcdef", reason="timeout"),)
    tenant, services, model, run = started_at_the_months_end(
        api, lambda real, clock: SlowModel(real, clock, seconds=70.0, fails=True, unanswered=lost))
    wid = tenant.workspace_id
    with tenant_scope(wid), pytest.raises(ModelUnavailable):
        run_step(services, {"step": "start", "workspace_id": wid, "run_id": run.id}, lambda: 1_000.0)
    with tenant_scope(wid):
        (entry,) = [e for e in ledger.entries(wid, run.id) if e.entry.startswith("model#")]
    assert entry.estimated and entry.at < datetime(2026, 12, 1, tzinfo=UTC)
    cost = int(entry.cost_micro_usd)
    assert quota_of(wid, OLD_MONTH) == (cost, 0) and quota_of(wid, NEW_MONTH) == (0, 0)
    assert counted(wid, OLD_MONTH).cost_micro_usd == counted(wid, OLD_DAY).cost_micro_usd == cost
    assert counted(wid, NEW_MONTH).cost_micro_usd == 0
    with tenant_scope(wid):
        tree = RunTreeBudget.get(*RunTreeBudget.key(wid, run.id))
    assert int(tree.used_micro_usd) == int(tree.committed_micro_usd) == cost, "its run tree counts it too"
