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

A child run (delegation) uses its parent's slot: the parent waits while the
child works, so the child neither takes a slot nor counts as pending.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import TransactWriteError

from agenthq.errors import QuotaExceeded
from agenthq.runs.decisions import FINISH
from agenthq.store import transaction
from agenthq.store.items import QueuedRun, Run, RunSlots
from agenthq.tiers import TierLimits

if TYPE_CHECKING:
    from agenthq.services import Services

OWN, PARENT = "own", "parent"
START = "start"
MIN_QUEUE = 20


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


# --------------------------------------------------------------------------- start


def take_in(workspace_id: str, limits: TierLimits) -> Callable[[Any], None]:
    """A write for a transaction: one more running run, if a slot is free and
    nobody waits (the caller sets the run's ``slot`` in the same transaction)."""
    free = ((RunSlots.running.does_not_exist() | (RunSlots.running < limits.concurrent_runs))
            & (RunSlots.waiting.does_not_exist() | (RunSlots.waiting == 0)))
    slots = RunSlots(*RunSlots.key(workspace_id))
    return lambda tx: tx.update(slots, actions=[RunSlots.running.add(1)], condition=free)


def acquire(run: Run, limits: TierLimits) -> bool:
    """Take a slot for ``run`` if one is free and nobody waits; True if it holds one."""
    if run.slot is not None:
        return True
    try:
        with transaction() as tx:
            take_in(run.workspace_id, limits)(tx)
            tx.update(run, actions=[Run.slot.set(OWN)], condition=Run.slot.does_not_exist())
    except TransactWriteError:
        fresh = Run.get_or_none(*Run.key(run.workspace_id, run.id))
        return fresh is not None and fresh.slot is not None
    return True


def enqueue(run: Run, task_token: str, limits: TierLimits) -> bool:
    """Put ``run`` in the queue with its task token; False when a slot is free
    and nobody waits (the caller takes it instead)."""
    key = QueuedRun.key(run.workspace_id, run.id)
    if QueuedRun.get_or_none(*key) is not None:  # a retried queue step: the newest token is the one to answer
        QueuedRun(*key, run_id=run.id, task_token=task_token).save()
        return True
    busy = (RunSlots.running >= limits.concurrent_runs) | (RunSlots.waiting > 0)
    try:
        with transaction() as tx:
            tx.update(RunSlots(*RunSlots.key(run.workspace_id)), actions=[RunSlots.waiting.add(1)], condition=busy)
            tx.save(QueuedRun(*key, run_id=run.id, task_token=task_token), condition=QueuedRun.pk.does_not_exist())
    except TransactWriteError:
        if QueuedRun.get_or_none(*key) is not None:
            return True
        return False
    return True


# --------------------------------------------------------------------------- the end of a run


def on_end(run: Run) -> tuple[list[Any], str | None]:
    """What the end of ``run`` writes to the slots, in its ending transaction
    (``Change.extra``), and the task token of the queued run it hands its slot
    to (answer it with ``start`` once the end is committed)."""
    writes: list[Any] = []
    actions: list[Any] = []
    condition = None
    if run.slot != PARENT and not run.parent_run_id:  # launched runs count as pending, children do not
        actions.append(RunSlots.pending.add(-1))
    queued = QueuedRun.get_or_none(*QueuedRun.key(run.workspace_id, run.id))
    successor_token = None
    if queued is not None:  # it ends while waiting (a cancel): it leaves the queue
        writes.append(lambda tx: tx.delete(queued, condition=QueuedRun.pk.exists()))
        actions.append(RunSlots.waiting.add(-1))
    elif run.slot == OWN:
        oldest = next(iter(QueuedRun.query(QueuedRun.key(run.workspace_id, "")[0], limit=1, consistent_read=True)),
                      None)
        if oldest is None:
            actions.append(RunSlots.running.add(-1))
            condition = RunSlots.waiting.does_not_exist() | (RunSlots.waiting == 0)  # else one queued meanwhile
        else:  # the slot goes to the oldest waiting run: running stays, waiting shrinks
            successor = Run(*Run.key(run.workspace_id, oldest.run_id))
            writes.append(lambda tx: tx.delete(oldest, condition=QueuedRun.pk.exists()))
            writes.append(lambda tx: tx.update(successor, actions=[Run.slot.set(OWN)],
                                               condition=Run.slot.does_not_exist()))
            actions.append(RunSlots.waiting.add(-1))
            successor_token = oldest.task_token
    if actions:  # one update of the workspace's slots item (a transaction touches an item once)
        slots = RunSlots(*RunSlots.key(run.workspace_id))
        writes.append(lambda tx: tx.update(slots, actions=actions, condition=condition))
    return writes, successor_token


def leave_queue(services: Services, run: Run) -> None:
    """A queued run was cancelled: wake it so it ends (its end leaves the queue)."""
    queued = QueuedRun.get_or_none(*QueuedRun.key(run.workspace_id, run.id))
    if queued is not None:
        services.orchestrator.send_next(queued.task_token, FINISH)
