"""EventBridge schedules of template.yaml, and EventBridge Scheduler's schedules, fired locally.

Each function event of type ``Schedule`` becomes a timer thread that invokes
the function (through the local Lambda runtime) with a ``Scheduled Event``
when its expression next comes due, as EventBridge would. The expressions
supported are the ones the template uses: ``rate(N minutes|hours|days)`` and
``cron(M H * * ? *)`` with fixed or ``*`` minute and hour. Tests (and the
curious) can fire a schedule at once with :meth:`LocalSchedules.fire`.

EventBridge Scheduler's schedules (the API creates them in moto's Scheduler,
in the template's ``AWS::Scheduler::ScheduleGroup``s) fire as Scheduler fires
them (:class:`SchedulerSchedules`): each ``ENABLED`` schedule's cron, in its
``ScheduleExpressionTimezone``, invokes its target with its ``Input`` (the
``<aws.scheduler.scheduled-time>`` context attribute filled in), provided the
schedule's role may invoke that function (its policies in the template, as
IAM would decide). Its clock is the wall clock plus an offset tests move with
:meth:`SchedulerSchedules.advance`, which fires what came due at once.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from local.template import ACCOUNT_ID, resources_of_type

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((\S+) (\S+) \* \* \? \*\)$")


@dataclass(frozen=True)
class Schedule:
    function: str  # logical id
    name: str  # the event's name in the template
    expression: str
    input: str | None = None  # the target's constant input (the ``Input`` property): sent instead of the event

    def next_after(self, now: datetime) -> datetime:
        """When the expression next comes due after ``now`` (UTC)."""
        rate = _RATE.match(self.expression)
        if rate:
            unit = rate.group(2).rstrip("s")
            return now + timedelta(**{f"{unit}s": int(rate.group(1))})
        cron = _CRON.match(self.expression)
        if not cron:
            raise ValueError(f"unsupported schedule expression {self.expression!r} (local cloud)")
        minute, hour = cron.groups()
        candidate = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(60 * 24 + 1):
            if (minute == "*" or candidate.minute == int(minute)) and (hour == "*" or candidate.hour == int(hour)):
                return candidate
            candidate += timedelta(minutes=1)
        raise ValueError(f"schedule {self.expression!r} never comes due")


def schedules(template: dict[str, Any]) -> list[Schedule]:
    found = []
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            if event.get("Type") == "Schedule":
                found.append(Schedule(logical_id, name, event["Properties"]["Schedule"], event["Properties"].get("Input")))
    return found


class LocalSchedules:
    def __init__(self, specs: list[Schedule], runtime: Any, region: str) -> None:
        self.specs = specs
        self.runtime = runtime
        self.region = region
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> LocalSchedules:
        for spec in self.specs:
            thread = threading.Thread(target=self._loop, args=(spec,), name=f"schedule-{spec.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def fire(self, function: str, name: str | None = None) -> list[Any]:
        """Invoke each schedule of ``function`` (or only the one called ``name``) now; returns what the
        function returned."""
        return [self._invoke(spec, datetime.now(UTC)) for spec in self.specs
                if spec.function == function and name in (None, spec.name)]

    def _loop(self, spec: Schedule) -> None:
        while not self._stop.is_set():
            due = spec.next_after(datetime.now(UTC))
            if self._stop.wait(max(0.0, (due - datetime.now(UTC)).total_seconds())):
                return
            try:
                self._invoke(spec, due)
            except Exception:  # noqa: BLE001 - a failed scheduled invocation is logged, the schedule goes on
                import logging

                logging.getLogger(__name__).exception("scheduled invocation of %s failed", spec.function)

    def _invoke(self, spec: Schedule, at: datetime) -> Any:
        event = {
            "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT_ID, "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": self.region,
            "resources": [f"arn:aws:events:{self.region}:{ACCOUNT_ID}:rule/{spec.function}{spec.name}"],
            "detail": {},
        }
        if spec.input is not None:  # as EventBridge does: the target gets the constant input, not the event
            return self.runtime.invoke(spec.function, json.loads(spec.input))
        return self.runtime.invoke(spec.function, event)


class SchedulerSchedules:
    """EventBridge Scheduler's schedules of the given groups (moto's, in this process), fired as they come due."""

    def __init__(self, groups: list[str], runtime: Any, region: str, may_invoke: Any = None,
                 tick_seconds: float = 1.0) -> None:
        self.groups = groups
        self.runtime = runtime
        self.region = region
        self.may_invoke = may_invoke  # (role ARN, function ARN) -> bool; None: no IAM check
        self.tick_seconds = tick_seconds
        self.offset = timedelta(0)
        self.fired: list[dict[str, Any]] = []  # every fire: {name, at, target, result | error}
        self._since: dict[tuple[str, str, float], datetime] = {}  # (group, name, modified) -> fired up to
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def start(self) -> SchedulerSchedules:
        self._thread = threading.Thread(target=self._loop, name="scheduler-schedules", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def advance(self, delta: timedelta) -> list[dict[str, Any]]:
        """Move the clock on by ``delta``; fire (here, in order) every fire that came due. Returns them."""
        with self._lock:
            self._tick()  # schedules made since the last tick start from now, as on Scheduler
            self.offset += delta
            return self._tick()

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                with self._lock:
                    self._tick()
            except Exception:  # noqa: BLE001 - a failed tick is logged, the schedules go on
                import logging

                logging.getLogger(__name__).exception("firing Scheduler's schedules failed")

    def _schedules(self) -> list[dict[str, Any]]:
        from moto.scheduler.models import scheduler_backends

        from local.moto_access import MOTO_LOCK

        with MOTO_LOCK:
            backend = scheduler_backends[ACCOUNT_ID][self.region]
            found = []
            for group in self.groups:
                holder = backend.schedule_groups.get(group)
                for schedule in list(holder.schedules.values()) if holder else []:
                    found.append({"group": group, "name": schedule.name, "modified": schedule.last_modified_date,
                                  "state": schedule.state, "expression": schedule.schedule_expression,
                                  "timezone": schedule.schedule_expression_timezone, "target": dict(schedule.target)})
        return found

    def _tick(self) -> list[dict[str, Any]]:
        from zoneinfo import ZoneInfo

        from agenthq.schedules.cron import Cron  # the layer's reading of the cron form the API writes

        now = self.now()
        due: list[tuple[datetime, dict[str, Any]]] = []
        seen = set()
        for schedule in self._schedules():
            key = (schedule["group"], schedule["name"], schedule["modified"])
            seen.add(key)
            since = self._since.setdefault(key, now)
            self._since[key] = now
            if schedule["state"] != "ENABLED":
                continue
            cron = Cron.parse_aws(schedule["expression"])
            due.extend((at, schedule) for at in cron.fires(since, ZoneInfo(schedule["timezone"]), until=now))
        for key in set(self._since) - seen:
            del self._since[key]
        fired = []
        for at, schedule in sorted(due, key=lambda pair: pair[0]):
            fired.append(self._invoke(schedule, at))
        self.fired.extend(fired)
        return fired

    def _invoke(self, schedule: dict[str, Any], at: datetime) -> dict[str, Any]:
        import json

        target = schedule["target"]
        record: dict[str, Any] = {"name": schedule["name"], "at": at, "target": target["Arn"]}
        if self.may_invoke is not None and not self.may_invoke(target.get("RoleArn", ""), target["Arn"]):
            record["error"] = f"the schedule's role may not invoke {target['Arn']}"
            return record
        text = (target.get("Input") or "{}").replace(SCHEDULED_TIME, at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        try:
            record["result"] = self.runtime.invoke(target["Arn"], json.loads(text))
        except Exception as exc:  # noqa: BLE001 - as Scheduler: the fire failed, the schedule goes on
            record["error"] = repr(exc)
        return record


_held_to_schedulers_rules = False
_AWS_CRON = re.compile(r"^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$")
_AWS_RATE = re.compile(r"^rate\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\)$")
_AWS_AT = re.compile(r"^at\(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\)$")


def hold_moto_to_schedulers_rules() -> None:
    """Make moto's Scheduler refuse what EventBridge Scheduler refuses. Idempotent. moto takes any
    expression, any time zone and a missing group (a ``KeyError``: an internal error); Scheduler answers
    ``ValidationException`` for an expression that is not ``cron(6 fields)``, ``rate(…)`` or ``at(…)``,
    or for a time zone that is not an IANA name, and ``ResourceNotFoundException`` for an unknown group.
    Of a cron, only its shape is checked here (the product writes and validates its own)."""
    global _held_to_schedulers_rules
    if _held_to_schedulers_rules:
        return
    from zoneinfo import available_timezones

    from moto.scheduler.exceptions import ScheduleGroupNotFound, ValidationException
    from moto.scheduler.models import EventBridgeSchedulerBackend

    zones = frozenset(available_timezones())
    create, update = EventBridgeSchedulerBackend.create_schedule, EventBridgeSchedulerBackend.update_schedule

    def check(backend: Any, kwargs: dict[str, Any]) -> None:
        group = kwargs.get("group_name") or "default"
        if group not in backend.schedule_groups:
            raise ScheduleGroupNotFound(group)
        expression = str(kwargs.get("schedule_expression") or "")
        if not (_AWS_CRON.match(expression) or _AWS_RATE.match(expression) or _AWS_AT.match(expression)):
            raise ValidationException(f"Invalid Schedule Expression {expression}.")
        zone = kwargs.get("schedule_expression_timezone")
        if zone and zone not in zones:
            raise ValidationException(f"Invalid ScheduleExpressionTimezone {zone}.")

    def create_schedule(self: Any, **kwargs: Any) -> Any:
        check(self, kwargs)
        return create(self, **kwargs)

    def update_schedule(self: Any, **kwargs: Any) -> Any:
        check(self, kwargs)
        return update(self, **kwargs)

    EventBridgeSchedulerBackend.create_schedule = create_schedule  # type: ignore[method-assign]
    EventBridgeSchedulerBackend.update_schedule = update_schedule  # type: ignore[method-assign]
    _held_to_schedulers_rules = True
