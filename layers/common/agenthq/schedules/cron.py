"""A schedule's cron: the five fields users know, EventBridge Scheduler's form, and its fires.

The API takes a five-field cron (``minute hour day-of-month month day-of-week``;
each field ``*``, ``N``, ``A-B``, ``*/S``, ``A-B/S``, or a comma list of them;
months ``JAN``-``DEC`` and days ``SUN``-``SAT`` by name too; day of week 0-7,
0 and 7 being Sunday). EventBridge Scheduler cannot restrict both the day of
the month and the day of the week (one of them must be ``?``), so a cron that
restricts both is refused rather than given a meaning of its own.

:meth:`Cron.aws_expression` writes each restricted field as the explicit list
of its values (ranges where they run on), so steps and names never depend on
how Scheduler reads them; day of week moves to Scheduler's 1-7 (1 = Sunday).
:meth:`Cron.parse_aws` reads that form back (the local cloud fires schedules
with it).

Fires in a time zone (:meth:`Cron.fires`): each matching day, each matching
wall-clock time, once. A wall-clock time a daylight-saving change skips fires
as if the clock had not moved (an hour later on the new clock); a time a change
repeats fires at its first occurrence only (``fold=0``).

The shortest gap between fires (:meth:`Cron.shortest_gap`) is what the tiers
limit. It is exact for the wall clock — the smallest distance between two of a
day's times, and between a day's last and the next day's first time when two
days in a row can both match (looked for over the next four years) — and then
measured in real time around each daylight-saving change of the zone in the
coming year (two days either side), where a change that moves the clock
forward shortens the gap across it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

MONTHS = {name: i + 1 for i, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"))}
WEEKDAYS = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}), ("month", 1, 12, MONTHS),
           ("day of week", 0, 7, WEEKDAYS))
_ITEM = re.compile(r"^(?:(\*)|([0-9A-Z]+)(?:-([0-9A-Z]+))?)(?:/([0-9]+))?$")
AWS_EXPRESSION_MAX = 256  # ScheduleExpression's length limit
_DAY_SEARCH = 366 * 9  # Feb 29 on a Monday, say, can be years away
_CONSECUTIVE_SEARCH = 366 * 4 + 1


class CronError(ValueError):
    """The cron or the time zone is not one a schedule can have (the message says why)."""


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Paris``, ``UTC``); :class:`CronError` for anything else."""
    if name not in _zones():
        raise CronError("must be an IANA time zone name, such as Europe/Paris or UTC")
    return ZoneInfo(name)


def _field(text: str, index: int) -> frozenset[int] | None:
    """The values of one field; None for ``*`` (any)."""
    label, low, high, names = _FIELDS[index]
    if text == "*":
        return None
    values: set[int] = set()
    for item in text.upper().split(","):
        match = _ITEM.match(item)
        if not match:
            raise CronError(f"{label}: '{item}' is not N, A-B, */S, A-B/S or a list of them")
        star, first, last, step = match.groups()

        def number(token: str) -> int:
            value = names.get(token) if not token.isdigit() else int(token)
            if value is None or not low <= value <= high:
                raise CronError(f"{label}: '{token}' is out of range ({low}-{high})")
            return value

        start, end = (low, high) if star else (number(first), number(last) if last else number(first))
        if last is None and step is not None and not star:
            end = high  # N/S: from N on
        if start > end:
            raise CronError(f"{label}: the range '{item}' runs backwards")
        stride = int(step) if step is not None else 1
        if stride < 1:
            raise CronError(f"{label}: a step must be at least 1")
        values.update(range(start, end + 1, stride))
    if index == 4 and 7 in values:  # 7 is Sunday too
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None  # day of month; None: any
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # 0 = Sunday; None: any

    @classmethod
    def parse(cls, text: str) -> Cron:
        parts = text.split()
        if len(parts) != 5:
            raise CronError("must have five fields: minute hour day-of-month month day-of-week")
        minutes, hours, days, months, weekdays = (_field(p, i) for i, p in enumerate(parts))
        if days is not None and weekdays is not None:
            raise CronError("restrict the day of the month or the day of the week, not both (one must be *)")
        cron = cls(minutes if minutes is not None else frozenset(range(60)),
                   hours if hours is not None else frozenset(range(24)), days, months, weekdays)
        if len(cron.aws_expression()) > AWS_EXPRESSION_MAX:
            raise CronError("is too long for EventBridge Scheduler once written out; use fewer values")
        if next(cron.fires(datetime.now(UTC), ZoneInfo("UTC")), None) is None:
            raise CronError("never fires (no such day)")
        return cron

    # ------------------------------------------------------------------ EventBridge Scheduler's form

    def aws_expression(self) -> str:
        days = "?" if self.weekdays is not None else _list(self.days)
        weekdays = "?" if self.weekdays is None else _list(frozenset(d + 1 for d in self.weekdays))
        return (f"cron({_list(self.minutes, 60)} {_list(self.hours, 24)} {days} {_list(self.months)} "
                f"{weekdays} *)")

    @classmethod
    def parse_aws(cls, expression: str) -> Cron:
        """Read back what :meth:`aws_expression` writes (numbers, ranges, lists, ``*`` and ``?``)."""
        match = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+) \*\)", expression)
        if not match:
            raise CronError(f"unsupported schedule expression {expression!r}")
        minute, hour, day, month, weekday = match.groups()
        weekdays = None if weekday in ("?", "*") else frozenset(
            (v - 1) % 7 for v in _aws_values(weekday, 1, 7))
        return cls(_aws_values(minute, 0, 59), _aws_values(hour, 0, 23),
                   None if day in ("?", "*") else _aws_values(day, 1, 31),
                   None if month == "*" else _aws_values(month, 1, 12), weekdays)

    # ------------------------------------------------------------------ fires

    def matches_day(self, day: date) -> bool:
        return ((self.days is None or day.day in self.days) and (self.months is None or day.month in self.months)
                and (self.weekdays is None or (day.isoweekday() % 7) in self.weekdays))

    def times(self) -> list[int]:
        """A matching day's fire times, in minutes after midnight (wall clock)."""
        return sorted(h * 60 + m for h in self.hours for m in self.minutes)

    def fires(self, after: datetime, tz: ZoneInfo, until: datetime | None = None) -> Iterator[datetime]:
        """The fires after ``after`` (UTC, in order), up to ``until`` if given."""
        day = after.astimezone(tz).date() - timedelta(days=1)
        times = self.times()
        for _ in range(_DAY_SEARCH):
            if self.matches_day(day):
                moments = sorted({datetime(day.year, day.month, day.day, t // 60, t % 60, tzinfo=tz).astimezone(UTC)
                                  for t in times})
                for moment in moments:
                    if until is not None and moment > until:
                        return
                    if moment > after:
                        yield moment
            elif until is not None and datetime(day.year, day.month, day.day, tzinfo=tz) > until:
                return
            day += timedelta(days=1)

    def next_fire(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        return next(self.fires(after, tz), None)

    def shortest_gap(self, tz: ZoneInfo, now: datetime) -> timedelta | None:
        """The shortest time between two fires (None: it fires too rarely to tell, at most once in two days)."""
        times = self.times()
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        start = now.astimezone(tz).date()
        if any(self.matches_day(start + timedelta(days=i)) and self.matches_day(start + timedelta(days=i + 1))
               for i in range(_CONSECUTIVE_SEARCH)):
            gaps.append(times[0] + 1440 - times[-1])
        shortest = timedelta(minutes=min(gaps)) if gaps else None
        for change in _clock_changes(tz, now):
            window = list(self.fires(change - timedelta(days=2), tz, until=change + timedelta(days=2)))
            for a, b in zip(window, window[1:], strict=False):
                if shortest is None or b - a < shortest:
                    shortest = b - a
        return shortest


def _list(values: frozenset[int] | None, full: int | None = None) -> str:
    """``*`` for any, else the values as a comma list with runs written as ranges."""
    if values is None or (full is not None and len(values) == full):
        return "*"
    ordered = sorted(values)
    parts: list[str] = []
    run_start = previous = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(run_start) if run_start == previous else f"{run_start}-{previous}")
        if value is not None:
            run_start = previous = value
    return ",".join(parts)


def _aws_values(text: str, low: int, high: int) -> frozenset[int]:
    if text == "*":
        return frozenset(range(low, high + 1))
    values: set[int] = set()
    for item in text.split(","):
        first, _, last = item.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise CronError(f"unsupported schedule expression field {text!r}")
        values.update(range(int(first), int(last or first) + 1))
    return frozenset(values)


def _clock_changes(tz: ZoneInfo, now: datetime) -> list[datetime]:
    """The moments (UTC, to the hour) in the coming year when ``tz``'s offset changes."""
    changes = []
    at = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    offset = at.astimezone(tz).utcoffset()
    for _ in range(366 * 24):
        at += timedelta(hours=1)
        current = at.astimezone(tz).utcoffset()
        if current != offset:
            changes.append(at)
            offset = current
    return changes
