"""Sessions that heal (decisions 310-319): a session never stays ``running`` behind a run that has
ended, and a queued turn's timeout counts from its start.

The crash is injected where it happens: the process that ends a session's run (a run worker whose
retries all die, or a cancel request) dies between the run's ending transaction and the hand-on
after it. The Step Functions orchestrator is the real one, except that answering a task token dies
(``DyingOrchestrator``, a subclass of the real interface) while the test says so."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from agenthq.adapters.stepfunctions import RUNNING, StepFunctionsOrchestrator
from tests.support import (
    InjectedFault,
    Tenant,
    create_agent,
    events_of,
    launch,
    services_with,
    session_events_of,
    set_tier,
    signup,
    until,
    wait_for,
)

pytestmark = pytest.mark.slow

SCHEDULE = ("PeriodResetFunction", "ApprovalExpiry")  # the one-minute schedule


class DyingOrchestrator(StepFunctionsOrchestrator):
    """The real orchestrator, except that answering a task token with ``next_step`` dies (raises, as a
    process that dies there would stop) while ``dying`` is set and ``token_wanted`` says so."""

    def __init__(self, next_step: str, token_wanted: Callable[[str], bool] = lambda token: True) -> None:
        from agenthq.services import get_services

        real = get_services().orchestrator
        assert isinstance(real, StepFunctionsOrchestrator)
        super().__init__(real.client, real.state_machine_arn)
        self.next_step, self.token_wanted = next_step, token_wanted
        self.dying = True
        self.died = 0

    def send_next(self, task_token: str, next_step: str) -> bool:
        if self.dying and next_step == self.next_step and self.token_wanted(task_token):
            self.died += 1
            raise InjectedFault(f"died answering {next_step}")
        return super().send_next(task_token, next_step)


@contextmanager
def clock_moved(by: timedelta) -> Iterator[None]:
    """Meanwhile the local cloud's functions run in this process, on a clock ``by`` ahead of the real one."""
    from agenthq.services import get_services

    with services_with():
        get_services().clock = lambda: time.time() + by.total_seconds()
        yield


def new_session(tenant: Tenant, agent_id: str) -> dict[str, Any]:
    response = tenant.post(f"/agents/{agent_id}/sessions", json={})
    assert response.status_code == 201, response.text
    return response.json()


def send(tenant: Tenant, session_id: str, text: str, **body: Any) -> dict[str, Any]:
    response = tenant.post(f"/sessions/{session_id}/messages", json={"input": text, **body})
    assert response.status_code == 202, response.text
    return response.json()


def hand_on_marks(tenant: Tenant, session_id: str) -> list[str]:
    """The runs of the session whose hand-on is owed (its ``SessionHandOn`` marks)."""
    from agenthq.store import tenant_scope
    from agenthq.store.items import AgentSession, SessionHandOn

    with tenant_scope(tenant.workspace_id):
        return [m.run_id for m in SessionHandOn.query(AgentSession.partition(tenant.workspace_id, session_id),
                                                      SessionHandOn.sk.startswith("HANDON#"), consistent_read=True)]


def in_slot_queue(tenant: Tenant, run_id: str) -> bool:
    from agenthq.store import tenant_scope
    from agenthq.store.items import QueuedRun

    with tenant_scope(tenant.workspace_id):
        return QueuedRun.get_or_none(*QueuedRun.key(tenant.workspace_id, run_id)) is not None


def turn_token(tenant: Tenant, session_id: str, number: int) -> Callable[[str], bool]:
    """Whether a task token is the one turn ``number`` of the session waits on (read as the engine does)."""
    from agenthq.store.items import SessionTurn

    def wanted(token: str) -> bool:
        turn = SessionTurn.get_or_none(*SessionTurn.key(tenant.workspace_id, session_id, number))
        return turn is not None and turn.task_token == token

    return wanted


def test_a_run_end_whose_hand_on_dies_is_handed_on_by_the_minute_schedule_once(cloud, api):
    """Turn 1 ends; every attempt of its Finish (and of RecordFailure) dies while starting turn 2, so its
    execution ends without the hand-on: turn 2 would wait (and the session show ``running``) until its
    WaitForSlot timed out a day later. The minute schedule, in its own worker, finds the owed hand-on and
    starts turn 2, once, however often it runs."""
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "mender", "sre")
    session = new_session(tenant, agent["id"])
    dying = DyingOrchestrator("start", turn_token(tenant, session["id"], 2))
    with services_with(orchestrator=dying):
        first = send(tenant, session["id"], "Take a while\n/latency 2")
        second = send(tenant, session["id"], "And then this")
        assert wait_for(tenant, first["id"])["status"] == "succeeded"
        until(lambda: (e := dying.describe(first["id"])) is not None and e.status != RUNNING,
              "turn 1's execution ends (its retries died)", 180)
        dying.dying = False
    assert dying.died >= 2, "the hand-on died, and so did its retry"

    time.sleep(2)
    shown = tenant.get(f"/sessions/{session['id']}").json()
    assert shown["status"] == "running" and shown["turns"] == 2, shown
    assert tenant.get(f"/runs/{second['id']}").json()["status"] == "queued", "turn 2 waits on nobody"
    assert hand_on_marks(tenant, session["id"]) == [first["id"]], "the owed hand-on is kept"

    # In its own worker, with its role's IAM: the hand-on is not overdue yet (the ending process may still be at it).
    (now,) = cloud.schedules.fire(*SCHEDULE)
    assert "sessions_handed_on" in now and now["session_hand_on_failures"] == 0, now
    assert tenant.get(f"/runs/{second['id']}").json()["status"] == "queued"

    # No one does anything: the local cloud's own one-minute timer runs the schedule in its worker (with its
    # role's IAM, as on AWS) and, once the hand-on is a minute overdue, hands on (within about two minutes).
    done = wait_for(tenant, second["id"], timeout=240)
    again = [cloud.schedules.fire(*SCHEDULE)[0] for _ in range(2)]  # and again: nothing is owed any more
    assert not any(f["session_hand_on_failures"] for f in again), again
    assert done["status"] == "succeeded", done
    assert done["output"] == "Offline answer: And then this"
    assert [e["type"] for e in events_of(tenant, second["id"])].count("run.started") == 1, "started once"

    shown = tenant.get(f"/sessions/{session['id']}").json()
    assert shown["status"] == "idle" and shown["turns"] == 2 and shown["last_run_id"] == second["id"], shown
    assert shown["usage"]["runs"] == 2
    one = tenant.get(f"/runs/{first['id']}").json()
    assert Decimal(shown["usage"]["cost_usd"]) == Decimal(one["usage"]["cost_usd"]) + Decimal(done["usage"]["cost_usd"])
    assert [e["type"] for e in session_events_of(tenant, session["id"])].count("session.idle") == 1
    assert hand_on_marks(tenant, session["id"]) == [], "every owed hand-on done"


def test_a_cancel_that_dies_after_the_runs_end_is_handed_on_once_by_parallel_schedules(cloud, api):
    """The session's only turn waits for a run slot; its cancel request dies after the run's end (as it
    answers the turn's place in the slot queue), before the hand-on: the session would stay ``running``
    with nothing ahead of it, and the next message would wait for ever. Four runs of the minute schedule
    at once mark the turn done once, write ``session.idle`` once, and start the next turn once."""
    tenant = signup(api, tier="pro")
    set_tier(api, tenant.workspace_id, "enterprise", limit_overrides={"concurrent_runs": 1})
    agent = create_agent(tenant, "patient", "sre")
    holder = launch(tenant, agent["id"], "Hold the only slot\n/latency 4").json()
    until(lambda: tenant.get(f"/runs/{holder['id']}").json()["status"] == "running", "the holder starts", 60)
    session = new_session(tenant, agent["id"])
    dying = DyingOrchestrator("finish")
    with services_with(orchestrator=dying):
        turn = send(tenant, session["id"], "Never mind this one")
        until(lambda: in_slot_queue(tenant, turn["id"]), "the turn waits for a slot", 60)
        cancelled = tenant.post(f"/runs/{turn['id']}/cancel")
        dying.dying = False
    assert dying.died == 1 and cancelled.status_code == 500, cancelled.text  # the request died (JSON 500)
    assert tenant.get(f"/runs/{turn['id']}").json()["status"] == "cancelled", "its end was committed"

    after = send(tenant, session["id"], "But this one")
    assert wait_for(tenant, holder["id"])["status"] == "succeeded"
    time.sleep(3)
    assert tenant.get(f"/runs/{after['id']}").json()["status"] == "queued", "waits behind an ended turn"
    assert tenant.get(f"/sessions/{session['id']}").json()["status"] == "running"

    with clock_moved(timedelta(seconds=61)), ThreadPoolExecutor(max_workers=4) as pool:
        fired = [f[0] for f in pool.map(lambda _: cloud.schedules.fire(*SCHEDULE), range(4))]
        done = wait_for(tenant, after["id"])
    assert not any(f["session_hand_on_failures"] for f in fired), fired
    assert done["status"] == "succeeded" and done["output"] == "Offline answer: But this one", done
    assert [e["type"] for e in events_of(tenant, after["id"])].count("run.started") == 1

    shown = tenant.get(f"/sessions/{session['id']}").json()
    assert shown["status"] == "idle" and shown["turns"] == 2 and shown["usage"]["runs"] == 2, shown
    entries = tenant.get(f"/sessions/{session['id']}/messages").json()["items"]
    assert [(e["role"], e["run_id"]) for e in entries] == [
        ("user", turn["id"]), ("assistant", turn["id"]), ("user", after["id"]), ("assistant", after["id"])]
    assert entries[1]["text"].startswith("(The run ended cancelled")
    kinds = [e["type"] for e in session_events_of(tenant, session["id"])]
    assert kinds.count("session.idle") == 1, kinds
    assert hand_on_marks(tenant, session["id"]) == []


def test_a_turn_queued_longer_than_its_timeout_still_runs_its_timeout_counts_from_its_start(api):
    """Turn 2 (timeout 6 s) waits about 8 s behind turn 1: before, its deadline passed while it waited and
    it ended ``timed_out`` at its first model call; its timeout counts from its start now."""
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "punctual", "sre")
    session = new_session(tenant, agent["id"])
    first = send(tenant, session["id"], "Take a while\n/latency 8")
    second = send(tenant, session["id"], "Quick one", timeout_seconds=6)
    one, two = wait_for(tenant, first["id"]), wait_for(tenant, second["id"])
    assert one["status"] == "succeeded", one
    assert two["status"] == "succeeded", two
    waited = datetime.fromisoformat(two["started_at"]) - datetime.fromisoformat(two["created_at"])
    assert waited > timedelta(seconds=6), "it waited longer than its timeout"
    assert two["output"] == "Offline answer: Quick one"


def test_a_turn_that_runs_past_its_timeout_from_its_start_still_times_out(api):
    """The timeout still holds once the turn runs: 2 s from its start, with a model call of 4 s."""
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "slowpoke", "sre")
    session = new_session(tenant, agent["id"])
    first = send(tenant, session["id"], "Take a while\n/latency 3")
    second = send(tenant, session["id"], "Slowly\n/latency 4\n/tool current_time {}", timeout_seconds=2)
    assert wait_for(tenant, first["id"])["status"] == "succeeded"
    two = wait_for(tenant, second["id"])
    assert two["status"] == "timed_out", two
    assert two["error"] == {"reason": "run_timeout", "message": "The run did not finish within 2 s."}
    assert "tool.called" not in [e["type"] for e in events_of(tenant, second["id"])]
