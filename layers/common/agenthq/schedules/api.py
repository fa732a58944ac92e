"""Schedules as the HTTP API sees them: create, list, read, change, delete.

A schedule is an item of the workspace (``Schedule``) and one EventBridge
Scheduler schedule of the same name (``<workspace id>-<schedule id>``) that
invokes the fire function (:mod:`agenthq.schedules.fire`). The item is written
first, then Scheduler's schedule (a failure there undoes a creation, and a
repeated PATCH or DELETE finishes what a failed one began). How many a workspace
has is counted in ``ScheduleCount`` in the same transaction as the item, on the
condition that it stays within the tier's ``schedules``; a cron whose fires
come closer than the tier's ``schedule_min_interval_seconds`` is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pynamodb.exceptions import DeleteError, TransactWriteError, UpdateError

from agenthq import ids
from agenthq.adapters.scheduler import SCHEDULED_TIME
from agenthq.agent_lookup import load_agent
from agenthq.context import Principal, Scope
from agenthq.errors import InvalidRequest, NotFound, PlanLimit, ServiceUnavailable
from agenthq.observability import logger
from agenthq.pagination import Page, page
from agenthq.schedules.cron import Cron, CronError, zone
from agenthq.store import items as store_items
from agenthq.store import retry_transaction, tenant_scope, transaction
from agenthq.store.items import Schedule, ScheduleCount, Workspace
from agenthq.store.sizes import ensure_fits
from agenthq.text import NOT_BLANK
from agenthq.tiers import TierLimits, limits_for

if TYPE_CHECKING:
    from agenthq.services import Services

PREFIX = "SCHEDULE#"


def _valid_cron(value: str) -> str:
    try:
        Cron.parse(value)
    except CronError as exc:
        raise ValueError(str(exc)) from None
    return " ".join(value.split())


def _valid_zone(value: str) -> str:
    try:
        zone(value)
    except CronError as exc:
        raise ValueError(str(exc)) from None
    return value


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"cron": "0 9 * * MON-FRI", "timezone": "Europe/Paris", "input": "Summarise yesterday's incidents."}]})

    cron: str = Field(min_length=9, max_length=200, description=(
        "Five fields: minute hour day-of-month month day-of-week (restrict the day of the month or of the week, "
        "not both)."), examples=["0 9 * * MON-FRI"])
    timezone: str = Field(min_length=1, max_length=64, description="An IANA time zone.", examples=["Europe/Paris"])
    input: str = Field(min_length=1, pattern=NOT_BLANK)
    session_id: str | None = Field(default=None, pattern=ids.ID_PATTERN)
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _valid_cron(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _valid_zone(value)


class ScheduleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})

    cron: str | None = Field(default=None, min_length=9, max_length=200)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    input: str | None = Field(default=None, min_length=1, pattern=NOT_BLANK)
    session_id: str | None = Field(default=None, pattern=ids.ID_PATTERN)
    enabled: bool | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else _valid_cron(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _valid_zone(value)

    @model_validator(mode="after")
    def _no_nulls(self) -> ScheduleUpdate:
        for name in ("cron", "timezone", "input", "enabled"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


# --------------------------------------------------------------------------- views


def schedule_view(schedule: Schedule, now: datetime) -> dict[str, Any]:
    next_fire = None
    if schedule.enabled:  # after the last fire recorded too (a fire's clock may run ahead of this one's)
        after = max(now, schedule.last_fire_at) if schedule.last_fire_at else now
        fire = Cron.parse(schedule.cron).next_fire(after, zone(schedule.timezone))
        next_fire = fire.isoformat() if fire else None
    last_fire = None
    if schedule.last_fire_at is not None:
        last_fire = {"at": schedule.last_fire_at.isoformat(), "status": schedule.last_fire_status,
                     "reason": schedule.last_fire_reason, "message": schedule.last_fire_message,
                     "run_id": schedule.last_fire_run_id}
    return {"id": schedule.id, "workspace_id": schedule.workspace_id, "agent_id": schedule.agent_id,
            "cron": schedule.cron, "timezone": schedule.timezone, "input": schedule.input,
            "session_id": schedule.session_id, "enabled": bool(schedule.enabled),
            "next_fire": next_fire, "last_fire": last_fire,
            "created_at": schedule.created_at.isoformat(), "updated_at": schedule.updated_at.isoformat()}


def scheduler_name(workspace_id: str, schedule_id: str) -> str:
    """Its EventBridge Scheduler schedule's name (at most 64 characters: two ULIDs and a dash)."""
    return f"{workspace_id}-{schedule_id}"


def target_input(workspace_id: str, schedule_id: str) -> dict[str, Any]:
    """What Scheduler hands the fire function: ids and the fire's due time, nothing else."""
    return {"workspace_id": workspace_id, "schedule_id": schedule_id, "scheduled_time": SCHEDULED_TIME}


def put_in_scheduler(services: Services, schedule: Schedule) -> None:
    services.scheduler.put(scheduler_name(schedule.workspace_id, schedule.id), Cron.parse(schedule.cron).aws_expression(),
                           schedule.timezone, target_input(schedule.workspace_id, schedule.id), bool(schedule.enabled))


# --------------------------------------------------------------------------- checks


def _limits(workspace_id: str) -> TierLimits:
    workspace = Workspace.load(workspace_id)
    return limits_for(workspace.tier, workspace.limit_overrides)


def check_interval(cron: str, timezone: str, limits: TierLimits, now: datetime) -> int | None:
    """403 ``plan_limit`` when two of the cron's fires in its time zone come closer than the tier allows;
    else the shortest gap in seconds (None: at most one fire in two days)."""
    gap = Cron.parse(cron).shortest_gap(zone(timezone), now)
    seconds = None if gap is None else int(gap.total_seconds())
    interval_error = too_frequent(seconds, limits)
    if interval_error is not None:
        raise PlanLimit(
            f"{interval_error}; this cron fires {_duration(seconds or 0)} apart in {timezone}.",
            details=[{"field": "cron", "in": "body",
                      "message": f"fires closer than {limits.schedule_min_interval_seconds} seconds apart"}])
    return seconds


def too_frequent(gap_seconds: int | None, limits: TierLimits) -> str | None:
    """Why a schedule whose fires come ``gap_seconds`` apart is past the tier (None: it is not)."""
    shortest = limits.schedule_min_interval_seconds
    if gap_seconds is None or gap_seconds >= shortest:
        return None
    return f"Your plan allows a schedule to fire at most every {_duration(shortest)}"


def within_count(workspace_id: str, schedule_id: str, limits: TierLimits) -> bool:
    """Whether the schedule is among the workspace's first (oldest) ``schedules`` of the tier: after a
    downgrade, the ones past the new limit fire no more (skipped, ``plan_limit``) until some are deleted."""
    if limits.schedules <= 0:
        return False
    first = Schedule.query(Workspace.key(workspace_id)[0], Schedule.sk.startswith(PREFIX), limit=limits.schedules,
                           attributes_to_get=["pk", "sk"])
    return any(item.sk == f"{PREFIX}{schedule_id}" for item in first)


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    minutes = seconds / 60
    return f"{minutes:g} minute" + ("" if minutes == 1 else "s")


def _check_session(workspace_id: str, agent_id: str, session_id: str | None) -> None:
    """A named session must be the workspace's, and a conversation with the schedule's agent."""
    if session_id is None:
        return
    session = store_items.AgentSession.get_or_none(*store_items.AgentSession.key(workspace_id, session_id))
    if session is None:
        raise NotFound("No such session.")
    if session.agent_id != agent_id:
        raise InvalidRequest("The session is a conversation with another agent.",
                             details=[{"field": "session_id", "message": "must be a session of this agent"}])


def _check_input(services: Services, text: str) -> None:
    limit = services.settings.max_run_input_chars
    if len(text) > limit:
        raise InvalidRequest(details=[{"field": "input", "in": "body", "message": f"must be at most {limit} characters"}])


def _plan_limit(allowed: int) -> PlanLimit:
    noun = "schedule" if allowed == 1 else "schedules"
    return PlanLimit(f"Your plan allows {allowed} {noun}.",
                     details=[{"field": "schedules", "message": f"limit is {allowed}"}])


def schedule_count(workspace_id: str) -> int:
    counter = ScheduleCount.get_or_none(*ScheduleCount.key(workspace_id), consistent_read=True)
    return int(counter.total) if counter is not None else 0


# --------------------------------------------------------------------------- routes


def create_schedule(services: Services, principal: Principal, agent_id: str, body: ScheduleCreate) -> dict[str, Any]:
    principal.require(Scope.runs_write)
    _check_input(services, body.input)
    wid = principal.workspace_id
    now = services.now()
    with tenant_scope(wid):
        limits = _limits(wid)
        load_agent(wid, agent_id)
        _check_session(wid, agent_id, body.session_id)
        if limits.schedules <= 0:
            raise _plan_limit(limits.schedules)
        gap = check_interval(body.cron, body.timezone, limits, now)
        schedule_id = ids.new_id()
        schedule = Schedule(*Schedule.key(wid, schedule_id), id=schedule_id, workspace_id=wid, agent_id=agent_id,
                            cron=body.cron, timezone=body.timezone, input=body.input, session_id=body.session_id,
                            enabled=body.enabled, created_by=principal.subject, created_at=now, updated_at=now,
                            shortest_gap_seconds=gap)
        ensure_fits(schedule, "input", "The schedule")

        def attempt() -> None:
            with transaction() as tx:
                tx.save(schedule, condition=Schedule.pk.does_not_exist())
                tx.update(ScheduleCount(*ScheduleCount.key(wid)), actions=[ScheduleCount.total.add(1)],
                          condition=ScheduleCount.total.does_not_exist() | (ScheduleCount.total < limits.schedules))

        def explain(exc: TransactWriteError) -> None:
            if schedule_count(wid) >= limits.schedules:
                raise _plan_limit(limits.schedules)

        retry_transaction(attempt, explain, attempts=5,
                          exhausted=lambda: ServiceUnavailable("Too many changes at once; please retry."))
        try:
            put_in_scheduler(services, schedule)
        except Exception as exc:
            logger.exception("EventBridge Scheduler refused the schedule", extra={"schedule_id": schedule_id})
            _forget(wid, schedule_id)
            raise ServiceUnavailable("The schedule could not be created; please retry.") from exc
        return schedule_view(schedule, now)


def list_schedules(services: Services, principal: Principal, agent_id: str | None, cursor: str | None,
                   limit: int) -> Page:
    principal.require(Scope.runs_read)
    wid = principal.workspace_id
    now = services.now()
    partition = Workspace.key(wid)[0]
    only = (Schedule.agent_id == agent_id) if agent_id else None
    with tenant_scope(wid):
        return page(lambda start: Schedule.query(partition, Schedule.sk.startswith(PREFIX), filter_condition=only,
                                                 limit=limit, last_evaluated_key=start),
                    lambda s: schedule_view(s, now), cursor, partition=partition, sk_prefix=PREFIX)


def load_schedule(workspace_id: str, schedule_id: str) -> Schedule:
    return Schedule.get_or_404(*Schedule.key(workspace_id, schedule_id), "No such schedule.")


def get_schedule(services: Services, principal: Principal, schedule_id: str) -> dict[str, Any]:
    principal.require(Scope.runs_read)
    with tenant_scope(principal.workspace_id):
        return schedule_view(load_schedule(principal.workspace_id, schedule_id), services.now())


def update_schedule(services: Services, principal: Principal, schedule_id: str,
                    change: ScheduleUpdate) -> dict[str, Any]:
    principal.require(Scope.runs_write)
    wid = principal.workspace_id
    now = services.now()
    given = change.model_dump(exclude_unset=True)
    if "input" in given:
        _check_input(services, given["input"])
    with tenant_scope(wid):
        schedule = load_schedule(wid, schedule_id)
        if "session_id" in given:
            _check_session(wid, schedule.agent_id, given["session_id"])
        cron, timezone = given.get("cron", schedule.cron), given.get("timezone", schedule.timezone)
        if "cron" in given or "timezone" in given:
            given["shortest_gap_seconds"] = check_interval(cron, timezone, _limits(wid), now)
        for name, value in given.items():
            setattr(schedule, name, value)
        schedule.updated_at = now
        ensure_fits(schedule, "input", "The schedule")
        try:
            schedule.update(actions=[getattr(Schedule, name).set(value) if value is not None
                                     else getattr(Schedule, name).remove() for name, value in given.items()]
                            + [Schedule.updated_at.set(now)], condition=Schedule.pk.exists())
        except UpdateError:
            raise NotFound("No such schedule.") from None
        try:
            put_in_scheduler(services, schedule)
        except Exception as exc:
            logger.exception("EventBridge Scheduler refused the change", extra={"schedule_id": schedule_id})
            raise ServiceUnavailable("The schedule was changed but not yet in the scheduler; repeat the "
                                     "request.") from exc
        return schedule_view(schedule, now)


def delete_schedule(services: Services, principal: Principal, schedule_id: str) -> None:
    principal.require(Scope.runs_write)
    wid = principal.workspace_id
    with tenant_scope(wid):
        load_schedule(wid, schedule_id)
        try:
            services.scheduler.delete(scheduler_name(wid, schedule_id))
        except Exception as exc:
            logger.exception("EventBridge Scheduler did not delete the schedule", extra={"schedule_id": schedule_id})
            raise ServiceUnavailable("The schedule could not be deleted; please retry.") from exc
        if not _forget(wid, schedule_id):
            raise NotFound("No such schedule.")  # another request deleted it meanwhile


def _forget(workspace_id: str, schedule_id: str) -> bool:
    """Delete the schedule's item and count it out, in one transaction (False: it was gone already)."""
    try:
        with transaction() as tx:
            tx.delete(Schedule(*Schedule.key(workspace_id, schedule_id)), condition=Schedule.pk.exists())
            tx.update(ScheduleCount(*ScheduleCount.key(workspace_id)), actions=[ScheduleCount.total.add(-1)],
                      condition=ScheduleCount.total > 0)
    except (TransactWriteError, DeleteError):
        return False
    return True
