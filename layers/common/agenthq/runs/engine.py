"""The agent loop of a run, as the agent-run state machine calls it.

    Start → (Think | Act)* in slices → Done          (WaitForChild | Paused | WaitForSlot between slices;
                                                     Catch → RecordFailure)

One invocation of the run worker is a *slice*: it runs as many steps — start,
then think (a model call) and act (its tools), turn after turn, and the run's
end — as fit in it, committing each step through ``records.commit`` exactly as
a step of its own would (one transaction with its step record and events, so
live status sees every step as it happens). It hands back to the state machine
only to wait (a delegation's child run, a pause at a limit, a free slot), when
its time is spent (it never starts a model call whose whole retry budget does
not fit in the time left: ``decisions.goes_on_in_slice``), or when the run has
ended (``done``). The state machine carries ``{next, turn}`` and passes it back
in, so a slice knows where to begin from the orchestrator's state.

A slice reads the run, its body and conversation once and carries them from
step to step (each commit's condition on the run's ``seq`` still guards against
a concurrent writer). Step Functions may run a slice again (retries,
redelivery): until it commits a step itself, a slice looks for each step's
record and takes the recorded answer, so a slice that crashed in its third step
resumes there; tool calls are recorded so that no event is appended twice and
no usage is counted twice.

Writes per step are few: the model's answer, its metering and the first tool's
start in one transaction; each tool's result with the next tool's start; the
last result with the reply and the reservation of the next model call, which
bears the mark of that call (decisions.md, 275: no write of its own when the
same slice makes the call); the run's end with the last answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import TransactWriteError, UpdateError

from agenthq import ids
from agenthq.adapters.model import (
    ModelRequest,
    ModelRequestRejected,
    ModelResponse,
    ModelUnavailable,
    UnansweredCall,
    unanswered_call_id,
)
from agenthq.agent_lookup import find_agent
from agenthq.agents import DEFAULT_CONTEXT_BUDGET_TOKENS
from agenthq.approvals import gate
from agenthq.approvals.policies import DENY, policy_of
from agenthq.errors import InvalidRequest, NotFound, QuotaExceeded
from agenthq.mcp import names as mcp_names
from agenthq.mcp import tools as mcp_tools
from agenthq.messaging import take_inbox
from agenthq.observability import RUNS_STARTED, MetricUnit, count, count_model_tokens, logger, metrics
from agenthq.runs import decisions, pausing, slots, transcript, turns
from agenthq.runs.decisions import ACT, DELEGATE, DONE, FAILED, FINISH, PAUSE, QUEUE, START, THINK, Outcome
from agenthq.runs.launch import create_run_record, forget_unstarted
from agenthq.runs.records import (
    STEP_ORDER,
    Change,
    RunConflict,
    StepMark,
    commit,
    legacy_step_record,
    load_body,
    load_run,
)
from agenthq.runs.statuses import TERMINAL
from agenthq.store import tenant_scope, transaction
from agenthq.store.items import Approval, ConversationMessage, LedgerEntry, Reservation, Run, RunBody, ToolCall
from agenthq.tiers import TierLimits
from agenthq.tools.registry import ToolContext, ToolResult
from agenthq.tools.stateful import MAX_DELEGATE_INPUT_CHARS
from agenthq.usage import Usage, alerts, counters, ledger, quota

if TYPE_CHECKING:
    from agenthq.services import Services

#: What an ended run no longer holds (the outcome is written out as output / error by then).
ENDED_RUN_DROPS = ("task_token", "pause_reason", "pause_hold", "paused_at", "slot", "outcome", "waiting_for",
                   "waiting_since")

#: A slice that meters model calls reads the month's usage for its alerts at most this often, and
#: once more before it hands back: an alert comes at most this late (decisions.md, 58).
ALERT_CHECK_SECONDS = 1.0


class RunStepRejected(Exception):
    """A step that must not be retried: the run does not exist, or the request is malformed."""


# --------------------------------------------------------------------------- the slice


class Slice:
    """One invocation of the run worker: the run, and what the slice has read of
    it, carried from step to step."""

    def __init__(self, services: Services, run: Run, seconds_left: Callable[[], float] = lambda: math.inf) -> None:
        self.services = services
        self.run = run
        self.seconds_left = seconds_left
        # Until this slice commits a step itself, an earlier attempt may have left items of the step it is at.
        self.recovering = True
        self._body: RunBody | None = None
        self._conversation: list[ConversationMessage] | None = None
        self._earlier: turns.EarlierTurns | None = None
        self._calls: dict[str, ToolCall] | None = None
        self._limits: TierLimits | None = None
        self.reserved: dict[int, Reservation] = {}  # reservations of model calls this slice knows of
        # Reservations this slice's commits wrote marked for the call it is about to make (step -> the mark),
        # until that call begins (``_admit_call``), or the slice gives them back (``_release``) or hands back
        # without the call (``disarm``): decisions.md, 275.
        self.armed: dict[int, str] = {}
        self.began_the_run = False  # it begins at start (run_step): every model call of the run is its own
        # The month's alerts are checked at most every ALERT_CHECK_SECONDS while the slice meters model
        # calls, and before it hands back (``check_alerts``): one read per model call otherwise.
        self._alerts_checked_at = services.clock()
        self._alerts_due = False

    # ------------------------------------------------------------------ what it reads once

    def body(self) -> RunBody:
        if self._body is None:
            self._body = load_body(self.run)
        return self._body

    def conversation(self) -> list[ConversationMessage]:
        if self._conversation is None:
            self._conversation = list(ConversationMessage.query(
                Run.partition(self.run.workspace_id, self.run.id), ConversationMessage.sk.startswith("MSG#"),
                consistent_read=True))
        return self._conversation

    def tool_calls(self) -> dict[str, ToolCall]:
        if self._calls is None:
            self._calls = {} if not self.recovering else {
                c.tool_use_id: c for c in ToolCall.query(Run.partition(self.run.workspace_id, self.run.id),
                                                         ToolCall.sk.startswith("TOOL#"), consistent_read=True)}
        return self._calls

    def earlier_turns(self) -> turns.EarlierTurns:
        """The session's earlier turns this run's prompt begins with (none for a run not in a session)."""
        if self._earlier is None:
            self._earlier = turns.earlier_turns(self.run)
        return self._earlier

    def earlier(self) -> list[dict[str, Any]]:
        return self.earlier_turns().messages()

    def forget_earlier(self) -> None:
        """The session's turns changed (a summary was made): read them again when next needed."""
        self._earlier = None

    def begin_conversation(self) -> None:
        """The run's conversation begins in this slice (start): nothing to read."""
        self._conversation = []

    def limits(self) -> TierLimits:
        if self._limits is None:
            self._limits = quota.workspace_limits(self.run.workspace_id)
        return self._limits

    def recorded(self, step: int, kind: str) -> str | None:
        """What this step said comes next, if it committed already (an earlier
        attempt, or a concurrent one: the run's step mark is at or after it)."""
        mark = StepMark.of(self.run)
        if mark is None:
            if self.recovering and self.run.started_at is not None:  # a run the engine before marks started
                return legacy_step_record(self.run, step, kind)
            return None
        # At this step: its answer. After it (a concurrent attempt went further): the mark's answer, and the
        # slice's loop resumes after the mark (Slice.resume).
        return mark.next if mark.at_or_after(step, kind) else None

    def resume(self, step: str, turn: int) -> tuple[str, int]:
        """Where a slice that was asked to begin at ``step`` of ``turn`` begins:
        after the run's last committed step, if that is at or after it (an
        earlier attempt of this slice got that far)."""
        mark = StepMark.of(self.run)
        if step not in STEP_ORDER or mark is None or not mark.at_or_after(turn, step):
            return step, turn
        return mark.next, decisions.next_turn(mark.kind, mark.next, mark.turn)

    def check_alerts(self, now: bool = False, quietly: bool = False) -> None:
        """The month's alerts at 80 and 100% of the tokens and the budget, after this slice metered
        model calls: when ``now`` (the slice hands back, or fails) or ALERT_CHECK_SECONDS after the
        last check. ``quietly``: a failure of the check is logged, not raised."""
        if not self._alerts_due or (not now and self.services.clock() - self._alerts_checked_at < ALERT_CHECK_SECONDS):
            return
        self._alerts_due = False
        self._alerts_checked_at = self.services.clock()
        try:
            self._check_alerts()
        except Exception:
            if not quietly:
                raise
            logger.exception("could not check the month's alerts")

    def _check_alerts(self) -> None:
        at = self.services.now()
        month = quota.month_quota(self.run.workspace_id, at)
        if month is not None:
            limits, period = self.limits(), counters.month(at)
            alerts.check(self.services.operator_events, self.run.workspace_id, quota.TOKENS,
                         int(month.used_tokens), limits.tokens_per_month, period, at)
            alerts.check(self.services.operator_events, self.run.workspace_id, quota.BUDGET,
                         int(month.used_micro_usd), quota.budget_micro_usd(limits), period, at)

    def metered(self) -> None:
        """A model call was metered: the month's alerts are due (``check_alerts``)."""
        self._alerts_due = True
        self.check_alerts()

    def reservation(self, step: int) -> Reservation | None:
        if step not in self.reserved and self.recovering:
            found = Reservation.get_or_none(*Reservation.key(self.run.workspace_id, self.run.id, step))
            if found is not None:
                self.reserved[step] = found
        return self.reserved.get(step)

    # ------------------------------------------------------------------ writing

    def commit(self, change: Change) -> Run:
        self.run = commit(self.services, self.run, change)
        if change.step is not None:
            self.recovering = False
        for item in change.puts:
            if isinstance(item, ConversationMessage) and self._conversation is not None:
                self._conversation.append(item)
            elif isinstance(item, ToolCall):
                self.tool_calls()[item.tool_use_id] = item
        if change.reserves is not None:
            reservation = change.reserves[0]
            self.reserved[int(reservation.sk.removeprefix("RESERVE#"))] = reservation
            if reservation.call_started:
                self.armed[int(reservation.sk.removeprefix("RESERVE#"))] = str(reservation.call_started)
        if change.settles is not None and change.settles[0] is not None:
            self.reserved.pop(int(change.settles[0].sk.removeprefix("RESERVE#")), None)
        return self.run

    def reload(self) -> Run:
        """Read the run again and forget what was carried (after a conflict)."""
        self.run = load_run(self.run.workspace_id, self.run.id)
        self._conversation = self._calls = None
        self.recovering = True
        return self.run

    def goes_on(self, next_step: str) -> bool:
        return decisions.goes_on_in_slice(next_step, seconds_left=self.seconds_left(),
                                          model_call_seconds=self.services.settings.model_call_budget_seconds,
                                          tool_call_seconds=max(self.services.tools.longest_timeout(),
                                                                self.services.settings.mcp_timeout_seconds))

    def disarm(self) -> None:
        """The slice ends (it hands back, or it fails) without the calls its commits marked: take each
        mark off its reservation (if it still bears it), so whoever finds the reservation next reserves
        the call as not begun, instead of metering a call never sent. Best effort: a mark left on (this
        write failed, or the worker was killed before it) is metered at its hold — more than was billed,
        never less (decisions.md, 275)."""
        armed, self.armed = self.armed, {}
        for step, call in armed.items():
            reservation = self.reserved.get(step) or Reservation(*Reservation.key(self.run.workspace_id,
                                                                                  self.run.id, step))
            try:
                reservation.update(actions=[Reservation.call_started.remove()],
                                   condition=Reservation.call_started == call)
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    logger.warning("could not take the mark off the reservation of step %s", step, exc_info=True)
            except Exception:
                logger.warning("could not take the mark off the reservation of step %s", step, exc_info=True)


# --------------------------------------------------------------------------- dispatch


def run_step(services: Services, event: dict[str, Any],
             seconds_left: Callable[[], float] = lambda: math.inf) -> dict[str, Any]:
    """Run the slice ``event`` begins (``{step, workspace_id, run_id, turn?, task_token?, error?}``);
    answers ``{next, turn}`` for the state machine (``next`` is ``done`` once the run has ended)."""
    step = event.get("step")
    workspace_id, run_id = event.get("workspace_id"), event.get("run_id")
    if step not in STEPS or not isinstance(workspace_id, str) or not isinstance(run_id, str):
        raise RunStepRejected(f"malformed step event: step={step!r}")
    logger.append_keys(workspace_id=workspace_id, run_id=run_id, step=step)
    turn = event.get("turn", 0)
    if not isinstance(turn, int) or turn < 0 or (step in ("think", "act") and turn < 1):
        raise RunStepRejected(f"malformed step event: turn={turn!r}")
    if not ids.is_id(workspace_id) or not ids.is_id(run_id):
        raise RunStepRejected("malformed step event: ids")
    with tenant_scope(workspace_id):
        try:
            run = load_run(workspace_id, run_id)
        except NotFound:  # (a DynamoDB failure is not caught: Step Functions retries it)
            raise RunStepRejected(f"no run {run_id} in workspace {workspace_id}") from None
        work = Slice(services, run, seconds_left)
        step, turn = work.resume(step, turn)
        work.began_the_run = step == START
        try:
            answer = _run_slice(work, event, step, turn)
        except Exception:
            work.disarm()  # a call it marked and never began (a crash after the commit that marked it)
            work.check_alerts(now=True, quietly=True)  # the slice fails with what it raised
            raise
        work.disarm()  # it hands back before the call its last commit marked
        work.check_alerts(now=True)
        return answer


def _run_slice(work: Slice, event: dict[str, Any], step: str, turn: int) -> dict[str, Any]:
    """Steps from ``step`` of ``turn`` on, while the slice may go on; what the state machine does next."""
    while True:
        metrics.add_metric(name="RunSteps", unit=MetricUnit.Count, value=1)
        next_step = STEPS[step](work, {**event, "step": step, "turn": turn})
        if step not in decisions.IN_SLICE or next_step in (DONE, FAILED):
            return {"next": next_step, "turn": turn}
        turn = decisions.next_turn(step, next_step, turn)
        next_step, turn = work.resume(next_step, turn)
        if not work.goes_on(next_step):
            return {"next": next_step, "turn": turn}
        step = next_step
        logger.append_keys(step=step)


# --------------------------------------------------------------------------- start


def start(work: Slice, event: dict[str, Any]) -> str:
    """run.started and the first message; the run's slot and the first model
    call's reservation in the same transaction. No free slot: the run queues."""
    run, services = work.run, work.services
    if (done := work.recorded(0, "start")) is not None:
        return done
    if run.status in TERMINAL or run.cancel_requested:
        return FINISH
    if not turns.is_ready(run):
        return QUEUE  # a session's turn waits for the turn before it to end (runs.turns), holding nothing
    needs_slot = not run.parent_run_id and run.slot is None
    if needs_slot and not slots.is_free(run.workspace_id, work.limits()):
        return QUEUE  # at once: the queue is first in, first out only among the runs in it
    text = work.body().input  # only inbox messages the first message can store are taken (runs.transcript)
    inbox = take_inbox(run.workspace_id, run.agent_id, run.id,
                       room_bytes=transcript.inbox_room(run.workspace_id, run.id, text))
    first = transcript.opening_message(run.workspace_id, run.id, text, inbox)
    at = services.now()
    work.begin_conversation()
    reserves = _next_reservation(work, 1, [first], at)
    for attempt in (reserves, None):  # without the reservation if the month has no room (think pauses then)
        change = Change(
            events=[("run.started", {"messages_delivered": len(inbox)})],
            run_set={"status": "running", "started_at": at, **_timeout_from(run, at)},
            run_condition=Run.status == "queued",
            puts=[first],
            step=StepMark(0, "start", THINK),
            reserves=attempt,
        )
        if needs_slot:  # the slot is taken in the same transaction
            change.run_set["slot"] = slots.OWN
            change.run_condition &= Run.slot.does_not_exist()
            change.extra.append(slots.take_in(run.workspace_id, work.limits()))
        try:
            work.commit(change)
            count(RUNS_STARTED)
            return THINK
        except RunConflict:
            run = work.reload()
            if (done := work.recorded(0, "start")) is not None:
                return done
            if run.status != "queued" or run.cancel_requested:
                return FINISH
            if attempt is None or (needs_slot and not slots.is_free(run.workspace_id, work.limits())):
                break
            work.begin_conversation()
    return QUEUE  # a slot was taken meanwhile (the messages taken stay this run's: it gets them when it starts)


def _timeout_from(run: Run, at: datetime) -> dict[str, Any]:
    """A run's timeout counts from its start: a root run's deadline moves by the time it waited ``queued``
    (for a slot, or for its session's turn before). A child's stays as launched, within its parent's."""
    if run.parent_run_id:
        return {}
    return {"deadline": at + (run.deadline - run.created_at)}


def queue(work: Slice, event: dict[str, Any]) -> str:
    """Wait for a slot (the WaitForSlot state): in the workspace's queue with
    this task token, answered ``start`` when a slot is handed over — or at once
    if one is free now, or if the run holds one already (handed over while an
    earlier attempt of this step waited). A cancelled run is answered ``finish``."""
    services = work.services
    token = event.get("task_token")
    if not isinstance(token, str) or not token:
        raise RunStepRejected("queue needs the task token")
    for attempt in range(5):
        run = work.run if attempt == 0 else work.reload()
        limits = work.limits() if attempt == 0 else quota.workspace_limits(run.workspace_id)
        if run.status in TERMINAL or run.cancel_requested:
            _send_task_success(services, token, FINISH)
            return FINISH
        if run.slot is not None or run.status != "queued":
            _send_task_success(services, token, START)
            return START
        if run.session_turn and turns.wait(run, token):
            return QUEUE  # the session's turn before it is still going (runs.turns answers the token)
        if slots.enqueue(run, token, limits):
            return QUEUE
        if slots.acquire(run, limits):
            _send_task_success(services, token, START)
            return START
    raise RunConflict("the workspace's slots kept changing")  # Step Functions retries the step


def _next_reservation(work: Slice, step: int, conversation: list[ConversationMessage],
                      at: datetime) -> tuple[Reservation, TierLimits] | None:
    """The reservation of ``step``'s model call, to be written with the commit
    before it — None when that call will not happen (the run ends first) or can
    never fit (its think step pauses). It bears the mark of that call's first
    attempt (``call_started``), which this slice makes next (``Slice.armed``)."""
    run = work.run
    agent = work.body().agent
    if _ending_before_a_model_call(work.services, run, agent, steps=step - 1) is not None:
        return None
    hold = quota.hold_for(_model_request(work.services, run, agent, [*work.earlier(), *conversation]), at)
    limits, tree = work.limits(), quota.RunTree.of(work.body())
    if hold.micro_usd > quota.run_budget_left(run, agent["budget_usd"]) or quota.beyond_limits(hold, limits, tree):
        return None
    return quota.reservation_for(run.workspace_id, run.id, step, hold, at, tree, unanswered_call_id()), limits


# --------------------------------------------------------------------------- think


def think(work: Slice, event: dict[str, Any]) -> str:
    step = event["turn"]
    if (done := work.recorded(step, "think")) is not None:
        return done
    run, services = work.run, work.services
    agent = work.body().agent
    if (ending := _ending_before_a_model_call(services, run, agent)) is not None:
        return _decide(work, step, "think", ending)
    if step == 1 and run.session_turn and (stopped := _compact(work)) is not None:
        return stopped  # (the compaction's call did not fit a limit: as a think step's would not)
    run = work.run

    conversation = work.conversation()
    request = _model_request(services, run, agent, [*work.earlier(), *conversation])
    at = services.now()
    admitted = _admit_call(work, step, request, at)
    if isinstance(admitted, str):
        return admitted
    reservation = admitted
    metered: set[str] = set()  # the unanswered attempts metered before a retry (before_retry)

    def before_retry(calls: tuple[UnansweredCall, ...]) -> None:
        """An attempt that may be billed was not answered: meter it (its hold pays it), and reserve the
        next attempt's hold as this one's was — or stop the call (_NotAdmitted) where that does not fit."""
        nonlocal reservation
        _meter_unanswered(work, step, request.model, request.max_tokens, calls, reservation, settles=True)
        metered.update(call.id for call in calls)
        again = _admit_call(work, step, request, services.now())
        if isinstance(again, str):
            raise _NotAdmitted(again)
        reservation = again

    try:
        response = services.model.create_message(replace(request, before_retry=before_retry))
    except _NotAdmitted as stopped:
        return stopped.next_step
    except ModelRequestRejected as exc:
        _meter_unanswered(work, step, request.model, request.max_tokens, _not_in(exc.unanswered, metered),
                          reservation, settles=True)
        return _decide(work, step, "think",
                       {"status": "failed", "reason": "model_rejected_request", "message": exc.reason})
    except ModelUnavailable as exc:
        _meter_unanswered(work, step, request.model, request.max_tokens, _not_in(exc.unanswered, metered),
                          reservation, settles=True)
        raise  # the state machine retries the slice, then fails the run with its reason
    if unmetered := _not_in(response.unanswered, metered):  # attempts that may be billed: before the answer's commit
        _meter_unanswered(work, step, request.model, request.max_tokens, unmetered, reservation, settles=False)

    usage = Usage.model_call(request.model, response.usage, at.date())
    next_step, outcome = decisions.after_model(response.content, response.stop_reason)
    index = len(conversation) + 1
    answer = ConversationMessage(*ConversationMessage.key(run.workspace_id, run.id, index), index=index,
                                 role="assistant", content=response.content)
    entry = ledger.model_entry(response.id)
    change = Change(
        events=[("model.called", _model_called(step, request, response, usage))],
        run_set={"steps": step, **({"outcome": outcome} if outcome is not None else {})},
        run_condition=Run.status.is_in("running", "waiting"),
        puts=[answer],
        step=StepMark(step, "think", next_step),
        metered={entry: usage}, entry_details={entry: {"step": step, "model": request.model}},
        settles=(reservation, usage),
    )
    uses = [b for b in response.content if b.get("type") == "tool_use"]
    if next_step == ACT and uses and not _is_delegation(uses[0], agent) and services.now() < run.deadline \
            and not gate.asks(agent, uses):  # (a turn that asks for approval starts its tools once decided)
        # The first tool starts with the answer (unless a cancel is recorded; past the deadline, act ends the run).
        _with_tool_start(change, run, uses[0], services.now())
    try:
        if next_step == FINISH:  # the run ends with this answer: one transaction for both
            _settle(work, decisions.final_outcome(outcome, bool(run.cancel_requested)), with_change=change)
        else:
            work.commit(change)
    except (RunConflict, TransactWriteError) as exc:
        return _keep_answer(work, step, exc, change, outcome, next_step)
    _after_metering(work, usage)
    return DONE if next_step == FINISH else next_step


#: The reservation key a session turn's compaction call is held under (a run's model calls are steps 1 …).
COMPACTION_STEP = 0


def _compact(work: Slice) -> str | None:
    """Before a session turn's first model call: when its prompt would pass the agent's context budget,
    summarise the oldest earlier turns by a model call reserved and metered like any other, and store the
    summary (``session.compacted`` with the turns it replaced) with its metering in one commit. None: the
    turn goes on (with the summary, if one was made); else the next step (a limit stopped the call)."""
    run, services = work.run, work.services
    agent = work.body().agent
    earlier = work.earlier_turns()
    budget = int(agent.get("context_budget_tokens") or DEFAULT_CONTEXT_BUDGET_TOKENS)

    def tokens_with(messages: list[dict[str, Any]]) -> int:
        request = _model_request(services, run, agent, [*messages, *work.conversation()])
        return turns.prompt_tokens(request.system, request.messages, request.tools)

    through = turns.compaction_through(earlier, tokens_with, budget)
    if through is None:
        return None
    if turns.summary_of(run.workspace_id, str(run.session_id), through) is not None:
        work.forget_earlier()  # made by an earlier attempt of this step: read the turns again
        return None
    request = ModelRequest(model=agent["model"], system=[{"type": "text", "text": turns.SUMMARISE_SYSTEM}],
                           messages=turns.summary_request(earlier, through), tools=[],
                           max_tokens=min(services.settings.model_max_tokens, turns.SUMMARY_MAX_TOKENS),
                           metadata_user_id=run.workspace_id)
    at = services.now()
    admitted = _admit_call(work, COMPACTION_STEP, request, at)
    if isinstance(admitted, str):
        return admitted
    try:
        response = services.model.create_message(request)
    except ModelRequestRejected as exc:
        _meter_unanswered(work, COMPACTION_STEP, request.model, request.max_tokens, exc.unanswered, admitted,
                          settles=True)
        return _decide(work, 1, "think", {"status": "failed", "reason": "model_rejected_request",
                                          "message": exc.reason})
    except ModelUnavailable as exc:
        _meter_unanswered(work, COMPACTION_STEP, request.model, request.max_tokens, exc.unanswered, admitted,
                          settles=True)
        raise  # the state machine retries the slice, then fails the run with its reason
    if response.unanswered:
        _meter_unanswered(work, COMPACTION_STEP, request.model, request.max_tokens, response.unanswered, admitted,
                          settles=False)
    usage = Usage.model_call(request.model, response.usage, at.date())
    text = "\n".join(b.get("text", "") for b in response.content if b.get("type") == "text").strip()
    summary = turns.new_summary(run, through, earlier, text or "(no summary)", at)
    entry = ledger.model_entry(response.id)
    change = Change(
        events=[("session.compacted", {"turns": list(summary.replaced_turns), "through_turn": through,
                                       "model": request.model, "usage": usage.tokens.view(),
                                       "cost_usd": f"{usage.cost_usd:.6f}", "budget_tokens": budget})],
        run_condition=Run.status.is_in("running", "waiting"), puts=[summary],
        metered={entry: usage}, entry_details={entry: {"step": COMPACTION_STEP, "model": request.model}},
        settles=(admitted, usage))
    try:
        work.commit(change)
    except RunConflict:  # answered, so billed: metered on its own; the summary is kept only with its event
        _meter_model_call(work, COMPACTION_STEP, entry, request.model, usage, admitted)
        work.reload()
    _after_metering(work, usage)
    work.forget_earlier()
    return None


class _NotAdmitted(Exception):
    """A retry of a model call does not fit (``_admit_call``): the step goes on to ``next_step``."""

    def __init__(self, next_step: str) -> None:
        super().__init__(next_step)
        self.next_step = next_step


def _not_in(calls: tuple[UnansweredCall, ...], metered: set[str]) -> tuple[UnansweredCall, ...]:
    return tuple(call for call in calls if call.id not in metered)


def _admit_call(work: Slice, step: int, request: ModelRequest, at: datetime) -> Reservation | str:
    """The hold of the attempt of ``step``'s model call about to be sent, marked as begun
    (``Reservation.call_started``) — or, where it does not fit, the step's next step: the run's
    own budget or its tree's ends the run (``budget_exhausted``), the month's pauses it. The
    step's reservation is used if there is one: marked already when this slice's commit before
    wrote it for this call (``Slice.armed``: no write), else marked now; if a call was begun
    under it and never metered (the slice that began it died), that call is metered first
    (estimated, at the hold), and the attempt is reserved anew, exactly as if there were none."""
    run, agent = work.run, work.body().agent
    for _ in range(3):
        reservation = work.reservation(step)
        if reservation is not None and reservation.call_started:
            if work.armed.get(step) == reservation.call_started:  # marked by this slice's commit before
                del work.armed[step]  # the call begins now
                return reservation
            _meter_begun_call(work, step, reservation)
            continue
        call = unanswered_call_id()
        if reservation is not None:
            if quota.start_call(run.workspace_id, reservation, call):
                return reservation
            # given back, or a call begun under it meanwhile: read it again
            work.reserved.pop(step, None)
            if (found := Reservation.get_or_none(*Reservation.key(run.workspace_id, run.id, step))) is not None:
                work.reserved[step] = found
            continue
        hold, tree = quota.hold_for(request, at), quota.RunTree.of(work.body())
        if hold.micro_usd > quota.run_budget_left(run, agent["budget_usd"]):  # the run's own budget
            return _decide(work, step, "think", decisions.call_over_budget(Decimal(agent["budget_usd"]), shared=False))
        blocked = quota.reserve(run.workspace_id, run.id, step, hold, work.limits(), at, tree, call=call)
        if blocked == quota.RESERVED_BEFORE:  # by an attempt this slice did not know of: use it as such
            if (found := Reservation.get_or_none(*Reservation.key(run.workspace_id, run.id, step))) is not None:
                work.reserved[step] = found
            continue
        if blocked == quota.RUN_BUDGET and tree is not None:  # the tree's budget does not reset: the run ends
            return _decide(work, step, "think", decisions.call_over_budget(
                tree.budget_usd(), shared=tree.root_run_id != run.id))
        if blocked is not None:
            return _pause_at(work, blocked, hold)
        reserved = work.reserved[step] = quota.reservation_for(run.workspace_id, run.id, step, hold, at, tree, call)
        return reserved
    raise RunConflict("the model call's reservation kept changing")  # Step Functions retries the slice


def _meter_begun_call(work: Slice, step: int, reservation: Reservation) -> None:
    """A model call was begun under ``reservation`` and never metered (its slice died while the
    API answered it, or before its answer's commit): meter it as an unanswered attempt, estimated
    at the hold (which it settles), under ``model#<call_started>``, once."""
    call = UnansweredCall(str(reservation.call_started), "its worker ended during the call")
    _meter_unanswered(work, step, work.body().agent["model"], work.services.settings.model_max_tokens, (call,),
                      reservation, settles=True)


def _meter_begun_calls(work: Slice) -> None:
    """Before a run's end is written by a slice that may not have made every call of the run (one
    that did not begin at its start: the run's failure after a crash, its finish after a wait, a
    retried slice that ends the run before a call of its own): meter the calls begun under its
    reservations and never metered, so that its end gives back only holds no call used."""
    if work.began_the_run and not work.recovering:
        return  # every call of the run was this slice's own: metered, settled or given back as it ended
    for reservation in quota.reservations(work.run.workspace_id, work.run.id):
        step = int(reservation.sk.removeprefix("RESERVE#"))
        if reservation.call_started and work.armed.get(step) != reservation.call_started:  # (not its own: _release)
            _meter_begun_call(work, step, reservation)


def _keep_answer(work: Slice, step: int, exc: Exception, change: Change, outcome: Outcome | None,
                 next_step: str) -> str:
    """The answer's transaction did not go through: meter the call on its own
    (Anthropic answered it, so it is billed), then store the answer alone if
    the run still takes it."""
    (entry, usage), = change.metered.items()
    reservation = change.settles[0] if change.settles else None
    _meter_model_call(work, step, entry, change.entry_details[entry]["model"], usage, reservation)
    if isinstance(exc, TransactWriteError):
        raise exc  # DynamoDB failed the write (not a refusal): the slice is retried
    run = work.reload()
    if (done := work.recorded(step, "think")) is not None:
        return done
    if run.status not in ("running", "waiting"):
        return FINISH
    answer_only = Change(events=change.events[:1], run_set={"steps": step, **({"outcome": outcome} if outcome else {})},
                         run_condition=Run.status.is_in("running", "waiting"), puts=change.puts[:1],
                         step=change.step)
    try:
        work.commit(answer_only)
    except RunConflict:
        return _recorded_or(work, step, "think", FINISH)
    return next_step


def _model_called(step: int, request: ModelRequest, response: ModelResponse, usage: Usage) -> dict[str, Any]:
    data = {
        "step": step,
        "model": request.model,
        "stop_reason": response.stop_reason,
        "attempts": response.attempts,
        "usage": usage.tokens.view(),
        "cost_usd": f"{usage.cost_usd:.6f}",
        "tool_uses": [b.get("name") for b in response.content if b.get("type") == "tool_use"],
    }
    if response.unanswered:  # metered apart, at their upper bound (_meter_unanswered)
        data["unanswered_attempts"] = len(response.unanswered)
    return data


def _meter_model_call(work: Slice, step: int, entry: str, model: str, usage: Usage,
                      reservation: Reservation | None) -> None:
    """Count a model call Anthropic answered when its answer could not be stored:
    its ledger entry, the run's totals, the workspace's counters and the
    month's quota (the reservation replaced by the actual cost) — in one
    transaction, once per message."""
    run, services = work.run, work.services
    at = services.now()
    if reservation is not None:  # it may have been settled or released meanwhile
        reservation = Reservation.get_or_none(*Reservation.key(run.workspace_id, run.id, step))
    at = quota.counted_at(reservation, at)  # the call counts when it was made
    try:
        with transaction() as tx:
            ledger.record(tx, run.workspace_id, run.id, entry, usage, at, services.settings.usage_counter_shards,
                          step=step, model=model)
            tx.update(Run(*Run.key(run.workspace_id, run.id)), actions=usage.add_actions(Run))
            quota.settle(tx, run.workspace_id, reservation, usage, at, quota.RunTree.of(work.body()))
    except TransactWriteError:
        if LedgerEntry.get_or_none(*LedgerEntry.key(run.workspace_id, run.id, entry)) is not None:
            return  # metered already
        raise
    work.reserved.pop(step, None)
    _after_metering(work, usage)


def _meter_unanswered(work: Slice, step: int, model: str, max_tokens: int, calls: tuple[UnansweredCall, ...],
                      reservation: Reservation, *, settles: bool) -> None:
    """Meter the attempts of ``step``'s model call whose answers never arrived
    (a timeout, a dropped connection, a stream cut off: Anthropic may bill each):
    each at the call's reserved upper bound, a ledger entry marked ``estimated``,
    with the workspace's counters, the run's totals and the month's quota — one
    transaction, once (the entries' ids are the attempts'). ``settles``: no answer
    will settle the reservation, so these do (with none, it is released)."""
    if not calls:
        if settles:  # no attempt under it may be billed (each was refused before it began): it is given back
            run = work.run
            quota.release(run.workspace_id, run.id, step, work.reserved.pop(step, reservation), unbilled=True)
        return
    run, services = work.run, work.services
    at = quota.counted_at(reservation, services.now())  # the attempts count when the call was made
    each = _unanswered_usage(max_tokens, reservation)
    total = sum((each for _ in calls), Usage())
    entries = [ledger.model_entry(call.id) for call in calls]
    held = reservation if settles else None
    for _ in range(5):
        try:
            with transaction() as tx:
                for entry in entries:
                    ledger.put(tx, run.workspace_id, run.id, entry, each, at, step=step, model=model,
                               estimated=True)
                counters.count(tx, run.workspace_id, total, at, services.settings.usage_counter_shards)
                tx.update(Run(*Run.key(run.workspace_id, run.id)), actions=total.add_actions(Run))
                quota.settle(tx, run.workspace_id, held, total, at, quota.RunTree.of(work.body()))
            break
        except TransactWriteError:
            if LedgerEntry.get_or_none(*LedgerEntry.key(run.workspace_id, run.id, entries[0])) is not None:
                return  # metered already
            if held is not None and Reservation.get_or_none(*Reservation.key(run.workspace_id, run.id, step)) is None:
                if held.call_started and LedgerEntry.get_or_none(
                        *LedgerEntry.key(run.workspace_id, run.id, ledger.model_entry(held.call_started))) is not None:
                    return  # whoever found the call begun under it metered it (_meter_begun_call)
                held = None  # given back meanwhile (the run ended): they count on their own
            # else a conflict with a concurrent writer: again
    else:
        raise RunConflict("the metering of unanswered model calls kept conflicting")
    if settles:
        work.reserved.pop(step, None)
    for name, value in total.view().items():  # the run in memory, as commit keeps it
        if value and name in Run.get_attributes():
            setattr(work.run, name, int(getattr(work.run, name) or 0) + value)
    _after_metering(work, total)


def _unanswered_usage(max_tokens: int, reservation: Reservation) -> Usage:
    """What a call whose answer never arrived is metered: the most it can cost, as reserved
    (its ``max_tokens`` as output, the rest of the reserved tokens as prompt)."""
    tokens, micro_usd = int(reservation.tokens), int(reservation.micro_usd)
    output = min(max_tokens, tokens)
    return Usage(model_calls=1, input_tokens=tokens - output, output_tokens=output, cost_micro_usd=micro_usd)


def _after_metering(work: Slice, usage: Usage) -> None:
    """The month's alerts (when due: ``Slice.check_alerts``), and the metrics."""
    work.metered()
    metrics.add_metric(name="ModelCalls", unit=MetricUnit.Count, value=max(1, usage.model_calls))
    metrics.add_metric(name="ModelCostMicroUSD", unit=MetricUnit.Count, value=usage.cost_micro_usd)
    count_model_tokens(usage.tokens.view())


def _release(work: Slice, step: int) -> None:
    run = work.run
    armed, reservation = work.armed.pop(step, None), work.reserved.pop(step, None)
    # a reservation this slice marked for a call it has not begun is given back as one no call was begun under
    quota.release(run.workspace_id, run.id, step, reservation,
                  unbilled=armed is not None and reservation is not None and reservation.call_started == armed)


def _pause_at(work: Slice, limit: str, hold: quota.Hold) -> str:
    """The month's ``limit`` has no room for the next model call (``hold``): the
    run waits (the Paused state) until a resume; the same turn thinks again then."""
    try:
        work.commit(Change(run_set={"pause_reason": limit, "pause_hold": asdict(hold)},
                           run_condition=Run.status.is_in("running", "waiting")))
    except RunConflict:
        return FINISH
    return PAUSE


def _ending_before_a_model_call(services: Services, run: Run, agent: dict[str, Any],
                                steps: int | None = None) -> Outcome | None:
    return decisions.ending_before_a_model_call(
        cancel_requested=bool(run.cancel_requested), now=services.now(), started_at=run.started_at or run.created_at,
        deadline=run.deadline, steps=int(run.steps) if steps is None else steps,
        spent=Usage.of(run) + Usage(cost_micro_usd=int(run.children_micro_usd or 0)), agent=agent)


def _model_request(services: Services, run: Run, agent: dict[str, Any],
                   conversation: list[ConversationMessage | dict[str, Any]]) -> ModelRequest:
    """The model call of a step: ``conversation`` is the session's earlier turns (``Slice.earlier``),
    then the run's own messages."""
    messages = decisions.with_cache_breakpoint([m if isinstance(m, dict) else {"role": m.role, "content": m.content}
                                                for m in conversation])
    system = [{"type": "text", "text": decisions.system_prompt(run.agent_id, agent),
               "cache_control": {"type": "ephemeral"}}]
    return ModelRequest(model=agent["model"], system=system, messages=messages,
                        tools=services.tools.definitions(agent["tools"]) + mcp_tools.definitions(run.workspace_id,
                                                                                                agent["tools"]),
                        max_tokens=services.settings.model_max_tokens, metadata_user_id=run.workspace_id)


# --------------------------------------------------------------------------- act


def act(work: Slice, event: dict[str, Any]) -> str:
    step = event["turn"]
    if (done := work.recorded(step, "act")) is not None:
        return done
    run, services = work.run, work.services
    if run.cancel_requested:
        return FINISH
    agent = work.body().agent
    if run.waiting_for == gate.APPROVAL:
        if int(run.approvals_pending or 0) > 0:
            return gate.APPROVAL  # a retried act that asked already: the wait state takes the token
        if not _end_approval_wait(work):
            return FINISH  # cancelled meanwhile
    run = work.run
    if services.now() >= run.deadline:
        return _decide(work, step, "act", decisions.timed_out(run.started_at or run.created_at, run.deadline))
    uses = [b for b in work.conversation()[-1].content if b.get("type") == "tool_use"]
    calls = work.tool_calls()
    pending = [u for u in uses if calls.get(u["id"]) is None or calls[u["id"]].result is None]
    approvals = _approvals_of_turn(work, step, pending)
    if isinstance(approvals, str):
        return approvals  # the run waits for them (or was cancelled)
    for position, use in enumerate(pending):
        if position and not work.goes_on(ACT):
            return ACT  # no time for another tool call: the next slice goes on with this act
        call = calls.get(use["id"])
        if call is None:
            call = _start_tool_call(work, use)
            if call is None:  # cancelled before it could start
                return FINISH
        refusal = _refusal(agent, use, approvals)
        if refusal is None and _is_delegation(use, agent):
            return DELEGATE  # the state machine starts the child run and waits for it
        result = refusal or _execute(services, work.run, use, agent["tools"], calls)
        if position + 1 == len(pending):
            return _reply(work, step, uses, (call, result))
        following = pending[position + 1]
        if not _finish_tool_call(work, call, result, start=None if _is_delegation(following, agent) else following):
            return FINISH  # cancelled: no further tool starts
    return _reply(work, step, uses, None)


def _reply(work: Slice, step: int, uses: list[dict[str, Any]], last: tuple[ToolCall, ToolResult] | None) -> str:
    """The tools' results as the next user message, with the last tool's result
    and the next model call's reservation: one transaction."""
    run, services = work.run, work.services
    calls = work.tool_calls()
    outcomes = {c.tool_use_id: c.result for c in calls.values() if c.result is not None}
    if last is not None:
        outcomes[last[0].tool_use_id] = _outcome(last[1])
    results = [{"type": "tool_result", "tool_use_id": u["id"], "content": outcomes[u["id"]]["content"],
                "is_error": bool(outcomes[u["id"]]["is_error"])} for u in uses]
    index = len(work.conversation()) + 1
    reply = transcript.tool_reply(run.workspace_id, run.id, index, results)  # cut to fit one item if it must be
    change = Change(
        run_set={"status": "running"},
        run_condition=Run.status.is_in("running", "waiting"),
        puts=[reply],
        step=StepMark(step, "act", THINK),
        reserves=_next_reservation(work, step + 1, [*work.conversation(), reply], services.now()),
    )
    if last is not None:
        _with_tool_result(change, *last)
    try:
        work.commit(change)
    except RunConflict:  # the reservation does not fit, or the run changed: one write at a time
        work.reload()
        if (done := work.recorded(step, "act")) is not None:
            return done
        if last is not None:
            _finish_tool_call(work, *last)
        try:
            work.commit(Change(run_set={"status": "running"}, run_condition=Run.status.is_in("running", "waiting"),
                               puts=change.puts, step=change.step))
        except RunConflict:
            return _recorded_or(work, step, "act", FINISH)
    if last is not None:
        last[0].result = _outcome(last[1])
    return THINK


def _is_delegation(use: dict[str, Any], agent: dict[str, Any]) -> bool:
    return bool(use.get("name") == "delegate" and "delegate" in agent["tools"])


# --------------------------------------------------------------------------- approvals (agenthq.approvals)

#: A tool call whose approval could not be asked for: the workspace has its tier's pending approvals.
_OVER_LIMIT = "over_limit"


def _approvals_of_turn(work: Slice, step: int, pending: list[dict[str, Any]]) -> dict[str, Approval | str] | str:
    """The approvals of the turn's ``ask`` calls not yet run (tool_use_id → approval, or ``_OVER_LIMIT``
    when the workspace's pending approvals are at its tier's limit: that call is refused, the run goes
    on). Any still undecided: they are asked for (once) and the run waits for all (``APPROVAL``)."""
    run, agent = work.run, work.body().agent
    asked = gate.asks(agent, pending)
    if not asked:
        return {}
    for _ in range(3):
        found: dict[str, Approval | str] = dict(gate.approvals_of(work.run, asked))
        missing = [u for u in asked if u["id"] not in found]
        if not missing:
            break
        limit = work.limits().pending_approvals
        if gate.pending_count(run.workspace_id) + len(missing) > limit:
            return {**found, **dict.fromkeys((u["id"] for u in missing), _OVER_LIMIT)}
        root = work.body().tree_root_run_id or run.id
        change = gate.request_change(work.run, root, step, missing, agent, work.services.now(), limit)
        try:
            work.commit(change)
            return gate.APPROVAL
        except RunConflict:
            if work.reload().cancel_requested or work.run.status not in ("running", "waiting"):
                return FINISH
            # asked by a concurrent attempt, or the workspace's count moved: read again
    else:
        raise RunConflict("the turn's approvals kept changing")  # Step Functions retries the slice
    if any(isinstance(a, Approval) and a.status == gate.PENDING for a in found.values()):
        return gate.APPROVAL  # (a retried act: the wait step takes the token again)
    return found


def _refusal(agent: dict[str, Any], use: dict[str, Any], approvals: dict[str, Approval | str]) -> ToolResult | None:
    """The result of a call that does not run: the agent's policy denies its tool, or a person denied
    it (or its approval expired with ``deny``), or it could not be asked for. None: it runs."""
    name = str(use.get("name"))
    if name in agent["tools"] and policy_of(agent, name) == DENY:
        return ToolResult(content=f"The tool {name} is denied by this agent's tool policy; it did not run.",
                          is_error=True)
    approval = approvals.get(use["id"])
    if approval is None:
        return None
    if approval == _OVER_LIMIT or not isinstance(approval, Approval):
        return ToolResult(content=f"The call to {name} needs a person's approval, and the workspace has as many "
                          "approvals pending as its plan allows; it did not run.", is_error=True)
    if approval.applied == "approve":
        return None
    if approval.status == gate.EXPIRED:
        why = "nobody decided on it in time (its approval expired and was denied)"
    else:
        why = "denied" + (f": {approval.reason}" if approval.reason else " (no reason given)")
    return ToolResult(content=f"The call to {name} was not approved: {why}. It did not run.", is_error=True)


def _end_approval_wait(work: Slice) -> bool:
    """The run's approvals are decided: it runs again. The wait counts neither as agent time nor
    against its timeout (its deadline moves by it). False when a cancel came first."""
    run = work.run
    waited = max(timedelta(0), work.services.now() - (run.waiting_since or work.services.now()))
    seconds = int(waited.total_seconds())
    try:
        work.commit(Change(
            events=[("run.resumed", {"after": gate.APPROVAL, "waited_seconds": seconds})],
            run_set={"status": "running", "waiting_for": None, "waiting_since": None,
                     "task_token": None},  # nosec B105  # the wait's task token cleared, not a password
            run_actions=[Run.deadline.set(run.deadline + waited), Run.paused_seconds.add(seconds)],
            run_condition=(Run.waiting_for == gate.APPROVAL) & (Run.cancel_requested == False)))  # noqa: E712
    except RunConflict:
        fresh = work.reload()
        return not fresh.cancel_requested and fresh.waiting_for != gate.APPROVAL
    return True


def await_approval(work: Slice, event: dict[str, Any]) -> str:
    """The WaitForApproval state: keep its task token on the run until every approval of the turn
    is decided (the decision, or the expiry, that decides the last one answers it ``act``), or a
    cancel (answered ``finish``). If they were all decided before the token was stored, at once."""
    services, token = work.services, event.get("task_token")
    if not isinstance(token, str) or not token:
        raise RunStepRejected("approval needs the task token")
    run = work.run
    if run.status in TERMINAL or run.cancel_requested:
        _send_task_success(services, token, FINISH)
        return FINISH
    if run.waiting_for != gate.APPROVAL:  # a retried wait after the run went on
        _send_task_success(services, token, ACT)
        return ACT
    try:
        run = work.commit(Change(run_set={"task_token": token}, run_condition=(Run.waiting_for == gate.APPROVAL)
                                 & (Run.cancel_requested == False)))  # noqa: E712
    except RunConflict:
        fresh = work.reload()
        next_step = FINISH if fresh.cancel_requested or fresh.status in TERMINAL else ACT
        _send_task_success(services, token, next_step)
        return next_step
    if int(run.approvals_pending or 0) == 0:
        _send_task_success(services, token, ACT)
        return ACT
    return gate.APPROVAL


def _cancel_approvals(work: Slice) -> None:
    """The run ends while approvals of its last turn are pending: each is cancelled (its event first)."""
    run = work.run
    last = list(ConversationMessage.query(Run.partition(run.workspace_id, run.id), ConversationMessage.sk.startswith(
        "MSG#"), scan_index_forward=False, limit=1, consistent_read=True))
    uses = [b for b in (last[0].content if last else []) if b.get("type") == "tool_use"]
    for approval in gate.approvals_of(run, uses).values():
        if approval.status != gate.PENDING:
            continue
        try:
            work.commit(gate.decision_change(approval, gate.CANCELLED, "deny", work.services.now(), by=None,
                                             reason="The run ended."))
        except RunConflict:
            work.reload()  # decided meanwhile


def _tool_call(run: Run, tool_use_id: str) -> ToolCall | None:
    return ToolCall.get_or_none(*ToolCall.key(run.workspace_id, run.id, tool_use_id))


def _with_tool_start(change: Change, run: Run, use: dict[str, Any], at: datetime) -> None:
    """Add the start of a tool call to ``change`` (event tool.called) — on the
    condition that no cancel is recorded: no tool starts after a cancel."""
    call = ToolCall(*ToolCall.key(run.workspace_id, run.id, use["id"]), tool_use_id=use["id"], name=use["name"],
                    started_at=at)
    change.events.append(("tool.called", {"tool_use_id": use["id"], "name": use["name"],
                                          "input": use.get("input", {})}))
    change.puts.append(call)
    not_cancelled = Run.cancel_requested == False  # noqa: E712 - a DynamoDB condition, not a comparison
    change.run_condition = not_cancelled if change.run_condition is None else change.run_condition & not_cancelled


def _start_tool_call(work: Slice, use: dict[str, Any]) -> ToolCall | None:
    """Record the call (event tool.called) unless the run was cancelled. Returns
    the call (None when cancelled)."""
    change = Change()
    _with_tool_start(change, work.run, use, work.services.now())
    try:
        work.commit(change)
        return work.tool_calls()[use["id"]]
    except RunConflict:
        run = work.reload()
        if run.cancel_requested:
            return None
        recorded = _tool_call(run, use["id"])  # a concurrent attempt recorded it
        if recorded is None:
            raise
        work.tool_calls()[use["id"]] = recorded
        return recorded


def _execute(services: Services, run: Run, use: dict[str, Any], allowed: list[str],
             calls: dict[str, ToolCall]) -> ToolResult:
    if mcp_names.is_mcp_tool(use["name"]):  # a tool of the workspace's own MCP server (agenthq.mcp)
        made = sum(1 for c in calls.values() if mcp_names.is_mcp_tool(c.name) and c.tool_use_id != use["id"])
        return mcp_tools.execute(services.mcp_connector, services.header_vault, run.workspace_id, use["name"],
                                 use.get("input", {}), allowed, made)
    context = ToolContext(workspace_id=run.workspace_id, run_id=run.id, agent_id=run.agent_id,
                          depth=int(run.depth), clock=services, call_id=use["id"])
    # Unknown or not-allowed tools (delegate included) come back as is_error results.
    return services.tools.execute(use["name"], use.get("input", {}), context, allowed)


def _outcome(result: ToolResult) -> dict[str, Any]:
    return {"content": result.content, "is_error": result.is_error}


def _with_tool_result(change: Change, call: ToolCall, result: ToolResult, child_cost_micro_usd: int = 0) -> None:
    """Add a tool's result to ``change``, once (event tool.result, the run's
    tool_calls + 1; for a delegation, the child's model cost joins what the
    run's budget covers)."""
    outcome = _outcome(result)
    change.events.insert(0, ("tool.result", {"tool_use_id": call.tool_use_id, "name": call.name, **outcome}))
    if child_cost_micro_usd:
        change.run_actions.append(Run.children_micro_usd.add(child_cost_micro_usd))
    change.extra.append(lambda tx: tx.update(call, actions=[ToolCall.result.set(outcome)],
                                             condition=ToolCall.result.does_not_exist()))
    change.metered[ledger.tool_entry(call.tool_use_id, mcp_tools.server_of(call.name))] = Usage(tool_calls=1)


def _finish_tool_call(work: Slice, call: ToolCall, result: ToolResult, start: dict[str, Any] | None = None) -> bool:
    """Record a tool's result (and start the ``start`` call with it, unless a
    cancel is recorded). False when the run was cancelled meanwhile."""
    change = Change()
    _with_tool_result(change, call, result)
    if start is not None:
        _with_tool_start(change, work.run, start, work.services.now())
    try:
        work.commit(change)
    except RunConflict:
        run = work.reload()
        if start is not None and run.cancel_requested:
            _finish_tool_call(work, call, result)
            return False
        if start is None:
            return not run.cancel_requested  # already recorded by an earlier attempt
        return _finish_tool_call(work, call, result)
    call.result = _outcome(result)
    return True


# --------------------------------------------------------------------------- delegate


def delegate(work: Slice, event: dict[str, Any]) -> str:
    """Start (or re-attach to) the child run of the pending delegate call. The
    state machine then waits until the child's last step sends ``task_token``."""
    run, services = work.run, work.services
    token = event.get("task_token")
    if not isinstance(token, str) or not token:
        raise RunStepRejected("delegate needs the task token")
    calls = work.tool_calls()
    pending = [b for b in work.conversation()[-1].content if b.get("type") == "tool_use" and b["name"] == "delegate"
               and (calls.get(b["id"]) is None or calls[b["id"]].result is None)]
    if not pending or run.cancel_requested:
        _send_task_success(services, token, ACT)
        return ACT
    use = pending[0]
    call = calls.get(use["id"])
    if call is None:
        call = _start_tool_call(work, use)
        if call is None:  # cancelled
            _send_task_success(services, token, ACT)
            return ACT
        run = work.run
    arguments = use.get("input") or {}

    def refuse(message: str) -> str:
        _finish_tool_call(work, call, ToolResult(content=message, is_error=True))
        _send_task_success(services, token, ACT)
        return ACT

    if int(run.depth) >= services.settings.max_delegation_depth:
        return refuse(f"Delegation is limited to {services.settings.max_delegation_depth} levels; "
                      "do this part yourself.")
    text = arguments.get("input")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_DELEGATE_INPUT_CHARS:
        return refuse("delegate needs 'input': the task for the other agent "
                      f"(1-{MAX_DELEGATE_INPUT_CHARS:,} characters).")
    try:
        target = find_agent(run.workspace_id, str(arguments.get("agent", "")))
    except (NotFound, InvalidRequest):
        return refuse(f"No agent {arguments.get('agent')!r} in this workspace.")
    if target.id == run.agent_id:
        return refuse("An agent cannot delegate to itself.")

    child_id = call.child_run_id or ids.derived_id(run.id, "child", use["id"])
    try:
        child = create_run_record(
            services, run.workspace_id, target, text, run_id=child_id, created_by=run.created_by,
            parent=run, parent_tool_use_id=use["id"], parent_task_token=token,
        )
    except QuotaExceeded as exc:  # a child run counts against the workspace's runs per day
        return refuse(f"Cannot delegate: {exc.message}")
    if call.child_run_id is None:
        try:
            call.update(actions=[ToolCall.child_run_id.set(child_id)])
        except UpdateError:
            pass
    with_status = Change(events=[] if run.status == "waiting" else [("run.waiting", {"child_run_id": child_id})],
                         run_set={"status": "waiting"}, run_condition=Run.status.is_in("running", "waiting"))
    try:
        work.commit(with_status)
    except RunConflict:
        pass
    if child.status in TERMINAL:  # finished before this (retried) step: answer at once
        _answer_parent(services, child)
        _send_task_success(services, token, ACT)
        return ACT
    services.orchestrator.start(child.id, {"workspace_id": child.workspace_id, "run_id": child.id})
    return DELEGATE


def _send_task_success(services: Services, token: str, next_step: str) -> None:
    if not services.orchestrator.send_next(token, next_step):
        logger.info("task token no longer valid")


def _answer_parent(services: Services, child: Run) -> None:
    """Put a finished child's answer into its parent's delegate call (once)."""
    if not child.parent_run_id or not child.parent_tool_use_id:
        return
    parent = Slice(services, load_run(child.workspace_id, child.parent_run_id))
    if parent.run.status in TERMINAL:  # it ended first (and cancelled this child): nothing waits for the answer
        return
    call = _tool_call(parent.run, child.parent_tool_use_id)
    if call is not None and call.result is None:
        if child.status == "succeeded":
            result = ToolResult(content=child.output or "", is_error=False)
        else:
            reason = (child.error or {}).get("message") or child.status
            result = ToolResult(content=f"The delegated run {child.id} ended {child.status}: {reason}",
                                is_error=True)
        change = Change()  # the parent's budget covers the child's whole subtree: its children's cost too
        subtree_cost = int(child.cost_micro_usd or 0) + int(child.children_micro_usd or 0)
        _with_tool_result(change, call, result, child_cost_micro_usd=subtree_cost)
        try:
            parent.commit(change)
        except RunConflict:
            pass  # already recorded by an earlier attempt


# --------------------------------------------------------------------------- pause


def pause(work: Slice, event: dict[str, Any]) -> str:
    """Wait for a resume (or a cancel): keep the task token on the run. A
    cancel recorded before the pause is (even one racing it) ends the run."""
    token = event.get("task_token")
    if not isinstance(token, str) or not token:
        raise RunStepRejected("pause needs the task token")
    if work.run.cancel_requested or not pausing.mark_paused(work.services, work.run, token):
        _send_task_success(work.services, token, FINISH)
        return FINISH
    return PAUSE


# --------------------------------------------------------------------------- finish and fail


def finish(work: Slice, event: dict[str, Any]) -> str:
    _meter_begun_calls(work)
    run = work.run
    _settle(work, decisions.final_outcome(run.outcome, bool(run.cancel_requested)))
    return DONE


def fail(work: Slice, event: dict[str, Any]) -> str:
    _meter_begun_calls(work)
    _settle(work, decisions.failure_outcome(event.get("error") or {}))
    return FAILED


def _settle(work: Slice, outcome: Outcome, with_change: Change | None = None) -> None:
    """Write the run's end (once), give back what it held, answer a waiting
    parent, end its children still going (a child never outlives its parent).
    ``with_change``: the step's own writes, in the same transaction (then a
    conflict raises RunConflict, and the caller writes them alone)."""
    run, services = work.run, work.services
    was_paused = run.paused_at is not None
    ended_waiting = False
    if run.status in TERMINAL and with_change is not None:
        raise RunConflict("the run has ended already")
    if run.status not in TERMINAL and int(run.approvals_pending or 0) > 0:
        _cancel_approvals(work)  # (their events before the run's end)
    if run.status not in TERMINAL:
        for _ in range(5):  # the slots may change under the end (a hand-over, a run queued meanwhile): decide again
            before = work.run.status
            change, release, status = _end_change(work.run, outcome, services.now(), with_change)
            try:
                work.commit(change)
            except RunConflict:
                if with_change is not None:
                    raise
                if work.reload().status in TERMINAL:
                    break
                continue
            if release.successor_token is not None:  # the oldest queued run holds this run's slot now: it starts
                _send_task_success(services, release.successor_token, START)
            if release.own_token is not None:  # it ended while in the queue: its WaitForSlot task goes on to finish
                _send_task_success(services, release.own_token, FINISH)
            ended_waiting = before == "waiting"
            if before == "queued" and not run.parent_run_id:  # it never started: nothing is left to start
                forget_unstarted(run.workspace_id, run.id)
            metrics.add_metric(name=f"Runs{status.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
            break
        else:
            raise RunConflict("the run's end kept conflicting")  # Step Functions retries Finish
    run = work.run
    for step in list(work.reserved):  # the reservations this slice knows of
        _release(work, step)
    # and those it does not: a crashed slice's, or the next call's that an earlier slice reserved with its
    # step (start, a reply) when the run ends before that call (a cancel, its deadline, a limit)
    quota.release_all(run.workspace_id, run.id)
    if was_paused:
        pausing.forget(run.workspace_id, run.id)
    if ended_waiting or (run.status in TERMINAL and work.recovering):  # (a retried end: its children again)
        _cancel_children(services, run)
    if run.session_id:  # the session's next turn may start
        turns.on_end(services, run)
    if run.parent_run_id:
        _answer_parent(services, run)
        fresh = load_run(run.workspace_id, run.id)  # a retried parent step may have left a newer token
        if fresh.parent_task_token:
            _send_task_success(services, fresh.parent_task_token, ACT)
        _hand_on_its_session(services, run)


def _hand_on_its_session(services: Services, child: Run) -> None:
    """A delegated run has ended: when every run above it has ended too and the top one is a session's
    turn (a cancelled parent's children end after it), that turn may be done now, and the next one start."""
    run = child
    for _ in range(16):  # deeper than any delegation may go
        if not run.parent_run_id:
            break
        parent = Run.get_or_none(*Run.key(run.workspace_id, run.parent_run_id), consistent_read=True)
        if parent is None or parent.status not in TERMINAL:  # a parent still going hands on at its own end
            return
        run = parent
    if run is not child and run.session_id and not run.parent_run_id:
        turns.on_end(services, run)


def _end_change(run: Run, outcome: Outcome, at: datetime,
                with_change: Change | None) -> tuple[Change, slots.SlotRelease, str]:
    """The end of ``run`` as one change (on top of ``with_change``), what it
    gives back of the workspace's slots, and its status."""
    base = with_change or Change()
    status = outcome["status"]
    # agent time: from start to end, less the time it spent paused at a limit
    paused = int(run.paused_seconds or 0) + (int((at - run.paused_at).total_seconds()) if run.paused_at else 0)
    paused += int((at - run.waiting_since).total_seconds()) if run.waiting_since else 0  # an approval wait
    seconds = max(0, int((at - run.started_at).total_seconds()) - paused) if run.started_at else 0
    error = None if status == "succeeded" else {"reason": outcome.get("reason", status),
                                                 "message": outcome.get("message", "")}
    totals = Usage.of(run) + sum(base.metered.values(), Usage())
    data: dict[str, Any] = {"status": status}
    if outcome.get("output") is not None:
        data["output"] = outcome["output"]
    if outcome.get("truncated"):
        data["truncated"] = True
    if error:
        data["error"] = error
    data["usage"] = {"cost_usd": f"{totals.cost_usd:.6f}", "steps": int(base.run_set.get("steps", run.steps)),
                     "tool_calls": totals.tool_calls, "agent_seconds": seconds}
    release = slots.on_end(run)
    ending = Run.status.is_in("queued", "running", "paused", "waiting") & release.run_condition
    owed = turns.hand_on_owed(run, at)  # a session's turn: its hand-on is owed until on_end is through
    change = Change(
        events=[*base.events, (f"run.{status}", data)],
        run_set={**base.run_set, "status": status, "finished_at": at, "output": outcome.get("output"),
                 "error": error, **dict.fromkeys(ENDED_RUN_DROPS)},
        run_actions=base.run_actions,
        run_condition=ending if base.run_condition is None else base.run_condition & ending,
        puts=base.puts,
        extra=[*base.extra, *release.writes, *([owed] if owed is not None else [])],
        metered={**base.metered, ledger.SECONDS: Usage(agent_seconds=seconds)},
        entry_details=base.entry_details,
        settles=base.settles,
        step=base.step,
        closes_infra=True,
    )
    return change, release, status


# --------------------------------------------------------------------------- cancel


def cancel(services: Services, run: Run) -> None:
    """Record the cancel of an active ``run`` and end it, or wake it wherever
    it waits so that it ends: a run queued outside the queue (its execution
    never started, or has not reached the queue) or in it ends here and now,
    giving back its place (a child not started yet too: its parent's delegate
    step may never start it once the parent is cancelled); a paused run is
    answered ``finish``; a waiting run cancels its children (their end wakes
    it). What ``POST …/cancel`` and offboarding call (``runs.cancel``)."""
    try:  # the update returns the run as it is at the cancel (ALL_NEW): a pause or a hand-over before it shows
        run.update(actions=[Run.cancel_requested.set(True)], condition=Run.status.is_in("queued", "running",
                                                                                        "paused", "waiting"))
    except UpdateError:
        return  # it ended meanwhile
    if run.status == "queued" and run.slot != slots.OWN:  # not started, and not about to (no slot handed to it)
        _settle(Slice(services, run), decisions.final_outcome(run.outcome, True))
    elif run.status == "paused" and run.task_token:
        _send_task_success(services, run.task_token, FINISH)
    elif run.status == "waiting" and run.waiting_for == gate.APPROVAL:
        if run.task_token:  # (without one yet, its wait step finds the cancel)
            _send_task_success(services, run.task_token, FINISH)
    elif run.status == "waiting":
        _cancel_children(services, run)
    # (a running run, or a queued one just handed a slot, sees the cancel at its next step)


def _cancel_children(services: Services, run: Run) -> None:
    """Cancel the children ``run`` delegated to that have not answered (their end no longer wakes it)."""
    for call in ToolCall.query(Run.partition(run.workspace_id, run.id), ToolCall.sk.startswith("TOOL#"),
                               consistent_read=True):
        if call.child_run_id and call.result is None:
            child = Run.get_or_none(*Run.key(run.workspace_id, call.child_run_id))
            if child is not None and child.status not in TERMINAL:
                cancel(services, child)


# --------------------------------------------------------------------------- helpers


def _decide(work: Slice, step: int, kind: str, outcome: Outcome) -> str:
    change = Change(run_set={"outcome": outcome}, step=StepMark(step, kind, FINISH))
    try:
        work.commit(change)
    except RunConflict:
        return _recorded_or(work, step, kind, FINISH)
    return FINISH


def _recorded_or(work: Slice, step: int, kind: str, default: str) -> str:
    """After a conflict: what the step said comes next if it committed after all, else ``default``."""
    work.reload()
    done = work.recorded(step, kind)
    return done if done is not None else default


STEPS: dict[str, Callable[[Slice, dict[str, Any]], str]] = {
    "start": start, "queue": queue, "think": think, "act": act, "delegate": delegate, "pause": pause,
    "approval": await_approval, "finish": finish, "fail": fail}
