"""Concurrent runs (DESIGN §5): at most the tier's ``concurrent_runs`` of a
workspace run at once; the others wait as ``queued`` and start first-in,
first-out when a slot frees. The queue is bounded: a launch past
``concurrent_runs + queue_bound(...)`` runs not yet ended is a 429.

One ``RunSlots`` item per workspace counts, under conditional writes:
``pending`` (launched, not ended), ``running`` (holding a slot), ``waiting``
(queued). The Start step takes a slot (:func:`acquire`) only when one is free
*and nobody waits*; otherwise the run waits in the queue (:func:`enqueue`,
with the task token of the state machine's WaitForSlot state). A run that ends
hands its slot straight to the oldest waiting run (:func:`on_end`, written in
the same transaction as the run's end, so a slot never leaks: failures,
cancels, timeouts and crashed steps all end through it), which then starts.

Every grant of a slot — a take at Start, a hand-over at a run's end, a
queued run started by :func:`fill` — compares ``running`` with the limit, on
the condition that the limit it compared with is still the workspace's (the
tier change writes it on the slots item, ``RunSlots.concurrent_runs``, in its
own transaction): so after a downgrade no run starts until ``running`` is
below the new limit (the runs already running finish), and after a raise
:func:`fill` starts queued runs up to it at once.

A child run (delegation) uses its parent's slot: the parent waits while the
child works, so the child neither takes a slot nor counts as pending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import PutError, TransactWriteError

from agenthq.errors import QuotaExceeded
from agenthq.observability import logger
from agenthq.store import transaction
from agenthq.store.items import QueuedRun, Run, RunSlots, Workspace
from agenthq.tiers import TierLimits, limits_for

if TYPE_CHECKING:
    from agenthq.services import Services

OWN, PARENT = "own", "parent"
START = "start"
MIN_QUEUE = 20
FILL_ATTEMPTS = 5  # conflicts with concurrent grants that :func:`fill` absorbs beyond one per slot


def queue_bound(limits: TierLimits) -> int:
    """How many runs may wait for a slot: four times the concurrency, at least 20."""
    return max(MIN_QUEUE, 4 * limits.concurrent_runs)


# --------------------------------------------------------------------------- launch


def count_pending(tx: Any, workspace_id: str, limits: TierLimits) -> None:
    """In the launch's transaction: one more pending run, if the queue has room."""
    most = limits.concurrent_runs + queue_bound(limits)
    if limits.concurrent_runs <= 0:
        raise queue_full(limits)
    tx.update(RunSlots(*RunSlots.key(workspace_id)), actions=[RunSlots.pending.add(1)],
              condition=RunSlots.pending.does_not_exist() | (RunSlots.pending < most))


def is_full(workspace_id: str, limits: TierLimits) -> bool:
    slots = RunSlots.get_or_none(*RunSlots.key(workspace_id))
    return slots is not None and int(slots.pending) >= limits.concurrent_runs + queue_bound(limits)


def is_free(workspace_id: str, limits: TierLimits) -> bool:
    """Whether a slot is free and nobody waits for one (as :func:`take_in` requires), now."""
    slots = RunSlots.get_or_none(*RunSlots.key(workspace_id))
    return slots is None or (int(slots.running or 0) < limits.concurrent_runs and not int(slots.waiting or 0))


def queue_full(limits: TierLimits) -> QuotaExceeded:
    return QuotaExceeded(f"Your plan runs {limits.concurrent_runs} at once and queues {queue_bound(limits)} more; "
                         "wait for a run to end.", retry_after=30,
                         details=[{"field": "concurrent_runs", "message": f"limit is {limits.concurrent_runs}"}])


# --------------------------------------------------------------------------- the limit a grant compared with


def limit_holds(limits: TierLimits) -> Any:
    """A condition on the slots item: ``limits.concurrent_runs`` is still the
    workspace's limit (no tier change has set another since it was read)."""
    return (RunSlots.concurrent_runs.does_not_exist()
            | (RunSlots.concurrent_runs == limits.concurrent_runs))


def current_limits(workspace_id: str) -> TierLimits | None:
    """The workspace's limits now, read consistently (also while it is being
    offboarded; None once it is gone)."""
    workspace = Workspace.get_or_none(*Workspace.key(workspace_id))
    return None if workspace is None else limits_for(workspace.tier, workspace.limit_overrides)


def set_limit(tx: Any, workspace_id: str, limits: TierLimits) -> None:
    """In a tier change's transaction: the slots' limit is the new one from
    then on (grants that compared with the old one fail their condition)."""
    tx.update(RunSlots(*RunSlots.key(workspace_id)),
              actions=[RunSlots.concurrent_runs.set(limits.concurrent_runs)])


def _free(limits: TierLimits) -> Any:
    return RunSlots.running.does_not_exist() | (RunSlots.running < limits.concurrent_runs)


# --------------------------------------------------------------------------- start


def take_in(workspace_id: str, limits: TierLimits) -> Callable[[Any], None]:
    """A write for a transaction: one more running run, if a slot is free and
    nobody waits (the caller sets the run's ``slot`` in the same transaction)."""
    free = _free(limits) & (RunSlots.waiting.does_not_exist() | (RunSlots.waiting == 0)) & limit_holds(limits)
    slots = RunSlots(*RunSlots.key(workspace_id))
    return lambda tx: tx.update(slots, actions=[RunSlots.running.add(1)], condition=free)


def acquire(run: Run, limits: TierLimits) -> bool:
    """Take a slot for the queued ``run`` if one is free and nobody waits; True if it holds one."""
    if run.slot is not None:
        return True
    try:
        with transaction() as tx:
            take_in(run.workspace_id, limits)(tx)
            tx.update(run, actions=[Run.slot.set(OWN)],
                      condition=Run.slot.does_not_exist() & (Run.status == "queued"))
    except TransactWriteError:
        fresh = Run.get_or_none(*Run.key(run.workspace_id, run.id))
        return fresh is not None and fresh.slot is not None
    return True


def enqueue(run: Run, task_token: str, limits: TierLimits) -> bool:
    """Put the queued ``run`` in the queue with its task token; False when it
    may not wait there (a slot is free and nobody waits: the caller takes it;
    or the run holds a slot, was cancelled or ended meanwhile: the caller
    reads it again)."""
    key = QueuedRun.key(run.workspace_id, run.id)
    if QueuedRun.get_or_none(*key) is not None:  # a retried queue step: the newest token is the one to answer
        try:
            QueuedRun(*key, run_id=run.id, task_token=task_token).save(condition=QueuedRun.pk.exists())
            return True
        except PutError:  # it left the queue meanwhile (a slot was handed to it, or it ended)
            return False
    busy = (RunSlots.running >= limits.concurrent_runs) | (RunSlots.waiting > 0)
    try:
        with transaction() as tx:
            tx.update(RunSlots(*RunSlots.key(run.workspace_id)), actions=[RunSlots.waiting.add(1)],
                      condition=busy & limit_holds(limits))
            tx.save(QueuedRun(*key, run_id=run.id, task_token=task_token), condition=QueuedRun.pk.does_not_exist())
            # Only a run that waits for a slot: not one handed a slot meanwhile (by a hand-over that
            # answered an earlier attempt's token), nor one cancelled (its end would not see this entry).
            tx.condition_check(Run, *Run.key(run.workspace_id, run.id),
                               condition=(Run.status == "queued") & Run.slot.does_not_exist()
                               & (Run.cancel_requested == False))  # noqa: E712 - a DynamoDB condition
    except TransactWriteError:
        found = QueuedRun.get_or_none(*key)
        return found is not None and found.task_token == task_token
    return True


# --------------------------------------------------------------------------- the end of a run


@dataclass
class SlotRelease:
    """What the end of a run writes to the slots, in its ending transaction."""

    writes: list[Any] = field(default_factory=list)  # more writes for the transaction (``Change.extra``)
    run_condition: Any = None  # on the ending run: its slot is still the one this was decided from
    successor_token: str | None = None  # the queued run handed this run's slot: answer ``start`` after the end
    own_token: str | None = None  # the ending run's own WaitForSlot task (it ends while queued): answer ``finish``


def on_end(run: Run) -> SlotRelease:
    """What the end of ``run`` writes to the slots. A run that held a slot
    hands it to the oldest waiting run — only if ``running`` is within the
    current limit (after a downgrade the slot is given back instead); every
    write is conditioned on what it was decided from (the run's slot, the
    queue entry's token, the limit), so a concurrent hand-over or queue step
    makes the end decide again."""
    release = SlotRelease(run_condition=Run.slot.does_not_exist() if run.slot is None else Run.slot == run.slot)
    actions: list[Any] = []
    condition = None
    if run.slot != PARENT and not run.parent_run_id:  # launched runs count as pending, children do not
        actions.append(RunSlots.pending.add(-1))
    queued = QueuedRun.get_or_none(*QueuedRun.key(run.workspace_id, run.id))
    if queued is not None:  # it ends while waiting (a cancel): it leaves the queue
        release.writes.append(lambda tx: tx.delete(queued, condition=QueuedRun.task_token == queued.task_token))
        actions.append(RunSlots.waiting.add(-1))
        release.own_token = queued.task_token
    elif run.slot == OWN:
        slots = RunSlots.get_or_none(*RunSlots.key(run.workspace_id))
        running = int(slots.running or 0) if slots is not None else 0
        oldest = next(iter(QueuedRun.query(QueuedRun.key(run.workspace_id, "")[0], limit=1, consistent_read=True)),
                      None)
        limits = current_limits(run.workspace_id) if oldest is not None else None
        if oldest is None or limits is None:
            actions.append(RunSlots.running.add(-1))
            condition = RunSlots.waiting.does_not_exist() | (RunSlots.waiting == 0)  # else one queued meanwhile
            if limits is None and oldest is not None:  # its workspace is gone: nothing starts in it
                condition = None
        elif running > limits.concurrent_runs:  # over a lowered limit: the slot is given back, nobody starts
            actions.append(RunSlots.running.add(-1))
            condition = (RunSlots.running > limits.concurrent_runs) & limit_holds(limits)
        else:  # the slot goes to the oldest waiting run: running stays, waiting shrinks
            release.writes += _hand_over(run.workspace_id, oldest)
            actions.append(RunSlots.waiting.add(-1))
            condition = (RunSlots.running <= limits.concurrent_runs) & limit_holds(limits)
            release.successor_token = oldest.task_token
    elif run.status == "queued":  # not in the queue when read: it must not have entered it since
        key = QueuedRun.key(run.workspace_id, run.id)
        release.writes.append(lambda tx: tx.condition_check(QueuedRun, *key, condition=QueuedRun.pk.does_not_exist()))
    if actions:  # one update of the workspace's slots item (a transaction touches an item once)
        slots_item = RunSlots(*RunSlots.key(run.workspace_id))
        release.writes.append(lambda tx: tx.update(slots_item, actions=actions, condition=condition))
    return release


def _hand_over(workspace_id: str, queued: QueuedRun) -> list[Callable[[Any], None]]:
    """The writes that give ``queued`` a slot: out of the queue (with the token
    read, so a retried queue step's newer token is not lost), its slot set."""
    successor = Run(*Run.key(workspace_id, queued.run_id))
    return [lambda tx: tx.delete(queued, condition=QueuedRun.task_token == queued.task_token),
            lambda tx: tx.update(successor, actions=[Run.slot.set(OWN)],
                                 condition=Run.slot.does_not_exist() & (Run.status == "queued"))]


# --------------------------------------------------------------------------- a raised limit


def fill(services: Services, workspace_id: str, limits: TierLimits) -> int:
    """Start queued runs, oldest first, while ``running`` is below the limit
    (after a tier raise: the queue does not wait for a run to end). Returns
    how many it started; idempotent."""
    started = 0
    for _ in range(limits.concurrent_runs + FILL_ATTEMPTS):
        slots = RunSlots.get_or_none(*RunSlots.key(workspace_id))
        if slots is None or int(slots.running or 0) >= limits.concurrent_runs or int(slots.waiting or 0) <= 0:
            break
        oldest = next(iter(QueuedRun.query(QueuedRun.key(workspace_id, "")[0], limit=1, consistent_read=True)),
                      None)
        if oldest is None:
            break
        try:
            with transaction() as tx:
                tx.update(RunSlots(*RunSlots.key(workspace_id)),
                          actions=[RunSlots.running.add(1), RunSlots.waiting.add(-1)],
                          condition=_free(limits) & limit_holds(limits))
                for write in _hand_over(workspace_id, oldest):
                    write(tx)
        except TransactWriteError:
            continue  # a concurrent grant or end: read again
        if not services.orchestrator.send_next(oldest.task_token, START):
            logger.info("task token no longer valid", extra={"run_id": oldest.run_id})
        started += 1
    return started
