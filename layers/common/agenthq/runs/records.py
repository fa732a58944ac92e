"""Reading and writing a run: its item, its events, and the one commit path.

Every change to a run goes through :func:`commit`: one DynamoDB transaction
that appends events with the next dense sequence numbers, updates the run item
on the condition that nobody else appended meanwhile (``seq`` unchanged), and
writes any other items of the step — a step record above all, created only if
absent. So a step is all-or-nothing, and a retried step either finds its record
(and does nothing again) or commits exactly once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action

from agenthq.runs import session_events
from agenthq.store import BaseItem, transaction
from agenthq.store.items import Reservation, Run, RunBody, RunEvent, StepRecord
from agenthq.usage import Usage, counters, infra, ledger, quota

if TYPE_CHECKING:
    from agenthq.services import Services
    from agenthq.tiers import TierLimits

INPUT_PREVIEW_CHARS = 500
LAST_SEQ = 9_999_999_999  # event sort keys hold 10 digits


class RunConflict(Exception):
    """The run changed under a step in a way the step cannot absorb."""



def load_run(workspace_id: str, run_id: str) -> Run:
    return Run.get_or_404(*Run.key(workspace_id, run_id))


#: The order of a turn's steps (start is turn 0's only step).
STEP_ORDER = {"start": 0, "think": 1, "act": 2}


@dataclass(frozen=True)
class StepMark:
    """The last step of a run that committed, and what it said comes next: kept
    on the run (``Run.step_mark``), written by the step's own commit on the
    condition that no later step — nor this one — committed before it. A
    retried slice resumes after it; a step that finds itself marked does
    nothing again."""

    turn: int
    kind: str
    next: str

    @staticmethod
    def position(turn: int, kind: str) -> str:
        """Sortable as text: ``000003#1`` is turn 3's think."""
        return f"{turn:06d}#{STEP_ORDER[kind]}"

    def text(self) -> str:
        return f"{self.position(self.turn, self.kind)}#{self.kind}#{self.next}"

    @classmethod
    def of(cls, run: Run) -> StepMark | None:
        if not run.step_mark:
            return None
        turn, _, kind, next_step = run.step_mark.split("#")
        return cls(int(turn), kind, next_step)

    def at_or_after(self, turn: int, kind: str) -> bool:
        return self.position(self.turn, self.kind) >= self.position(turn, kind)


def legacy_step_record(run: Run, step: int, kind: str) -> str | None:
    """What a run started by the engine before step marks recorded for this step."""
    record = StepRecord.get_or_none(*StepRecord.key(run.workspace_id, run.id, step, kind))
    return record.next if record is not None else None


def cost_usd(run: Run) -> Decimal:
    return Usage.of(run).cost_usd


def load_body(run: Run) -> RunBody:
    return RunBody.get(*RunBody.key(run.workspace_id, run.id), consistent_read=True)


def run_view(run: Run, body: RunBody | None = None) -> dict[str, Any]:
    """The run as the API shows it. Lists pass no body: their ``input`` is the
    first INPUT_PREVIEW_CHARS characters (``input_truncated`` says so)."""
    text = body.input if body is not None else run.input_preview
    return {
        "id": run.id,
        "workspace_id": run.workspace_id,
        "agent_id": run.agent_id,
        "agent_version": int(run.agent_version) if run.agent_version is not None else None,
        "parent_run_id": run.parent_run_id,
        "session_id": run.session_id,
        "status": run.status,
        "waiting_for": run.waiting_for,
        "input": text,
        "input_truncated": body is None and len(run.input_preview) >= INPUT_PREVIEW_CHARS,
        "output": run.output,
        "error": run.error,
        "steps": int(run.steps),
        "cancel_requested": bool(run.cancel_requested),
        "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "usage": usage_view(Usage.of(run)),
    }


def event_view(event: RunEvent) -> dict[str, Any]:
    return {"seq": int(event.seq), "type": event.event_type, "at": event.at.isoformat(), "data": event.data}


def usage_view(usage: Usage) -> dict[str, Any]:
    """A run's usage as the API shows it: money as decimal strings of dollars — ``cost_usd`` the
    model's, ``infra_cost_usd`` the modelled AWS cost of its steps so far."""
    return {**usage.tokens.view(), "cost_usd": f"{usage.cost_usd:.6f}", "tool_calls": usage.tool_calls,
            "agent_seconds": usage.agent_seconds, "infra_cost_usd": f"{usage.infra_cost_usd:.6f}"}


# --------------------------------------------------------------------------- the commit


@dataclass
class Change:
    """What a step writes, all at once."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    run_set: dict[str, Any] = field(default_factory=dict)  # attribute → value (None removes it); mirrored on the
    #   run in memory, so the step goes on without reading it back
    run_actions: list[Any] = field(default_factory=list)  # other updates of the run (then it is read back)
    run_condition: Any = None
    puts: list[BaseItem] = field(default_factory=list)  # created only if absent
    extra: list[Callable[[Any], None]] = field(default_factory=list)  # more writes on the transaction
    metered: dict[str, Usage] = field(default_factory=dict)  # ledger entry id → usage: counted once, on the
    #   run's totals and the workspace's counters
    entry_details: dict[str, dict[str, Any]] = field(default_factory=dict)  # ledger entry id → its step, model
    settles: tuple[Reservation | None, Usage] | None = None  # a model call's use replaces its reservation
    reserves: tuple[Reservation, TierLimits] | None = None  # the next model call's reservation (quota.reserve_in)
    step: StepMark | None = None  # the step this change completes (once: see StepMark)
    closes_infra: bool = False  # the run's end: its accrued infrastructure cost becomes its ``infra`` entry


def commit(services: Services, run: Run, change: Change, *, attempts: int = 5) -> Run:
    """Write ``change`` atomically; returns the run as it is after it (``run``
    itself, updated in memory, unless ``run_actions`` need a read). Absorbs
    concurrent appends (retrying with the new seq); raises RunConflict when
    the run's own condition or an item's absence no longer holds."""
    infra_micro = infra.take()  # what this invocation's infrastructure cost since its last commit
    if change.closes_infra:
        infra_micro += infra.end_of_run()
    for _ in range(attempts):
        at = services.now()
        seq = int(run.seq)
        run_usage = sum(change.metered.values(), Usage()) + Usage(infra_micro_usd=infra_micro)
        counted = run_usage
        if change.closes_infra:
            closing = Usage(infra_micro_usd=int(run.infra_micro_usd or 0) + infra_micro)
            counted = sum(change.metered.values(), Usage()) + closing  # the run's total infra, once
        # A session's run (or its delegated child): its events are the session's next ones too.
        cursor = session_events.counter(run.workspace_id, run.session_id) \
            if run.session_id and change.events else None
        session_writes = 0
        try:
            with transaction() as tx:
                if cursor is not None and run.session_id:
                    session_writes = session_events.write(
                        tx, run.workspace_id, run.session_id, cursor, run.id,
                        [(seq + offset, event_type, at, data)
                         for offset, (event_type, data) in enumerate(change.events, start=1)])
                for offset, (event_type, data) in enumerate(change.events, start=1):
                    event = RunEvent(*RunEvent.key(run.workspace_id, run.id, seq + offset), seq=seq + offset,
                                     event_type=event_type, at=at, data=data)
                    tx.save(event, condition=RunEvent.pk.does_not_exist())
                condition = Run.seq == seq
                if change.run_condition is not None:
                    condition &= change.run_condition
                run_set = dict(change.run_set)
                if change.step is not None:
                    run_set["step_mark"] = change.step.text()
                    condition &= (Run.step_mark.does_not_exist()
                                  | (Run.step_mark < StepMark.position(change.step.turn, change.step.kind)))
                sets = [_set_or_remove(getattr(Run, name), value) for name, value in run_set.items()]
                tx.update(run, actions=[Run.seq.set(seq + len(change.events)), Run.updated_at.set(at), *sets,
                                        *change.run_actions, *run_usage.add_actions(Run)], condition=condition)
                for item in change.puts:
                    tx.save(item, condition=type(item).pk.does_not_exist())
                for write in change.extra:
                    write(tx)
                # The model call it settles counts when it was made (its reservation's time: quota.counted_at).
                call, made_at = (change.settles[1], quota.counted_at(change.settles[0], at)) if change.settles \
                    else (Usage(), at)
                for entry, usage in change.metered.items():
                    ledger.put(tx, run.workspace_id, run.id, entry, usage, made_at if usage is call else at,
                               **change.entry_details.get(entry, {}))
                if change.closes_infra:
                    ledger.put(tx, run.workspace_id, run.id, ledger.INFRA, closing, at)
                counters.count(tx, run.workspace_id,
                               (counted.without_infra() if not change.closes_infra else counted) - call,
                               at, services.settings.usage_counter_shards, earlier=[(call, made_at)])
                if change.settles is not None:
                    quota.settle(tx, run.workspace_id, *change.settles, at)
                if change.reserves is not None:
                    quota.reserve_in(tx, run.workspace_id, *change.reserves)
        except TransactWriteError as exc:
            codes = _reason_codes(exc)
            if "ConditionalCheckFailed" not in codes:
                if "TransactionConflict" in codes:  # a concurrent transaction on one of the items: again
                    time.sleep(random.uniform(0.005, 0.03))  # nosec B311  # retry jitter, not a secret
                    continue
                infra.give_back(infra_micro)
                raise  # DynamoDB failed the write (not a refusal): the step fails, and is retried
            beyond = _failed_beyond_the_run(exc, len(change.events), skip=session_writes)
            if session_writes and session_events.refused(exc, session_writes) and not beyond:
                time.sleep(random.uniform(0.005, 0.03))  # nosec B311  # retry jitter, not a secret
                continue  # another writer took the session's next seqs: again after them
            fresh = load_run(run.workspace_id, run.id)
            if int(fresh.seq) != seq and not beyond:
                run = fresh  # someone appended meanwhile: try again after them
                continue
            infra.give_back(infra_micro)
            raise RunConflict(str(exc)) from exc
        if change.run_actions:
            return load_run(run.workspace_id, run.id)
        run.seq, run.updated_at = seq + len(change.events), at
        for name, value in run_set.items():
            setattr(run, name, value)
        for name, value in run_usage.view().items():
            if value and name in Run.get_attributes():
                setattr(run, name, int(getattr(run, name) or 0) + value)
        return run
    infra.give_back(infra_micro)
    raise RunConflict("the run kept changing")


def _set_or_remove(attribute: Any, value: Any) -> Action:
    action: Action = attribute.remove() if value is None else attribute.set(value)
    return action


def _reason_codes(exc: TransactWriteError) -> set[str]:
    reasons = getattr(exc, "cancellation_reasons", None) or []
    return {str(reason.code) for reason in reasons if reason is not None and reason.code not in ("None", None)}


def _failed_beyond_the_run(exc: TransactWriteError, event_count: int, skip: int = 0) -> bool:
    """Whether an item other than the events and the run refused the write (the first ``skip``
    writes, a session's copies of the events, are not looked at)."""
    reasons = getattr(exc, "cancellation_reasons", None) or []
    return any(reason is not None and getattr(reason, "code", "None") not in ("None", None)
               for reason in reasons[skip + event_count + 1:])


def iter_events(run: Run, after: int, limit: int) -> Iterable[RunEvent]:
    """The run's events after seq ``after`` (none past its last one: the query's
    bounds would invert once ``after + 1`` needs more than the key's 10 digits)."""
    if after >= int(run.seq):
        return []
    return RunEvent.query(
        Run.partition(run.workspace_id, run.id),
        RunEvent.sk.between(RunEvent.key(run.workspace_id, run.id, after + 1)[1],
                            RunEvent.key(run.workspace_id, run.id, LAST_SEQ)[1]),
        limit=limit,
        consistent_read=True,
    )
