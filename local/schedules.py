"""EventBridge schedules of template.yaml, fired locally.

Each function event of type ``Schedule`` becomes a timer thread that invokes
the function (through the local Lambda runtime) with a ``Scheduled Event``
when its expression next comes due, as EventBridge would. The expressions
supported are the ones the template uses: ``rate(N minutes|hours|days)`` and
``cron(M H * * ? *)`` with fixed or ``*`` minute and hour. Tests (and the
curious) can fire a schedule at once with :meth:`LocalSchedules.fire`.
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
