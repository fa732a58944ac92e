"""Offboarding: a workspace deleted by a job, not by one 29-second request.

``DELETE /workspaces/{wid}`` (the owner) and ``DELETE /admin/workspaces/{wid}``
(the operator) call :func:`start`. It marks the workspace deleting — from that
moment its routes answer 404 (``Workspace.load``) — records the job on the
workspace item (``Workspace.offboarding``) and starts an execution of the
offboarding state machine (statemachines/offboarding.asl.json) named after the
workspace and the attempt (:func:`job_name`); the request answers 202.

The state machine calls :func:`run_step` (functions/offboarding) for each step:

    Revoke ⟲ → CancelRuns (⟲ WaitForRuns) → DeleteItems ⟲ → Finish       (Catch → RecordFailure)

- ``revoke``: access ends first — API keys with their global lookups, login
  sessions with their global families, memberships, schedules (each deleted
  from EventBridge Scheduler, then from the table); the WebSocket connections
  they opened are closed; then the workspace's API
  Gateway key and, for an enterprise workspace, its own usage plan; then its
  MCP servers' header secrets (Secrets Manager);
- ``cancel_runs``: every run that has not ended is cancelled as
  ``POST …/cancel`` does (queued, running, waiting on a child, paused at a
  limit), and waited for, so no step of it writes after the deletion; runs
  still going after :data:`CANCEL_WAIT` have their executions stopped;
- ``delete``: every item of the workspace, page by page: the partitions the
  workspace owns (usage, quota, queue), each item of ``WS#<wid>`` with the
  partitions it owns (a run's events, conversation, ledger …), then the
  ``PAUSED`` markers of its runs;
- ``finish``: its entry in the operator's directory, last the workspace item.

A step works for at most one time slice (:data:`SLICE_SECONDS`, less when the
function's time is shorter) and answers ``{phase, cursor}``: where the state
machine goes next (the same step again when the slice ended first) and where
to go on from. Every step is idempotent — what is deleted is not found again —
so Step Functions may retry any of them. A step that still fails after the
retries ends the execution (``fail`` records why); repeating the DELETE then
starts the next attempt, which finishes what is left. While an execution
runs, repeating the DELETE starts nothing new (StartExecution with the same
name and input is idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import UpdateError

from agenthq import ids
from agenthq.adapters.stepfunctions import RUNNING, SUCCEEDED, Execution
from agenthq.live.connections import close_connections
from agenthq.observability import logger
from agenthq.runs.cancel import request_cancel
from agenthq.runs.statuses import ACTIVE
from agenthq.schedules.api import scheduler_name
from agenthq.store import BaseItem, get_many, global_scope, partition_page, tenant_scope
from agenthq.store.items import (
    ApiKey,
    ApiKeyLookup,
    OffboardingJob,
    PausedRun,
    Run,
    SessionFamily,
    Workspace,
    WorkspaceDirectoryEntry,
    WorkspaceSession,
)

if TYPE_CHECKING:
    from agenthq.services import Services

REVOKE, CANCEL_RUNS, WAIT_FOR_RUNS, DELETE, FINISH, DONE, FAILED = (
    "revoke", "cancel_runs", "wait_for_runs", "delete", "finish", "done", "failed")
#: How long the job waits for cancelled runs to end by themselves before it stops their executions.
CANCEL_WAIT = timedelta(minutes=15)
#: The most a step works before it hands back to the state machine, and what it leaves of the function's time.
SLICE_SECONDS = 60.0
MARGIN_SECONDS = 15.0
PAGE = 100
#: Sort-key prefixes of the items that give access to the workspace: keys, sessions, memberships.
ACCESS = ("APIKEY#", "SESSION#", "MEMBER#")
#: The workspace's schedules: each leaves EventBridge Scheduler, then the table, while access is revoked.
SCHEDULES = "SCHEDULE#"
MAX_ATTEMPTS_LISTED = 100


class OffboardingStepRejected(Exception):
    """A step that must not be retried: a malformed event, or a workspace not being offboarded."""


class _SliceOver(Exception):
    """The step's time slice ended: hand back to the state machine."""


Step = Callable[["Services", str, dict[str, Any], "TimeSlice"], dict[str, Any]]


def job_name(workspace_id: str, attempt: int) -> str:
    """The execution of the workspace's offboarding, attempt ``attempt`` (from 1)."""
    return f"offboarding-{workspace_id}-{attempt}"


# --------------------------------------------------------------------------- starting and watching


def start(services: Services, workspace_id: str, *, by: str) -> dict[str, Any]:
    """Start the workspace's offboarding, or make sure it goes on: a failed
    attempt is followed by the next, a running one is left alone. Returns the
    workspace as :func:`workspace_view` shows it; :class:`NotFound` once it is gone."""
    with tenant_scope(workspace_id):
        workspace = Workspace.get_or_404(*Workspace.key(workspace_id))
        if workspace.offboarding is None:
            job = OffboardingJob(status=RUNNING.lower(), attempt=1, started_at=services.now(), started_by=by,
                                 items_deleted=0)
            try:
                workspace.update(actions=[Workspace.deleting.set(True), Workspace.offboarding.set(job)],
                                 condition=Workspace.pk.exists() & Workspace.offboarding.does_not_exist())
                logger.info("offboarding started", extra={"workspace_id": workspace_id, "by": by})
            except UpdateError:  # another request started it (or it is gone)
                workspace = Workspace.get_or_404(*Workspace.key(workspace_id))
    return workspace_view(workspace_id, job_view(_keep_going(services, workspace)))


def _keep_going(services: Services, workspace: Workspace) -> Workspace:
    """Start the job's current attempt unless it runs; after an attempt that ended, the next one."""
    job = workspace.offboarding
    if job is None:  # the caller recorded it just before: an invariant, kept under python -O too
        raise ValueError(f"workspace {workspace.id} has no offboarding job")
    attempt = int(job.attempt)
    execution = services.offboarding_jobs.describe(job_name(workspace.id, attempt))
    if execution is not None and execution.status == RUNNING:
        return workspace
    if execution is not None:  # failed, timed out or stopped before it finished
        attempt += 1
        with tenant_scope(workspace.id):
            try:
                workspace.update(actions=[Workspace.job_field("attempt").set(attempt),
                                          Workspace.job_field("status").set(RUNNING.lower()),
                                          Workspace.job_field("error").remove()],
                                 condition=Workspace.job_field("attempt") == attempt - 1)
            except UpdateError:  # another request moved on to the next attempt (or the job finished)
                return Workspace.get_or_404(*Workspace.key(workspace.id))
        logger.info("offboarding resumed", extra={"workspace_id": workspace.id, "attempt": attempt,
                                                  "previous": execution.status})
    # The same name and input for the same attempt: a repeated start is StartExecution's idempotent case.
    services.offboarding_jobs.start(job_name(workspace.id, attempt),
                                    {"workspace_id": workspace.id, "started_at": job.started_at.isoformat()})
    return workspace


def workspace_view(workspace_id: str, job: dict[str, Any] | None, status: str = "offboarding") -> dict[str, Any]:
    """A workspace being offboarded (or offboarded), as the DELETE routes answer it."""
    return {"id": workspace_id, "status": status, "offboarding": job}


def job_view(workspace: Workspace) -> dict[str, Any] | None:
    """The workspace's offboarding while its workspace item exists (None if it is not being offboarded)."""
    job = workspace.offboarding
    if job is None:
        return None
    return {"status": job.status, "attempt": int(job.attempt), "started_at": job.started_at.isoformat(),
            "items_deleted": int(job.items_deleted), "finished_at": None, "error": job.error}


def ended_job(services: Services, workspace_id: str) -> dict[str, Any] | None:
    """The offboarding whose last step removed ``workspace_id``, read from its
    executions (Step Functions keeps them 90 days): ``finished``, or
    ``finishing`` in the moment between the workspace item's deletion and the
    execution's end. None if the workspace was never offboarded."""
    if not ids.is_id(workspace_id):
        return None
    executions: list[Execution] = []
    while len(executions) < MAX_ATTEMPTS_LISTED:
        execution = services.offboarding_jobs.describe(job_name(workspace_id, len(executions) + 1))
        if execution is None:
            break
        executions.append(execution)
    if not executions or executions[-1].status not in (SUCCEEDED, RUNNING):
        return None
    first, last = executions[0], executions[-1]
    result = (last.output or {}).get("result") or {}
    return {"status": "finished" if last.status == SUCCEEDED else "finishing", "attempt": len(executions),
            "started_at": str(first.input.get("started_at") or first.started_at.isoformat()),
            "items_deleted": int(result.get("items_deleted", 0)),
            "finished_at": last.stopped_at.isoformat() if last.stopped_at else None, "error": None}


# --------------------------------------------------------------------------- the job's steps


def run_step(services: Services, event: dict[str, Any], time_left_seconds: Callable[[], float]) -> dict[str, Any]:
    """One step of the offboarding state machine: ``{phase, cursor}`` (``finish``: also ``items_deleted``)."""
    step, workspace_id = event.get("step"), event.get("workspace_id")
    if step not in STEPS or not isinstance(workspace_id, str) or not ids.is_id(workspace_id):
        raise OffboardingStepRejected(f"malformed offboarding step: step={step!r}")
    logger.append_keys(workspace_id=workspace_id, offboarding_step=step)
    seconds = min(SLICE_SECONDS, max(1.0, time_left_seconds() - MARGIN_SECONDS))
    return STEPS[step](services, workspace_id, event, TimeSlice(services.clock, services.clock() + seconds))


class TimeSlice:
    """The time a step may work: over at ``until`` — but never before the step
    has deleted something, so that every slice makes progress."""

    def __init__(self, clock: Callable[[], float], until: float) -> None:
        self.clock = clock
        self.until = until
        self.deleted = 0

    def check(self) -> None:
        """Raise :class:`_SliceOver` when the slice is over: the step hands back."""
        if self.deleted and self.clock() >= self.until:
            raise _SliceOver()


def _progress(phase: str, cursor: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"phase": phase, "cursor": cursor}


def _offboarded_workspace(workspace_id: str) -> Workspace | None:
    """The workspace being offboarded; None once it is gone. A workspace that is not being
    offboarded is refused: the job deletes only what a DELETE asked to delete."""
    with tenant_scope(workspace_id):
        workspace = Workspace.get_or_none(*Workspace.key(workspace_id))
    if workspace is not None and not workspace.deleting:
        raise OffboardingStepRejected(f"workspace {workspace_id} is not being offboarded")
    return workspace


def _count(workspace_id: str, deleted: int) -> None:
    """Add to the job's ``items_deleted`` (a retried page may be counted short, never twice)."""
    if not deleted:
        return
    counter = Workspace.job_field("items_deleted")
    with tenant_scope(workspace_id):
        try:
            Workspace(*Workspace.key(workspace_id)).update(actions=[counter.set(counter + deleted)],
                                                           condition=Workspace.offboarding.exists())
        except UpdateError:
            pass  # the workspace item is gone: the job is finishing


def revoke(services: Services, workspace_id: str, event: dict[str, Any], time: TimeSlice) -> dict[str, Any]:
    """API keys (lookup first), sessions (family first) and memberships; then the gateway key and own plan."""
    workspace = _offboarded_workspace(workspace_id)
    if workspace is None:
        return _progress(FINISH)
    try:
        for prefix in ACCESS:
            while page := _page(workspace_id, workspace.pk, prefix):
                for item in page:
                    time.check()
                    time.deleted += _revoke(workspace_id, item)
        while page := _page(workspace_id, workspace.pk, SCHEDULES):  # they launch as the workspace
            for item in page:
                time.check()
                services.scheduler.delete(scheduler_name(workspace_id, item.id))  # type: ignore[attr-defined]
                with tenant_scope(workspace_id):
                    item.delete()
                time.deleted += 1
    except _SliceOver:
        return _progress(REVOKE)
    finally:
        _count(workspace_id, time.deleted)
    close_connections(services, workspace_id, everyone=True)  # what they opened ends with the access
    if workspace.gateway_key_id:
        services.gateway_keys.delete_key(workspace.gateway_key_id)
    if workspace.gateway_plan_id:
        services.gateway_keys.delete_plan(workspace.gateway_plan_id)
    # Its MCP servers' header secrets (credentials to the tenant's own systems), found by name: a secret
    # whose server was never stored (a registration that failed midway) goes too.
    secrets = services.header_vault.forget_workspace(workspace_id)
    logger.info("offboarding: access revoked", extra={"mcp_secrets_deleted": secrets})
    return _progress(CANCEL_RUNS)


def _page(workspace_id: str, partition: str, prefix: str) -> list[BaseItem]:
    with tenant_scope(workspace_id):
        return list(BaseItem.query(partition, BaseItem.sk.startswith(prefix), limit=PAGE, consistent_read=True))


def _revoke(workspace_id: str, item: BaseItem) -> int:
    """End one access item: its global counterpart first (what the authorizer reads), then the item."""
    deleted = 1
    with global_scope():
        if isinstance(item, ApiKey):
            ApiKeyLookup(*ApiKeyLookup.key(item.secret_hash)).delete()
            deleted += 1
        elif isinstance(item, WorkspaceSession):  # its refresh tokens then find no family (and expire by TTL)
            SessionFamily(*SessionFamily.key(item.family_id)).delete()
            deleted += 1
    with tenant_scope(workspace_id):
        item.delete()
    return deleted


def cancel_runs(services: Services, workspace_id: str, event: dict[str, Any], time: TimeSlice) -> dict[str, Any]:
    """Cancel every run that has not ended, then wait (the state machine's WaitForRuns) until none is left."""
    workspace = _offboarded_workspace(workspace_id)
    if workspace is None:
        return _progress(FINISH)
    cursor = event.get("cursor") or {}
    now = services.now()
    since = datetime.fromisoformat(cursor["since"]) if cursor.get("since") else now
    with tenant_scope(workspace_id):
        if "runs" in cursor:  # later rounds: only the runs that had not ended
            runs = [r for r in get_many(*(Run.key(workspace_id, rid) for rid in cursor["runs"])) if isinstance(r, Run)]
        else:
            runs = list(Run.query(workspace.pk, Run.sk.startswith("RUN#"), consistent_read=True,
                                  filter_condition=Run.status.is_in(*ACTIVE)))
        active = [r for r in runs if r.status in ACTIVE]
        for run in active:
            if not run.cancel_requested:
                request_cancel(services, run)
    if not active:
        logger.info("offboarding: no run left")
        return _progress(DELETE)
    if now - since >= CANCEL_WAIT:
        for run in active:  # a task under way still ends by itself; its writes then find no run (conditional)
            services.orchestrator.stop(run.id, "The workspace is being offboarded.")
        logger.warning("offboarding: runs stopped", extra={"runs": [r.id for r in active]})
        return _progress(DELETE)
    return _progress(WAIT_FOR_RUNS, {"since": since.isoformat(), "runs": [r.id for r in active]})


def delete(services: Services, workspace_id: str, event: dict[str, Any], time: TimeSlice) -> dict[str, Any]:
    """Every item of the workspace but the workspace item, page by page: the partition
    ``WS#<wid>`` (each item after what it owns), then the partitions the workspace owns,
    then its runs' PAUSED markers. The cursor says where a slice stopped: ``partition``
    (0 is ``WS#<wid>``, then :meth:`Workspace.owned_partitions`) and ``after`` (a sort key)."""
    workspace = _offboarded_workspace(workspace_id)
    if workspace is None:
        return _progress(FINISH)
    partitions = [workspace.pk, *workspace.owned_partitions()]
    cursor = event.get("cursor") or {}
    index, after = int(cursor.get("partition", 0)), cursor.get("after")
    try:
        while index < len(partitions):
            more = True
            while more:
                time.check()
                with tenant_scope(workspace_id):
                    page, more = partition_page(partitions[index], after, PAGE)
                items = [i for i in page if not isinstance(i, Workspace)]  # the workspace item goes last (finish)
                _delete_owned(workspace_id, items, time)  # what an item owns goes before it
                time.deleted += _delete_items(workspace_id, items)
                _delete_owned(workspace_id, items, time)  # what a run's last step wrote meanwhile (nothing after)
                after = page[-1].sk if page else after
            index, after = index + 1, None
        time.deleted += _delete_paused_markers(workspace_id)
    except _SliceOver:
        return _progress(DELETE, {"partition": index, "after": after})
    finally:
        _count(workspace_id, time.deleted)
    with tenant_scope(workspace_id):
        job = Workspace.get(*Workspace.key(workspace_id)).offboarding
    logger.info("offboarding: items deleted")
    return _progress(FINISH, {"items_deleted": int(job.items_deleted) if job else 0})


def _delete_owned(workspace_id: str, items: Iterable[BaseItem], time: TimeSlice) -> None:
    """Every item of the partitions ``items`` own (a run's events, conversation, ledger …)."""
    for item in items:
        for partition in item.owned_partitions():
            more = True
            while more:
                time.check()
                with tenant_scope(workspace_id):
                    page, more = partition_page(partition, limit=PAGE)
                time.deleted += _delete_items(workspace_id, page)


def _delete_items(workspace_id: str, items: Iterable[BaseItem]) -> int:
    keys = [(i.pk, i.sk) for i in items]
    if keys:
        with tenant_scope(workspace_id), BaseItem.batch_write() as batch:
            for pk, sk in keys:
                batch.delete(BaseItem(pk, sk))
    return len(keys)


def _delete_paused_markers(workspace_id: str) -> int:
    """The workspace's runs in the global PAUSED list (normally none: cancelled runs leave it)."""
    with global_scope():
        markers = list(PausedRun.query("PAUSED", PausedRun.sk.startswith(f"WS#{workspace_id}#RUN#"),
                                       consistent_read=True))
        for marker in markers:
            marker.delete()
    return len(markers)


def finish(services: Services, workspace_id: str, event: dict[str, Any], time: TimeSlice) -> dict[str, Any]:
    """The directory entry, then the workspace item: nothing of the workspace is left."""
    _offboarded_workspace(workspace_id)
    with global_scope():
        WorkspaceDirectoryEntry(*WorkspaceDirectoryEntry.key(workspace_id)).delete()
    with tenant_scope(workspace_id):
        Workspace(*Workspace.key(workspace_id)).delete()
    items_deleted = int((event.get("cursor") or {}).get("items_deleted", 0)) + 2
    logger.info("workspace offboarded", extra={"items_deleted": items_deleted})
    return {**_progress(DONE), "items_deleted": items_deleted}


def fail(services: Services, workspace_id: str, event: dict[str, Any], time: TimeSlice) -> dict[str, Any]:
    """The execution failed (a step kept failing): record why; a repeated DELETE starts the next attempt."""
    error = event.get("error") or {}
    reason = str(error.get("Error") or "unknown")[:200]
    with tenant_scope(workspace_id):
        try:
            Workspace(*Workspace.key(workspace_id)).update(
                actions=[Workspace.job_field("status").set(FAILED), Workspace.job_field("error").set(reason)],
                condition=Workspace.offboarding.exists())
        except UpdateError:
            pass  # already gone
    logger.error("offboarding failed", extra={"error": reason, "cause": str(error.get("Cause", ""))[:2000]})
    return _progress(FAILED)


STEPS: dict[str, Step] = {REVOKE: revoke, CANCEL_RUNS: cancel_runs, DELETE: delete, FINISH: finish, "fail": fail}
