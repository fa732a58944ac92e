"""Runs paused at a limit: pausing, resuming, and the period reset.

A think step that cannot reserve its model call within the month's tokens or
budget records the limit (``pause_reason``) and the state machine's Paused
state hands its task token to the ``pause`` step, which marks the run paused
(:func:`mark_paused`). A run resumes (:func:`resume`) when its limit has room
again: on ``POST …/resume``, at the period reset (the scheduled
:func:`resume_paused`), and when the operator raises the tier. Paused time
counts neither against the run's timeout (the deadline moves by it) nor as
agent time. A run paused for more than :data:`MAX_PAUSE` is cancelled.

Paused runs are also listed under the global ``PAUSED`` partition
(``PausedRun``), so the schedule finds them with a Query, not a Scan.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from agenthq.errors import Conflict, NotFound
from agenthq.observability import logger
from agenthq.runs.decisions import FINISH, THINK
from agenthq.runs.records import Change, RunConflict, commit
from agenthq.store import global_scope, tenant_scope
from agenthq.store.items import PausedRun, Run
from agenthq.usage import quota

if TYPE_CHECKING:
    from agenthq.services import Services

MAX_PAUSE = timedelta(days=7)
LIMIT_NAMES = {quota.TOKENS: "tokens per month", quota.BUDGET: "model budget per month"}


def mark_paused(services: Services, run: Run, task_token: str) -> bool:
    """The pause step: the run is paused at its limit and keeps the task token —
    unless a cancel was recorded meanwhile (False: the caller ends the run; a
    cancel recorded after this reads the run paused, and answers the token)."""
    reason = run.pause_reason or quota.BUDGET
    at = services.now()
    with global_scope():
        PausedRun(*PausedRun.key(run.workspace_id, run.id), workspace_id=run.workspace_id, run_id=run.id,
                  reason=reason, paused_at=at).save()
    first = run.status != "paused"
    try:
        run = commit(services, run, Change(
            events=[("run.paused", {"reason": reason, "limit": LIMIT_NAMES.get(reason, reason)})] if first else [],
            run_actions=[Run.status.set("paused"), Run.task_token.set(task_token),
                         *([Run.paused_at.set(at)] if first else [])],
            run_condition=Run.status.is_in("running", "paused")
            & (Run.cancel_requested == False)))  # noqa: E712 - a DynamoDB condition, not a comparison
    except RunConflict:  # cancelled, or ended, meanwhile
        forget(run.workspace_id, run.id)
        fresh = Run.get_or_none(*Run.key(run.workspace_id, run.id))
        if fresh is not None and fresh.status in ("running", "paused") and not fresh.cancel_requested:
            raise
        return False
    # A tier raise (or the period reset) between the think step's pause decision and now found nothing
    # paused to resume, and nothing else would: where the month has room now, the run resumes at once.
    try:
        resume(services, run, by="limit")
    except Conflict:
        pass  # still used up: it waits for a resume
    return True


def resume(services: Services, run: Run, by: str) -> Run:
    """Resume the paused ``run`` if its limit has room now; :class:`Conflict`
    (409) says why not. The same turn thinks again."""
    if run.status != "paused" or not run.task_token:
        raise Conflict(f"Only a paused run can be resumed; this one is {run.status}.")
    at = services.now()
    reason = run.pause_reason or quota.BUDGET
    hold = quota.Hold(**(run.pause_hold or {"tokens": 0, "micro_usd": 0}))
    if not quota.has_room(run.workspace_id, hold, quota.workspace_limits(run.workspace_id), at):
        raise Conflict(f"The workspace's {LIMIT_NAMES.get(reason, reason)} is still used up; the run resumes "
                       "by itself when the period resets or the plan is raised.",
                       details=[{"field": "reason", "message": reason}])
    paused_for = max(timedelta(0), at - (run.paused_at or at))
    token = run.task_token
    try:
        run = commit(services, run, Change(
            events=[("run.resumed", {"by": by, "paused_seconds": int(paused_for.total_seconds())})],
            run_actions=[Run.status.set("running"), Run.task_token.remove(), Run.pause_reason.remove(),
                         Run.pause_hold.remove(),
                         Run.paused_at.remove(), Run.deadline.set(run.deadline + paused_for),
                         Run.paused_seconds.add(int(paused_for.total_seconds()))],
            run_condition=Run.status == "paused"))
    except RunConflict:
        raise Conflict("The run changed meanwhile; it is no longer paused.") from None
    forget(run.workspace_id, run.id)
    services.orchestrator.send_next(token, THINK)
    return run


def resume_paused(services: Services, workspace_id: str | None = None) -> dict[str, int]:
    """Resume every paused run (of one workspace, or all) whose limit has room
    now, and cancel those paused longer than :data:`MAX_PAUSE`. What the period
    reset schedule and a tier raise run."""
    prefix = f"WS#{workspace_id}#RUN#" if workspace_id else "WS#"
    with global_scope():
        markers = list(PausedRun.query("PAUSED", PausedRun.sk.startswith(prefix), consistent_read=True))
    done = {"resumed": 0, "cancelled": 0, "still_paused": 0}
    for marker in markers:
        with tenant_scope(marker.workspace_id):
            run = Run.get_or_none(*Run.key(marker.workspace_id, marker.run_id))
            if run is None or run.status != "paused":
                forget(marker.workspace_id, marker.run_id)
                continue
            if services.now() - (run.paused_at or services.now()) > MAX_PAUSE:
                _cancel_long_pause(services, run)
                done["cancelled"] += 1
                continue
            try:
                resume(services, run, by="schedule" if workspace_id is None else "tier_change")
                done["resumed"] += 1
            except Conflict:
                done["still_paused"] += 1
            except NotFound:  # its workspace is being offboarded: the job cancels its runs
                done["still_paused"] += 1
    logger.info("paused runs checked", extra=done)
    return done


def _cancel_long_pause(services: Services, run: Run) -> None:
    outcome = {"status": "cancelled", "reason": "paused_too_long",
               "message": f"The run was paused at a limit for more than {MAX_PAUSE.days} days."}
    try:
        run = commit(services, run, Change(run_actions=[Run.cancel_requested.set(True), Run.outcome.set(outcome)],
                                           run_condition=Run.status == "paused"))
    except RunConflict:
        return
    if run.task_token:
        services.orchestrator.send_next(run.task_token, FINISH)
    forget(run.workspace_id, run.id)


def forget(workspace_id: str, run_id: str) -> None:
    """Drop the run's PAUSED marker (it is no longer paused)."""
    with global_scope():
        PausedRun(*PausedRun.key(workspace_id, run_id)).delete()
