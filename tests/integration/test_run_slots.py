"""The workspace's run slots under races, step by step: the run engine's steps
are called as the state machine calls them, against DynamoDB Local, with an
orchestrator that records the task tokens it is asked to answer — so each race
is played in its racy order, every time.

Invariants (docs/security.md): running ≤ the current limit once a tier change
took effect (runs already running finish); no slot is held by an ended run;
every queued run starts or ends; a cancel ends a run wherever it waits; a child
never outlives its parent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agenthq.adapters.model import ModelClient, ModelRequest, ModelResponse
from agenthq.adapters.stepfunctions import Execution, Orchestrator
from agenthq.agent_lookup import load_agent
from agenthq.runs import engine
from agenthq.runs.cancel import request_cancel
from agenthq.runs.launch import create_run_record
from agenthq.runs.records import iter_events, load_run
from agenthq.services import get_services
from agenthq.store import global_scope, tenant_scope
from agenthq.store.items import PausedRun, QueuedRun, Run, RunSlots
from tests.support import (
    UnreachableStepFunctions,
    assert_error,
    create_agent,
    launch,
    services_with,
    set_tier,
    signup,
    table_items,
    wait_for,
)

pytestmark = pytest.mark.slow


class StartRefused(Exception):
    """StartExecution failed (as when Step Functions cannot be reached)."""


class RecordedOrchestrator(Orchestrator):
    """Step Functions as the steps see it: executions started are recorded, and
    a task token is answered once, while its task waits (``issue``), as
    SendTaskSuccess would; a token whose task was retried or timed out
    (``expire``) is refused."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.refuse_starts = 0  # the next this many StartExecution calls fail (Step Functions unreachable)
        self.answers: dict[str, str] = {}
        self._waiting: set[str] = set()
        self._count = 0

    def issue(self, what: str) -> str:
        self._count += 1
        token = f"{what}-{self._count}"
        self._waiting.add(token)
        return token

    def expire(self, token: str) -> None:
        self._waiting.discard(token)

    def ping(self) -> None:
        return None

    def start(self, name: str, payload: dict[str, Any]) -> str:
        if self.refuse_starts:
            self.refuse_starts -= 1
            raise StartRefused(name)
        self.started.append(name)
        return name

    def send_next(self, task_token: str, next_step: str) -> bool:
        if task_token not in self._waiting:
            return False
        self._waiting.discard(task_token)
        self.answers[task_token] = next_step
        return True

    def describe(self, name: str) -> Execution | None:
        return None

    def stop(self, name: str, cause: str) -> None:
        return None


@pytest.fixture()
def orchestrator(cloud) -> Iterator[RecordedOrchestrator]:
    recorded = RecordedOrchestrator()
    with services_with(orchestrator=recorded):  # the local cloud's functions (the admin's too) use it meanwhile
        yield recorded


@pytest.fixture()
def tenant(api):
    return signup(api, tier="pro")


def limit_to(tenant, concurrent_runs: int, **more: Any) -> None:
    """The operator sets the workspace's concurrency (a signed tier change)."""
    set_tier(tenant.api, tenant.workspace_id, "enterprise",
             limit_overrides={"concurrent_runs": concurrent_runs, **more})


def new_run(tenant, agent_id: str, text: str = "Say hello.") -> str:
    """A run as a launch writes it (queued), its execution not started: the test plays it."""
    with tenant_scope(tenant.workspace_id):
        agent = load_agent(tenant.workspace_id, agent_id)
        run = create_run_record(get_services(), tenant.workspace_id, agent, text, created_by=tenant.user_id)
    return run.id


def step(tenant, name: str, run_id: str, **event: Any) -> dict[str, Any]:
    """One task of the run's state machine, as Step Functions invokes it."""
    return engine.run_step(get_services(), {"step": name, "workspace_id": tenant.workspace_id, "run_id": run_id,
                                            **event})


def delegating_parent(tenant) -> str:
    """A coordinator's run, started, whose next step delegates to a helper agent: its id."""
    coordinator = create_agent(tenant, "lead", "coordinator")
    create_agent(tenant, "helper", "sre")
    task = "Plan it.\n/tool delegate " + json.dumps({"agent": "helper", "input": "Compute."})
    parent = new_run(tenant, coordinator["id"], task)
    assert step(tenant, "start", parent) == {"next": "delegate", "turn": 1}
    return parent


def run_of(tenant, run_id: str) -> Run:
    with tenant_scope(tenant.workspace_id):
        return load_run(tenant.workspace_id, run_id)


def slots_of(tenant) -> tuple[int, int, int]:
    """(pending, running, waiting) of the workspace's slots item."""
    with tenant_scope(tenant.workspace_id):
        slots = RunSlots.get_or_none(*RunSlots.key(tenant.workspace_id))
    return (0, 0, 0) if slots is None else (int(slots.pending or 0), int(slots.running or 0), int(slots.waiting or 0))


def in_queue(tenant) -> list[str]:
    with tenant_scope(tenant.workspace_id):
        return [q.run_id for q in QueuedRun.query(QueuedRun.key(tenant.workspace_id, "")[0], consistent_read=True)]


def running(tenant, agent_id: str, count: int) -> list[str]:
    """``count`` runs that started (each holds a slot; its first model call is next)."""
    ids = [new_run(tenant, agent_id) for _ in range(count)]
    for run_id in ids:
        assert _start(tenant, run_id) == "think"
    return ids


def _start(tenant, run_id: str) -> str:
    """The Start task alone (a slice of one step that hands back: the model call is the test's next move)."""
    return engine.run_step(get_services(), {"step": "start", "workspace_id": tenant.workspace_id, "run_id": run_id},
                           seconds_left=lambda: 0.0)["next"]


def queued(tenant, orchestrator: RecordedOrchestrator, agent_id: str) -> tuple[str, str]:
    """A run that found no free slot at Start and waits in the queue: (run id, its WaitForSlot token)."""
    run_id = new_run(tenant, agent_id)
    assert _start(tenant, run_id) == "queue"
    token = orchestrator.issue(f"slot-{run_id}")
    assert step(tenant, "queue", run_id, task_token=token) == {"next": "queue", "turn": 0}
    return run_id, token


def end(tenant, run_id: str) -> None:
    """The run ends (its step failed for good: RecordFailure), giving back what it holds."""
    step(tenant, "fail", run_id, error={"Error": "States.Timeout", "Cause": "the test ends it"})
    assert run_of(tenant, run_id).status == "failed"


# --------------------------------------------------------------------------- hole 4: the limit after a tier change


def test_after_a_downgrade_an_ending_run_gives_its_slot_back_until_running_is_below_the_new_limit(
        tenant, orchestrator):
    limit_to(tenant, 3)
    agent = create_agent(tenant, "worker", "sre")
    first, second, third = running(tenant, agent["id"], 3)
    waiting, token = queued(tenant, orchestrator, agent["id"])
    assert slots_of(tenant) == (4, 3, 1)

    limit_to(tenant, 1)  # the downgrade: the three running runs finish, nothing new starts meanwhile
    end(tenant, first)
    assert slots_of(tenant) == (3, 2, 1) and token not in orchestrator.answers, \
        "two runs still run on a limit of one: the ended run's slot is given back, not handed over"
    end(tenant, second)
    assert slots_of(tenant) == (2, 1, 1) and token not in orchestrator.answers
    end(tenant, third)  # running falls below the limit: the queued run gets the slot
    assert orchestrator.answers[token] == "start"
    assert slots_of(tenant) == (1, 1, 0) and in_queue(tenant) == []
    assert _start(tenant, waiting) == "think" and run_of(tenant, waiting).slot == "own"


def test_a_slot_taken_against_a_limit_read_before_a_downgrade_is_refused(tenant, orchestrator):
    limit_to(tenant, 3)
    agent = create_agent(tenant, "worker", "sre")
    running(tenant, agent["id"], 1)
    late = new_run(tenant, agent["id"])
    with tenant_scope(tenant.workspace_id):
        work = engine.Slice(get_services(), load_run(tenant.workspace_id, late))
        assert work.limits().concurrent_runs == 3  # the Start step has read the limit ...
        limit_to(tenant, 1)  # ... and the downgrade takes effect before it takes its slot
        assert engine.start(work, {"step": "start", "turn": 0}) == "queue"
    assert slots_of(tenant) == (2, 1, 0), "one run on a limit of one: the late run did not start"
    assert run_of(tenant, late).status == "queued" and run_of(tenant, late).slot is None


def test_a_raised_limit_starts_queued_runs_at_once_oldest_first(tenant, orchestrator):
    limit_to(tenant, 1)
    agent = create_agent(tenant, "worker", "sre")
    (holder,) = running(tenant, agent["id"], 1)
    waiting = [queued(tenant, orchestrator, agent["id"]) for _ in range(3)]
    assert slots_of(tenant) == (4, 1, 3)

    limit_to(tenant, 3)  # the upgrade: two queued runs start without waiting for the holder to end
    assert [orchestrator.answers.get(token) for _, token in waiting] == ["start", "start", None]
    assert slots_of(tenant) == (4, 3, 1) and in_queue(tenant) == [waiting[2][0]]
    assert run_of(tenant, holder).status == "running"
    for run_id, _ in waiting[:2]:
        assert _start(tenant, run_id) == "think"


# --------------------------------------------------------------------------- hole 5: slots that leak


def test_a_queued_run_that_ends_as_it_is_handed_a_slot_passes_the_slot_on(tenant, orchestrator):
    limit_to(tenant, 1)
    agent = create_agent(tenant, "worker", "sre")
    (holder,) = running(tenant, agent["id"], 1)
    cancelled, cancelled_token = queued(tenant, orchestrator, agent["id"])
    after, after_token = queued(tenant, orchestrator, agent["id"])

    with tenant_scope(tenant.workspace_id):  # the cancel is recorded; the queued run's Finish reads it ...
        Run(*Run.key(tenant.workspace_id, cancelled)).update(actions=[Run.cancel_requested.set(True)])
        finishing = engine.Slice(get_services(), load_run(tenant.workspace_id, cancelled))
    end(tenant, holder)  # ... the holder's end hands it the slot (it is the oldest in the queue) ...
    assert orchestrator.answers[cancelled_token] == "start"
    with tenant_scope(tenant.workspace_id):
        engine.finish(finishing, {"step": "finish"})  # ... and the Finish writes its end from that read
    assert run_of(tenant, cancelled).status == "cancelled"
    assert orchestrator.answers.get(after_token) == "start", "the slot it was handed went on to the next run"
    assert slots_of(tenant) == (1, 1, 0) and in_queue(tenant) == []
    assert _start(tenant, after) == "think"
    end(tenant, after)
    assert slots_of(tenant) == (0, 0, 0), "no slot leaked"


def test_a_retried_queue_step_does_not_queue_a_run_that_holds_a_slot(tenant, orchestrator):
    limit_to(tenant, 1)
    agent = create_agent(tenant, "worker", "sre")
    (holder,) = running(tenant, agent["id"], 1)
    waiting, first_token = queued(tenant, orchestrator, agent["id"])
    orchestrator.expire(first_token)  # its invocation timed out after the enqueue: Step Functions retries ...
    end(tenant, holder)  # ... while the holder's end hands it the slot (answering the dead token)
    assert first_token not in orchestrator.answers and run_of(tenant, waiting).slot == "own"

    retry_token = orchestrator.issue("slot-retry")
    assert step(tenant, "queue", waiting, task_token=retry_token)["next"] == "start"
    assert orchestrator.answers[retry_token] == "start"
    assert slots_of(tenant) == (1, 1, 0) and in_queue(tenant) == [], "it holds its slot and is not in the queue"
    assert _start(tenant, waiting) == "think"
    end(tenant, waiting)
    assert slots_of(tenant) == (0, 0, 0)


class SliceInterrupted(engine.Slice):
    """A slice of the run worker whose next commit waits for ``meanwhile`` (another writer) to run first."""

    def __init__(self, *args: Any, meanwhile: Callable[[], None]) -> None:
        super().__init__(*args)
        self.meanwhile: Callable[[], None] | None = meanwhile

    def commit(self, change: Any) -> Run:
        if self.meanwhile is not None:
            interleaved, self.meanwhile = self.meanwhile, None
            interleaved()
        return super().commit(change)


def test_a_hand_over_answers_the_token_a_retried_queue_step_left_not_the_dead_one(tenant, orchestrator):
    limit_to(tenant, 1)
    agent = create_agent(tenant, "worker", "sre")
    (holder,) = running(tenant, agent["id"], 1)
    waiting, first_token = queued(tenant, orchestrator, agent["id"])
    orchestrator.expire(first_token)  # the queue step's invocation timed out after its enqueue
    retry_token = orchestrator.issue("slot-retry")

    def retried_queue_step() -> None:  # between the holder's end reading the queue and writing its end
        assert step(tenant, "queue", waiting, task_token=retry_token)["next"] == "queue"

    with tenant_scope(tenant.workspace_id):
        ending = SliceInterrupted(get_services(), load_run(tenant.workspace_id, holder), meanwhile=retried_queue_step)
        engine.fail(ending, {"step": "fail", "error": {"Error": "States.Timeout", "Cause": "the test ends it"}})
    assert run_of(tenant, holder).status == "failed"
    assert orchestrator.answers.get(retry_token) == "start", "the waiting task is the retried one: it is woken"
    assert slots_of(tenant) == (1, 1, 0) and in_queue(tenant) == []
    assert _start(tenant, waiting) == "think"


# --------------------------------------------------------------------------- hole 8: runs that never end


def test_a_cancel_racing_a_pause_ends_the_run_and_frees_its_slot(tenant, orchestrator):
    limit_to(tenant, 1, tokens_per_month=1)  # no model call fits: the run pauses at its first
    agent = create_agent(tenant, "thrifty", "sre")
    run_id = new_run(tenant, agent["id"])
    assert step(tenant, "start", run_id) == {"next": "pause", "turn": 1}
    with tenant_scope(tenant.workspace_id):  # the Paused task's invocation reads the run (not cancelled) ...
        pausing = engine.Slice(get_services(), load_run(tenant.workspace_id, run_id))
        request_cancel(get_services(), load_run(tenant.workspace_id, run_id))  # ... the cancel comes ...
        token = orchestrator.issue("paused")
        engine.pause(pausing, {"step": "pause", "task_token": token, "turn": 1})  # ... then it pauses
    assert orchestrator.answers.get(token) == "finish", "the cancel is not lost: the run goes on to end"
    step(tenant, "finish", run_id, turn=1)
    assert run_of(tenant, run_id).status == "cancelled"
    assert slots_of(tenant) == (0, 0, 0)


def test_a_tier_raised_between_the_pause_decision_and_the_pause_resumes_the_run(tenant, orchestrator):
    """The think step records the limit and the state machine goes to its Paused task; a tier raise that
    lands before that task marks the run paused finds nothing paused to resume. The invariant fuzzer
    found such a run paused for ever at a limit that had room (make fuzz, 30 minutes)."""
    limit_to(tenant, 1, tokens_per_month=1)  # no model call fits: the run pauses at its first
    agent = create_agent(tenant, "thrifty", "sre")
    run_id = new_run(tenant, agent["id"])
    assert step(tenant, "start", run_id) == {"next": "pause", "turn": 1}
    limit_to(tenant, 1)  # the raise (its resume of the workspace's paused runs finds none) ...
    token = orchestrator.issue("paused")
    step(tenant, "pause", run_id, task_token=token, turn=1)  # ... then the Paused task runs
    assert orchestrator.answers.get(token) == "think", "the limit has room: the run thinks again"
    run = run_of(tenant, run_id)
    assert run.status == "running" and run.task_token is None and run.pause_reason is None
    with tenant_scope(tenant.workspace_id):
        events = [e.event_type for e in iter_events(run, 0, 100)]
    assert events[-2:] == ["run.paused", "run.resumed"]
    with tenant_scope(tenant.workspace_id):
        assert list(iter_events(run, 0, 100))[-1].data["by"] == "limit"
    with global_scope():
        assert PausedRun.get_or_none(*PausedRun.key(tenant.workspace_id, run_id)) is None, "not listed as paused"


def test_a_child_paused_past_its_parents_wait_is_cancelled_when_the_parent_ends(tenant, orchestrator):
    parent = delegating_parent(tenant)
    wait_token = orchestrator.issue("wait-for-child")
    assert step(tenant, "delegate", parent, task_token=wait_token, turn=1)["next"] == "delegate"
    (child,) = orchestrator.started
    limit_to(tenant, 25, tokens_per_month=1)  # the month's tokens are used up: the child pauses
    assert step(tenant, "start", child) == {"next": "pause", "turn": 1}
    child_token = orchestrator.issue("child-paused")
    assert step(tenant, "pause", child, task_token=child_token, turn=1)["next"] == "pause"
    assert run_of(tenant, child).status == "paused"

    orchestrator.expire(wait_token)  # the parent's WaitForChild times out: RecordFailure ends the parent
    step(tenant, "fail", parent, error={"Error": "States.Timeout", "Cause": "WaitForChild timed out"})
    assert run_of(tenant, parent).status == "failed"
    assert orchestrator.answers.get(child_token) == "finish", "the child does not outlive its parent"
    step(tenant, "finish", child, turn=1)
    ended = run_of(tenant, child)
    assert ended.status == "cancelled" and ended.task_token is None
    with tenant_scope(tenant.workspace_id):
        events = [e.event_type for e in iter_events(run_of(tenant, parent), 0, 100)]
    assert events[-1] == "run.failed", "nothing was written to the parent after its end"
    assert slots_of(tenant) == (0, 0, 0)


def test_cancelling_a_parent_ends_a_child_whose_execution_never_started(tenant, orchestrator):
    parent = delegating_parent(tenant)
    orchestrator.refuse_starts = 1  # the child is written, its execution does not start: the task fails ...
    wait_token = orchestrator.issue("wait-for-child")
    with pytest.raises(StartRefused) as refused:
        step(tenant, "delegate", parent, task_token=wait_token, turn=1)
    child = str(refused.value)
    assert run_of(tenant, child).status == "queued" and run_of(tenant, parent).status == "waiting"
    orchestrator.expire(wait_token)  # ... and Step Functions will retry it with a new token; the user cancels first

    with tenant_scope(tenant.workspace_id):
        request_cancel(get_services(), load_run(tenant.workspace_id, parent))
    assert run_of(tenant, child).status == "cancelled", "the child that never started is not left queued"
    retry_token = orchestrator.issue("wait-for-child-retry")
    assert step(tenant, "delegate", parent, task_token=retry_token, turn=1)["next"] == "act"
    assert step(tenant, "act", parent, turn=1)["next"] == "done"
    assert run_of(tenant, parent).status == "cancelled"
    assert child not in orchestrator.started and slots_of(tenant) == (0, 0, 0)


def test_cancel_ends_a_run_whose_execution_never_started_and_gives_back_its_place(tenant):
    limit_to(tenant, 1)
    agent = create_agent(tenant, "grounded", "sre")
    with services_with(orchestrator=UnreachableStepFunctions()):
        assert_error(launch(tenant, agent["id"], "Start me later.", key="never-started-1"), 503,
                     "service_unavailable")
    (run,) = tenant.get("/runs").json()["items"]
    assert run["status"] == "queued" and slots_of(tenant) == (1, 0, 0)

    cancelled = tenant.post(f"/runs/{run['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled", cancelled.text
    with tenant_scope(tenant.workspace_id):
        events = [e.event_type for e in iter_events(run_of(tenant, run["id"]), 0, 100)]
    assert events == ["run.queued", "run.cancelled"]
    assert slots_of(tenant) == (0, 0, 0), "its place among the workspace's runs is given back"
    retried = launch(tenant, agent["id"], "Start me later.", key="never-started-1")
    assert retried.status_code == 202 and retried.json()["status"] == "cancelled", "the retry does not revive it"
    assert run_of(tenant, run["id"]).status == "cancelled"


def backdate_unstarted(cloud, run_id: str, minutes: int) -> int:
    """Time passes as data: the run's marker among the unstarted runs says it was launched ``minutes`` ago."""
    import boto3

    table = boto3.resource("dynamodb", region_name=cloud.config.stack.region).Table(cloud.config.stack.table_name)
    markers = [i for i in table_items(cloud, run_id=run_id) if i["pk"].startswith("UNSTARTED#")]
    then = datetime.now(UTC) - timedelta(minutes=minutes)
    for marker in markers:
        table.update_item(Key={"pk": marker["pk"], "sk": marker["sk"]}, UpdateExpression="SET launched_at = :t",
                          ExpressionAttributeValues={":t": then.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")})
    return len(markers)


def test_the_period_reset_starts_a_run_whose_launch_could_not_start_it(cloud, tenant):
    agent = create_agent(tenant, "patient", "sre")
    with services_with(orchestrator=UnreachableStepFunctions()):
        assert_error(launch(tenant, agent["id"], "Start me some day.", key="some-day-1"), 503,
                     "service_unavailable")
    (run,) = tenant.get("/runs").json()["items"]
    assert run["status"] == "queued" and slots_of(tenant) == (1, 0, 0)
    backdate_unstarted(cloud, run["id"], minutes=10)  # the client never retried with its key

    cloud.schedules.fire("PeriodResetFunction")
    assert wait_for(tenant, run["id"])["status"] == "succeeded", "the queued run started after all"
    assert slots_of(tenant) == (0, 0, 0)
    assert [i for i in table_items(cloud, run_id=run["id"]) if i["pk"].startswith("UNSTARTED#")] == []


# --------------------------------------------------------------------------- on the local cloud, as a tenant sees it


class HeldAnswers(ModelClient):
    """The real model, except that a call whose input holds a held marker waits until it is released."""

    def __init__(self, real: ModelClient, markers: list[str]) -> None:
        self.real = real
        self.gates = {marker: threading.Event() for marker in markers}

    def release(self, marker: str) -> None:
        self.gates[marker].set()

    def create_message(self, request: ModelRequest) -> ModelResponse:
        text = json.dumps(request.messages[0]["content"])
        for marker, gate in self.gates.items():
            if marker in text:
                gate.wait(180)
        return self.real.create_message(request)


def until(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {timeout} s"
        time.sleep(0.1)


def statuses(tenant, run_ids: list[str]) -> list[str]:
    return [run_of(tenant, run_id).status for run_id in run_ids]


def interval(tenant, run_id: str) -> tuple[Any, Any]:
    with tenant_scope(tenant.workspace_id):
        events = list(iter_events(run_of(tenant, run_id), 0, 100))
    return next(e.at for e in events if e.event_type == "run.started"), events[-1].at


def test_after_a_downgrade_to_free_no_run_starts_until_the_runs_still_running_have_ended(cloud, api):
    """As the issue saw it: five runs held on pro, a downgrade to free (one at a time), four new runs."""
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "busy", "sre")
    markers = [f"held-{i}-{tenant.workspace_id}" for i in range(5)]
    model = HeldAnswers(get_services().model, markers)
    with services_with(model=model):
        held = [launch(tenant, agent["id"], f"Take your time {m}.").json()["id"] for m in markers]
        until(lambda: statuses(tenant, held) == ["running"] * 5, "five runs running")
        set_tier(api, tenant.workspace_id, "free")
        later = [launch(tenant, agent["id"], f"Then me ({i}).").json()["id"] for i in range(4)]
        until(lambda: slots_of(tenant)[2] == 4, "four runs queued")

        model.release(markers[0])  # one held run ends: four still run on a limit of one
        until(lambda: run_of(tenant, held[0]).status == "succeeded", "the first held run ended")
        assert slots_of(tenant) == (8, 4, 4), "its slot was given back, not handed to a queued run"
        assert [run_of(tenant, run_id).slot for run_id in later] == [None] * 4
        assert statuses(tenant, later) == ["queued"] * 4

        for marker in markers[1:]:
            model.release(marker)
        until(lambda: statuses(tenant, held + later) == ["succeeded"] * 9, "every run ended", timeout=240)
    last_held_end = max(interval(tenant, run_id)[1] for run_id in held)
    spans = sorted(interval(tenant, run_id) for run_id in later)
    assert spans[0][0] >= last_held_end, "no new run started while the held runs ran"
    for (_, end_at), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert next_start >= end_at, "two runs of a free workspace ran at once"
    assert slots_of(tenant) == (0, 0, 0)


def test_an_upgrade_starts_queued_runs_without_waiting_for_a_run_to_end(cloud, api):
    tenant = signup(api)  # free: one run at a time
    agent = create_agent(tenant, "busy", "sre")
    marker = f"held-{tenant.workspace_id}"
    model = HeldAnswers(get_services().model, [marker])
    with services_with(model=model):
        holder = launch(tenant, agent["id"], f"Take your time {marker}.").json()["id"]
        until(lambda: run_of(tenant, holder).status == "running", "the first run running")
        queued_ids = [launch(tenant, agent["id"], f"Then me ({i}).").json()["id"] for i in range(3)]
        until(lambda: slots_of(tenant)[2] == 3, "three runs queued")
        try:
            set_tier(api, tenant.workspace_id, "pro")
            until(lambda: statuses(tenant, queued_ids) == ["succeeded"] * 3, "the queued runs done", timeout=90)
            assert run_of(tenant, holder).status == "running", "they did not wait for the first run to end"
        finally:
            model.release(marker)
        until(lambda: run_of(tenant, holder).status == "succeeded", "the first run ended")
    assert slots_of(tenant) == (0, 0, 0)
