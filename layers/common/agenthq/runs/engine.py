"""The steps of an agent run, as the agent-run state machine calls them.

    Start → Think → (Act | WaitForChild | Paused)* → Finish      (Catch → RecordFailure)

Each step loads the run from DynamoDB, does its work and commits through
``records.commit`` (one transaction with a step record), then tells the state
machine what comes next and in which *turn*: the state machine carries
``{next, turn}`` and passes the turn back in, so a step knows which think/act
it is from the orchestrator's state, never from data it changes itself. Step
Functions may run any step again (retries, redelivery): a step whose record
for that turn exists returns the recorded answer; tool calls are recorded so
that no event is appended twice and no usage is counted twice.

How a run ends is decided by the step that notices (``outcome`` on the run:
succeeded with output, failed with a reason, timed_out, cancelled) and written
by Finish, which also answers a waiting parent run.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action

from agenthq import ids
from agenthq.adapters.model import ModelRequest, ModelRequestRejected, ModelUnavailable
from agenthq.agent_lookup import find_agent
from agenthq.errors import InvalidRequest, NotFound, QuotaExceeded
from agenthq.messaging import take_inbox
from agenthq.observability import RUNS_STARTED, MetricUnit, count, count_model_tokens, logger, metrics
from agenthq.runs import decisions, pausing, slots
from agenthq.runs.decisions import ACT, DELEGATE, FINISH, PAUSE, QUEUE, START, THINK, Outcome
from agenthq.runs.launch import create_run_record
from agenthq.runs.records import (
    TERMINAL,
    Change,
    RunConflict,
    commit,
    cost_usd,
    load_body,
    load_run,
    step_record,
)
from agenthq.store import tenant_scope, transaction
from agenthq.store.items import ConversationMessage, LedgerEntry, Reservation, Run, StepRecord, ToolCall
from agenthq.text import clip
from agenthq.tiers import TierLimits
from agenthq.tools.registry import ToolContext, ToolResult
from agenthq.tools.stateful import MAX_DELEGATE_INPUT_CHARS
from agenthq.usage import Usage, alerts, counters, ledger, quota

if TYPE_CHECKING:
    from agenthq.services import Services

#: Each inbox message is shown up to this many characters, so the first message fits a DynamoDB item.
INBOX_MESSAGE_CHARS = 2000


class RunStepRejected(Exception):
    """A step that must not be retried: the run does not exist, or the request is malformed."""


# --------------------------------------------------------------------------- dispatch


def run_step(services: Services, event: dict[str, Any]) -> dict[str, Any]:
    metrics.add_metric(name="RunSteps", unit=MetricUnit.Count, value=1)
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
        next_step = STEPS[step](services, run, event)
    # think → act stays in the turn; act → think, and think → think (pause_turn), begin the next one.
    if step == "start":
        turn = 1
    elif next_step == THINK and step in ("think", "act"):
        turn += 1
    return {"next": next_step, "turn": turn}


# --------------------------------------------------------------------------- start


def start(services: Services, run: Run, event: dict[str, Any]) -> str:
    if (done := step_record(run, 0, "start")) is not None:
        return done.next
    if run.status in TERMINAL or run.cancel_requested:
        return FINISH
    if not run.parent_run_id and not slots.acquire(run, quota.workspace_limits(run.workspace_id)):
        return QUEUE  # all the workspace's slots are taken, or others wait before it
    inbox = take_inbox(run.workspace_id, run.agent_id, run.id)
    text = load_body(run).input
    if inbox:
        lines = "\n".join(f"- from agent {m.from_agent_id}: {clip(m.body, INBOX_MESSAGE_CHARS)}" for m in inbox)
        text = f"{text}\n\nMessages other agents sent you since your last run:\n{lines}"
    first = ConversationMessage(*ConversationMessage.key(run.workspace_id, run.id, 1), index=1, role="user",
                                content=[{"type": "text", "text": text}])
    at = services.now()
    change = Change(
        events=[("run.started", {"messages_delivered": len(inbox)})],
        run_actions=[Run.status.set("running"), Run.started_at.set(at)],
        run_condition=Run.status == "queued",
        puts=[first, StepRecord(*StepRecord.key(run.workspace_id, run.id, 0, "start"), next=THINK)],
    )
    try:
        commit(services, run, change)
    except RunConflict:
        return _recorded_or(run, 0, "start", FINISH)
    count(RUNS_STARTED)
    return THINK


def queue(services: Services, run: Run, event: dict[str, Any]) -> str:
    """Wait for a slot (the WaitForSlot state): in the workspace's queue with
    this task token, answered ``start`` when a slot is handed over — or at once
    if one is free now. A cancelled run is answered ``finish``."""
    token = event.get("task_token")
    if not isinstance(token, str) or not token:
        raise RunStepRejected("queue needs the task token")
    if run.status in TERMINAL or run.cancel_requested:
        _send_task_success(services, token, FINISH)
        return FINISH
    limits = quota.workspace_limits(run.workspace_id)
    for _ in range(5):
        if slots.enqueue(run, token, limits):
            return QUEUE
        if slots.acquire(run, limits):
            _send_task_success(services, token, START)
            return START
    raise RunConflict("the workspace's slots kept changing")  # Step Functions retries the step


# --------------------------------------------------------------------------- think


def think(services: Services, run: Run, event: dict[str, Any]) -> str:
    step = event["turn"]
    if (done := step_record(run, step, "think")) is not None:
        return done.next
    agent = load_body(run).agent
    if (ending := _ending_before_a_model_call(services, run, agent)) is not None:
        return _decide(services, run, step, "think", ending)

    conversation = _conversation(run)
    request = _model_request(services, run, agent, conversation)
    at = services.now()
    limits = quota.workspace_limits(run.workspace_id)
    hold = quota.hold_for(request, at)
    blocked = quota.reserve(run.workspace_id, run.id, step, hold, limits, at)
    if blocked is not None:
        return _pause_at(services, run, blocked, hold)
    try:
        response = services.model.create_message(request)
    except ModelRequestRejected as exc:
        quota.release(run.workspace_id, run.id, step)
        return _decide(services, run, step, "think",
                       {"status": "failed", "reason": "model_rejected_request", "message": exc.reason})
    except ModelUnavailable:
        quota.release(run.workspace_id, run.id, step)
        raise  # the state machine retries Think, then fails the run with its reason

    usage = Usage.model_call(request.model, response.usage, at.date())
    _meter_model_call(services, run, step, request.model, response.id, usage, limits, at)
    next_step, outcome = decisions.after_model(response.content, response.stop_reason)
    index = len(conversation) + 1
    answer = ConversationMessage(*ConversationMessage.key(run.workspace_id, run.id, index), index=index,
                                 role="assistant", content=response.content)
    actions = [Run.steps.set(step)]
    if outcome is not None:
        actions.append(Run.outcome.set(outcome))
    change = Change(
        events=[("model.called", {
            "step": step,
            "model": request.model,
            "stop_reason": response.stop_reason,
            "attempts": response.attempts,
            "usage": usage.tokens.view(),
            "cost_usd": f"{usage.cost_usd:.6f}",
            "tool_uses": [b.get("name") for b in response.content if b.get("type") == "tool_use"],
        })],
        run_actions=actions,
        run_condition=Run.status.is_in("running", "waiting"),
        puts=[answer, StepRecord(*StepRecord.key(run.workspace_id, run.id, step, "think"), next=next_step)],
    )
    try:
        commit(services, run, change)
    except RunConflict:
        return _recorded_or(run, step, "think", FINISH)
    metrics.add_metric(name="ModelCalls", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ModelCostMicroUSD", unit=MetricUnit.Count, value=usage.cost_micro_usd)
    count_model_tokens(usage.tokens.view())
    return next_step


def _meter_model_call(services: Services, run: Run, step: int, model: str, message_id: str, usage: Usage,
                      limits: TierLimits, at: datetime) -> None:
    """Count a model call Anthropic answered, before anything else can fail: its
    ledger entry, the run's totals, the workspace's counters, and the month's
    quota (the reservation replaced by the actual cost) — in one transaction,
    once per message."""
    entry = ledger.model_entry(message_id)
    reservation = Reservation.get_or_none(*Reservation.key(run.workspace_id, run.id, step))
    try:
        with transaction() as tx:
            ledger.record(tx, run.workspace_id, run.id, entry, usage, at, services.settings.usage_counter_shards,
                          step=step, model=model)
            tx.update(run, actions=usage.add_actions(Run))
            quota.settle(tx, run.workspace_id, reservation, usage, at)
    except TransactWriteError:
        if LedgerEntry.get_or_none(*LedgerEntry.key(run.workspace_id, run.id, entry)) is not None:
            return  # metered already
        raise
    month = quota.month_quota(run.workspace_id, at)
    if month is not None:
        period = counters.month(at)
        alerts.check(services.operator_events, run.workspace_id, quota.TOKENS, int(month.used_tokens),
                     limits.tokens_per_month, period, at)
        alerts.check(services.operator_events, run.workspace_id, quota.BUDGET, int(month.used_micro_usd),
                     quota.budget_micro_usd(limits), period, at)


def _pause_at(services: Services, run: Run, limit: str, hold: quota.Hold) -> str:
    """The month's ``limit`` has no room for the next model call (``hold``): the
    run waits (the Paused state) until a resume; the same turn thinks again then."""
    try:
        commit(services, run, Change(run_actions=[Run.pause_reason.set(limit), Run.pause_hold.set(asdict(hold))],
                                     run_condition=Run.status.is_in("running", "waiting")))
    except RunConflict:
        return FINISH
    return PAUSE


def _ending_before_a_model_call(services: Services, run: Run, agent: dict[str, Any]) -> Outcome | None:
    return decisions.ending_before_a_model_call(
        cancel_requested=bool(run.cancel_requested), now=services.now(), created_at=run.created_at,
        deadline=run.deadline, steps=int(run.steps),
        spent=Usage.of(run) + Usage(cost_micro_usd=int(run.children_micro_usd or 0)), agent=agent)


def _model_request(services: Services, run: Run, agent: dict[str, Any],
                   conversation: list[ConversationMessage]) -> ModelRequest:
    messages = decisions.with_cache_breakpoint([{"role": m.role, "content": m.content} for m in conversation])
    system = [{"type": "text", "text": decisions.system_prompt(run.agent_id, agent),
               "cache_control": {"type": "ephemeral"}}]
    return ModelRequest(model=agent["model"], system=system, messages=messages,
                        tools=services.tools.definitions(agent["tools"]),
                        max_tokens=services.settings.model_max_tokens, metadata_user_id=run.workspace_id)


def _conversation(run: Run) -> list[ConversationMessage]:
    return list(ConversationMessage.query(Run.partition(run.workspace_id, run.id),
                                          ConversationMessage.sk.startswith("MSG#"), consistent_read=True))



# --------------------------------------------------------------------------- act


def act(services: Services, run: Run, event: dict[str, Any]) -> str:
    step = event["turn"]
    if (done := step_record(run, step, "act")) is not None:
        return done.next
    if run.cancel_requested:
        return FINISH
    agent = load_body(run).agent
    if services.now() >= run.deadline:
        return _decide(services, run, step, "act", decisions.timed_out(run.created_at, run.deadline))
    conversation = _conversation(run)
    uses = [b for b in conversation[-1].content if b.get("type") == "tool_use"]
    calls = _tool_calls(run)
    for use in uses:
        call = calls.get(use["id"])
        if call is not None and call.result is not None:
            continue
        if call is None:
            call, run = _start_tool_call(services, run, use)
            if call is None:  # cancelled before it could start
                return FINISH
        if use["name"] == "delegate" and "delegate" in agent["tools"]:
            return DELEGATE  # the state machine starts the child run and waits for it
        result = _execute(services, run, use, agent["tools"])
        run = _finish_tool_call(services, run, call, result)
    recorded = _tool_calls(run)  # as they are now, with this invocation's results
    results = [_result_block(recorded[u["id"]], u["id"]) for u in uses]
    index = len(conversation) + 1
    reply = ConversationMessage(*ConversationMessage.key(run.workspace_id, run.id, index), index=index,
                                role="user", content=results)
    change = Change(
        run_actions=[Run.status.set("running")],
        run_condition=Run.status.is_in("running", "waiting"),
        puts=[reply, StepRecord(*StepRecord.key(run.workspace_id, run.id, step, "act"), next=THINK)],
    )
    try:
        commit(services, run, change)
    except RunConflict:
        return _recorded_or(run, step, "act", FINISH)
    return THINK


def _tool_calls(run: Run) -> dict[str, ToolCall]:
    return {c.tool_use_id: c for c in ToolCall.query(Run.partition(run.workspace_id, run.id),
                                                     ToolCall.sk.startswith("TOOL#"), consistent_read=True)}


def _tool_call(run: Run, tool_use_id: str) -> ToolCall | None:
    return ToolCall.get_or_none(*ToolCall.key(run.workspace_id, run.id, tool_use_id))


def _start_tool_call(services: Services, run: Run, use: dict[str, Any]) -> tuple[ToolCall | None, Run]:
    """Record the call (event tool.called) — unless the run was cancelled: no
    tool starts once a cancel is recorded (the condition is in the same write).
    Returns the call (None when cancelled) and the run as it is now."""
    call = ToolCall(*ToolCall.key(run.workspace_id, run.id, use["id"]), tool_use_id=use["id"], name=use["name"],
                    started_at=services.now())
    change = Change(
        events=[("tool.called", {"tool_use_id": use["id"], "name": use["name"], "input": use.get("input", {})})],
        run_condition=Run.cancel_requested == False,  # noqa: E712 - a DynamoDB condition, not a comparison
        puts=[call],
    )
    try:
        return call, commit(services, run, change)
    except RunConflict:
        fresh = load_run(run.workspace_id, run.id)
        if fresh.cancel_requested:
            return None, fresh
        recorded = _tool_call(run, use["id"])  # a concurrent attempt recorded it
        if recorded is None:
            raise
        return recorded, fresh


def _execute(services: Services, run: Run, use: dict[str, Any], allowed: list[str]) -> ToolResult:
    context = ToolContext(workspace_id=run.workspace_id, run_id=run.id, agent_id=run.agent_id,
                          depth=int(run.depth), clock=services, call_id=use["id"])
    # Unknown or not-allowed tools (delegate included) come back as is_error results.
    return services.tools.execute(use["name"], use.get("input", {}), context, allowed)


def _finish_tool_call(services: Services, run: Run, call: ToolCall, result: ToolResult,
                      child_cost_micro_usd: int = 0) -> Run:
    """Record a tool's result once (event tool.result, the run's tool_calls + 1;
    for a delegation, the child's model cost joins what the run's budget covers)."""
    outcome = {"content": result.content, "is_error": result.is_error}
    change = Change(
        events=[("tool.result", {"tool_use_id": call.tool_use_id, "name": call.name, **outcome})],
        run_actions=[Run.children_micro_usd.add(child_cost_micro_usd)] if child_cost_micro_usd else [],
        extra=[lambda tx: tx.update(call, actions=[ToolCall.result.set(outcome)],
                                    condition=ToolCall.result.does_not_exist())],
        metered={ledger.tool_entry(call.tool_use_id): Usage(tool_calls=1)},
    )
    try:
        return commit(services, run, change)
    except RunConflict:
        return load_run(run.workspace_id, run.id)  # already recorded by an earlier attempt


def _result_block(call: ToolCall, tool_use_id: str) -> dict[str, Any]:
    result = call.result
    return {"type": "tool_result", "tool_use_id": tool_use_id, "content": result["content"],
            "is_error": bool(result["is_error"])}


# --------------------------------------------------------------------------- delegate


def delegate(services: Services, run: Run, event: dict[str, Any]) -> str:
    """Start (or re-attach to) the child run of the pending delegate call. The
    state machine then waits until the child's last step sends ``task_token``."""
    token = event.get("task_token")
    if not isinstance(token, str) or not token:
        raise RunStepRejected("delegate needs the task token")
    conversation = _conversation(run)
    calls = _tool_calls(run)
    pending = [b for b in conversation[-1].content if b.get("type") == "tool_use" and b["name"] == "delegate"
               and (calls.get(b["id"]) is None or calls[b["id"]].result is None)]
    if not pending or run.cancel_requested:
        _send_task_success(services, token, ACT)
        return ACT
    use = pending[0]
    call = calls.get(use["id"])
    if call is None:
        call, run = _start_tool_call(services, run, use)
        if call is None:  # cancelled
            _send_task_success(services, token, ACT)
            return ACT
    arguments = use.get("input") or {}

    def refuse(message: str) -> str:
        _finish_tool_call(services, run, call, ToolResult(content=message, is_error=True))
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
                         run_actions=[Run.status.set("waiting")], run_condition=Run.status.is_in("running", "waiting"))
    try:
        commit(services, run, with_status)
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
    parent = load_run(child.workspace_id, child.parent_run_id)
    call = _tool_call(parent, child.parent_tool_use_id)
    if call is not None and call.result is None:
        if child.status == "succeeded":
            result = ToolResult(content=child.output or "", is_error=False)
        else:
            reason = (child.error or {}).get("message") or child.status
            result = ToolResult(content=f"The delegated run {child.id} ended {child.status}: {reason}",
                                is_error=True)
        _finish_tool_call(services, parent, call, result, child_cost_micro_usd=int(child.cost_micro_usd or 0))


# --------------------------------------------------------------------------- pause


def pause(services: Services, run: Run, event: dict[str, Any]) -> str:
    """Wait for a resume (or a cancel): keep the task token on the run."""
    token = event.get("task_token")
    if not isinstance(token, str) or not token:
        raise RunStepRejected("pause needs the task token")
    if run.cancel_requested:
        _send_task_success(services, token, FINISH)
        return FINISH
    pausing.mark_paused(services, run, token)
    return PAUSE


# --------------------------------------------------------------------------- finish and fail


def finish(services: Services, run: Run, event: dict[str, Any]) -> str:
    _settle(services, run, decisions.final_outcome(run.outcome, bool(run.cancel_requested)))
    return "done"


def fail(services: Services, run: Run, event: dict[str, Any]) -> str:
    _settle(services, run, decisions.failure_outcome(event.get("error") or {}))
    return "failed"


def _settle(services: Services, run: Run, outcome: dict[str, Any]) -> None:
    """Write the run's end (once), give back what it held, answer a waiting parent."""
    was_paused = run.paused_at is not None
    if run.status not in TERMINAL:
        at = services.now()
        status = outcome["status"]
        # agent time: from start to end, less the time it spent paused at a limit
        paused = int(run.paused_seconds or 0) + (int((at - run.paused_at).total_seconds()) if run.paused_at else 0)
        seconds = max(0, int((at - run.started_at).total_seconds()) - paused) if run.started_at else 0
        error = None if status == "succeeded" else {"reason": outcome.get("reason", status),
                                                     "message": outcome.get("message", "")}
        data: dict[str, Any] = {"status": status}
        if outcome.get("output") is not None:
            data["output"] = outcome["output"]
        if outcome.get("truncated"):
            data["truncated"] = True
        if error:
            data["error"] = error
        data["usage"] = {"cost_usd": f"{cost_usd(run):.6f}", "steps": int(run.steps),
                         "tool_calls": int(run.tool_calls), "agent_seconds": seconds}
        for _ in range(5):  # the slots may change under the end (a run queued meanwhile): decide again
            slot_writes, successor = slots.on_end(run)
            change = Change(
                events=[(f"run.{status}", data)],
                run_actions=[Run.status.set(status), Run.finished_at.set(at),
                             _set_or_remove(Run.output, outcome.get("output")), Run.error.set(error),
                             Run.task_token.remove(), Run.pause_reason.remove(), Run.pause_hold.remove(),
                             Run.paused_at.remove(), Run.slot.remove(),
                             Run.outcome.remove()],  # now written out as output / error
                run_condition=Run.status.is_in("queued", "running", "paused", "waiting"),
                extra=slot_writes,
                metered={ledger.SECONDS: Usage(agent_seconds=seconds)},
                closes_infra=True,
            )
            try:
                run = commit(services, run, change)
            except RunConflict:
                run = load_run(run.workspace_id, run.id)
                if run.status in TERMINAL:
                    break
                continue
            if successor is not None:  # the oldest queued run holds this run's slot now: it starts
                _send_task_success(services, successor, START)
            metrics.add_metric(name=f"Runs{status.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
            break
        else:
            raise RunConflict("the run's end kept conflicting")  # Step Functions retries Finish
    quota.release_all(run.workspace_id, run.id)  # reservations a crashed step left
    if was_paused:
        pausing.forget(run.workspace_id, run.id)
    if run.parent_run_id:
        _answer_parent(services, run)
        fresh = load_run(run.workspace_id, run.id)  # a retried parent step may have left a newer token
        if fresh.parent_task_token:
            _send_task_success(services, fresh.parent_task_token, ACT)


# --------------------------------------------------------------------------- helpers


def _set_or_remove(attribute: Any, value: Any) -> Action:
    action: Action = attribute.remove() if value is None else attribute.set(value)
    return action


def _decide(services: Services, run: Run, step: int, kind: str, outcome: dict[str, Any]) -> str:
    change = Change(run_actions=[Run.outcome.set(outcome)],
                    puts=[StepRecord(*StepRecord.key(run.workspace_id, run.id, step, kind), next=FINISH)])
    try:
        commit(services, run, change)
    except RunConflict:
        return _recorded_or(run, step, kind, FINISH)
    return FINISH


def _recorded_or(run: Run, step: int, kind: str, default: str) -> str:
    done = step_record(run, step, kind)
    return done.next if done is not None else default


STEPS = {"start": start, "queue": queue, "think": think, "act": act, "delegate": delegate, "pause": pause, "finish": finish,
         "fail": fail}
