"""A schedule's fire: EventBridge Scheduler invokes the fire function with
``{workspace_id, schedule_id, scheduled_time}``, and the run is launched here.

- The run goes through the launch path of every run (``agenthq.runs.api.launch_run``,
  which writes it with ``agenthq.runs.launch``), as the workspace (a principal of
  kind ``schedule`` with ``runs:write``, never as the person who made the
  schedule), with ``schedule:<schedule id>:<fire time>`` as its Idempotency-Key:
  a fire Scheduler delivers again launches nothing new.
- A launch a limit refuses (runs per day, the queue of concurrent runs, the
  plan …: any 4xx of the launch; or the schedule itself, when the tier no
  longer allows it after a downgrade: :func:`past_the_tier`) is recorded on the schedule as
  ``last_fire: {at, status: "skipped", reason}`` and alerted once per schedule,
  limit and day (``agenthq.usage.alerts.skipped_fire``); the invocation
  succeeds, so Scheduler does not retry it into the limit, and a fire delivered
  again after it was skipped is skipped again without another launch.
- A failure that is not the request's (503: Step Functions unreachable …) is
  raised: Scheduler redelivers (for up to an hour), and the key makes that safe.
- A fire for a schedule that is gone or disabled, or a workspace being deleted,
  launches nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import UpdateError

from agenthq import ids
from agenthq.context import Principal, PrincipalKind, Scope
from agenthq.errors import AppError, NotFound, PlanLimit
from agenthq.observability import logger
from agenthq.runs import api as runs_api
from agenthq.schedules import api as schedules_api
from agenthq.sessions import api as sessions_api
from agenthq.store import tenant_scope
from agenthq.store.items import Schedule, Workspace
from agenthq.tiers import TierLimits, limits_for
from agenthq.usage import alerts, counters, quota

if TYPE_CHECKING:
    from agenthq.services import Services

LAUNCHED, SKIPPED, IGNORED = "launched", "skipped", "ignored"


def idempotency_key(schedule_id: str, at: datetime) -> str:
    return f"schedule:{schedule_id}:{at.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def schedule_principal(workspace_id: str, schedule_id: str) -> Principal:
    """Who a fire launches as: the workspace, through this schedule (what a run's ``created_by`` shows)."""
    return Principal(workspace_id=workspace_id, subject=f"schedule:{schedule_id}", kind=PrincipalKind.schedule,
                     scopes=frozenset({Scope.runs_read, Scope.runs_write}))


def fire(services: Services, event: dict[str, Any]) -> dict[str, Any]:
    """Launch the run of one fire (see the module); returns what happened, for the logs."""
    workspace_id, schedule_id = str(event.get("workspace_id", "")), str(event.get("schedule_id", ""))
    if not (ids.is_id(workspace_id) and ids.is_id(schedule_id)):
        logger.error("a schedule fire without valid ids", extra={"fire": str(event)[:500]})
        return {"status": IGNORED}
    at = _fire_time(event.get("scheduled_time"), services)
    with tenant_scope(workspace_id):
        try:
            workspace = Workspace.load(workspace_id)
        except NotFound:
            return {"status": IGNORED}
        schedule = Schedule.get_or_none(*Schedule.key(workspace_id, schedule_id), consistent_read=True)
        if schedule is None or not schedule.enabled:
            return {"status": IGNORED}
        if schedule.last_fire_at == at and schedule.last_fire_status == SKIPPED:
            return {"status": SKIPPED, "reason": schedule.last_fire_reason}  # never retried into the limit
        refusal = past_the_tier(schedule, limits_for(workspace.tier, workspace.limit_overrides))
    try:
        if refusal is not None:
            raise refusal
        run = launch(services, schedule, idempotency_key(schedule_id, at))
    except AppError as exc:
        if exc.status >= 500:
            raise
        _skipped(services, schedule, at, exc)
        return {"status": SKIPPED, "reason": exc.code}
    _record(schedule, at, LAUNCHED, run_id=run["id"])
    return {"status": LAUNCHED, "run_id": run["id"]}


def past_the_tier(schedule: Schedule, limits: TierLimits) -> PlanLimit | None:
    """A schedule the tier no longer allows (it changed since: a downgrade, an override removed) fires no
    more: one whose fires come closer than the tier's shortest interval, or one past its ``schedules``
    (the oldest are kept)."""
    gap = int(schedule.shortest_gap_seconds) if schedule.shortest_gap_seconds is not None else None
    too_often = schedules_api.too_frequent(gap, limits)
    if too_often is not None:
        return PlanLimit(f"{too_often}; change the schedule's cron.",
                         details=[{"field": "schedule_min_interval_seconds",
                                   "message": f"limit is {limits.schedule_min_interval_seconds}"}])
    if not schedules_api.within_count(schedule.workspace_id, schedule.id, limits):
        noun = "schedule" if limits.schedules == 1 else "schedules"
        return PlanLimit(f"Your plan allows {limits.schedules} {noun}; this one is past them.",
                         details=[{"field": "schedules", "message": f"limit is {limits.schedules}"}])
    return None


def launch(services: Services, schedule: Schedule, key: str) -> dict[str, Any]:
    """The one place a fire becomes a run: the launch path of every run, as the workspace.
    A schedule that names a session posts its input as that session's next message (``enqueue``: it
    waits for a turn in progress); a session deleted since is a skipped fire (404)."""
    principal = schedule_principal(schedule.workspace_id, schedule.id)
    if schedule.session_id:
        return sessions_api.send_message(services, principal, schedule.session_id,
                                         sessions_api.SessionMessage(input=schedule.input), key)
    return runs_api.launch_run(services, principal, schedule.agent_id,
                               runs_api.RunLaunchRequest(input=schedule.input), key)


def _fire_time(value: Any, services: Services) -> datetime:
    """Scheduler's ``<aws.scheduler.scheduled-time>`` (ISO 8601, UTC), to the second."""
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        logger.warning("a schedule fire without its scheduled time: now stands in", extra={"value": str(value)[:64]})
        at = services.now()
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).replace(microsecond=0)


def _skipped(services: Services, schedule: Schedule, at: datetime, exc: AppError) -> None:
    limit = next((d.get("field") for d in exc.details if d.get("field")), None) or exc.code
    _record(schedule, at, SKIPPED, reason=exc.code, message=exc.message)
    used = allowed = 0
    wid = schedule.workspace_id
    with tenant_scope(wid):
        if limit == quota.RUNS:
            workspace = Workspace.load(wid)
            used, allowed = quota.runs_today(wid, services.now()), limits_for(
                workspace.tier, workspace.limit_overrides).runs_per_day
        try:
            alerts.skipped_fire(services.operator_events, wid, schedule.id, str(limit), exc.code, used, allowed,
                                counters.day(at), services.now())
        except Exception:  # noqa: BLE001 - the skip is recorded on the schedule; the alert is best effort
            logger.exception("could not alert a skipped schedule fire", extra={"schedule_id": schedule.id})


def _record(schedule: Schedule, at: datetime, status: str, *, reason: str | None = None,
            message: str | None = None, run_id: str | None = None) -> None:
    """The fire on the schedule, unless a later fire is recorded already."""
    with tenant_scope(schedule.workspace_id):
        try:
            actions: list[Any] = [Schedule.last_fire_at.set(at), Schedule.last_fire_status.set(status)]
            for attribute, value in ((Schedule.last_fire_reason, reason), (Schedule.last_fire_message, message),
                                     (Schedule.last_fire_run_id, run_id)):
                actions.append(attribute.set(value) if value is not None else attribute.remove())
            schedule.update(actions=actions,
                            condition=Schedule.pk.exists() & (Schedule.last_fire_at.does_not_exist()
                                                              | (Schedule.last_fire_at <= at)))
        except UpdateError:
            logger.info("a later fire is recorded, or the schedule is gone", extra={"schedule_id": schedule.id})
