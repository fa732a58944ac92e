"""The usage API's arithmetic: pure functions, no I/O (``agenthq.usage.api``
reads the items and calls these).

- periods: when a day or month starts and resets (UTC), the date ranges the
  series and the export accept;
- limits: each enforced limit as ``{period, used, limit, percent, resets_at}``;
- the metered totals of a period, a day, a run, an export — one shape;
- the export: one row per run, its totals, CSV.

Money is integer micro-dollars until it is shown (``pricing.usd``: a decimal
string of dollars with 6 places), so every total is exact.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from agenthq import ids
from agenthq.errors import InvalidRequest
from agenthq.pricing import usd
from agenthq.tiers import TierLimits
from agenthq.usage import quota
from agenthq.usage.counters import day_start, month_start, next_day, next_month
from agenthq.usage.vector import Usage

PERIODS = ("day", "month")
EXPORT_FORMATS = ("json", "csv")
MAX_DAILY_DAYS = 92  # a quarter of daily rows
MAX_EXPORT_DAYS = 31
# A Lambda response is at most 6 MB; an export row is about 500 bytes of JSON.
MAX_EXPORT_RUNS = 5_000
EARLIEST = date(2000, 1, 1)
LATEST = date(2999, 12, 31)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

EXPORT_COLUMNS = ("run_id", "agent_id", "agent_name", "parent_run_id", "status", "created_at", "finished_at",
                  "input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens", "model_cost_usd",
                  "infra_cost_usd", "agent_seconds", "tool_calls")


# --------------------------------------------------------------------------- periods


def period_param(period: str) -> str:
    if period not in PERIODS:
        raise InvalidRequest(f"Unknown period '{period}'.",
                             details=[{"field": "period", "in": "query", "message": "must be day or month"}])
    return period


def export_format_param(export_format: str) -> str:
    if export_format not in EXPORT_FORMATS:
        raise InvalidRequest(f"Unknown format '{export_format}'.",
                             details=[{"field": "format", "in": "query", "message": "must be csv or json"}])
    return export_format


def period_bounds(period: str, at: datetime) -> tuple[datetime, datetime]:
    """The start of ``period`` (``day`` or ``month``) at ``at``, and when it resets."""
    if period == "day":
        return day_start(at), next_day(at)
    return month_start(at), next_month(at)


def _date(value: str) -> date | None:
    """``value`` as a ``YYYY-MM-DD`` date from EARLIEST to LATEST, else None."""
    if not _DATE.match(value):
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        return None
    return parsed if EARLIEST <= parsed <= LATEST else None


def date_range(first: str | None, last: str | None, today: date, max_days: int) -> tuple[date, date]:
    """``from`` and ``to`` (inclusive UTC dates, ``YYYY-MM-DD``). ``to`` defaults
    to today and ``from`` to the first day of ``to``'s month; at most ``max_days`` days."""
    parsed = {name: _date(value) for name, value in (("from", first), ("to", last)) if value is not None}
    bad = [name for name, value in parsed.items() if value is None]
    if bad:
        raise InvalidRequest(f"'{bad[0]}' is not a date.", details=[
            {"field": name, "in": "query", "message": f"must be a date YYYY-MM-DD from {EARLIEST} to {LATEST}"}
            for name in bad])
    end = parsed.get("to") or today
    start = parsed.get("from") or end.replace(day=1)
    if start > end:
        raise InvalidRequest("'from' is after 'to'.",
                             details=[{"field": "from", "in": "query", "message": "must not be after 'to'"}])
    if (end - start).days + 1 > max_days:
        raise InvalidRequest(f"The range is longer than {max_days} days; ask for fewer days.",
                             details=[{"field": "to", "in": "query",
                                       "message": f"at most {max_days} days from 'from', both included"}])
    return start, end


def days(first: date, last: date) -> Iterator[date]:
    for n in range((last - first).days + 1):
        yield first + timedelta(days=n)


def run_id_bounds(first: date, last: date) -> tuple[str, str]:
    """The run ids made from ``first`` 00:00 to ``last`` 24:00 UTC, as an
    inclusive key range: a ULID's first 10 characters are its time."""
    start_ms = int(datetime.combine(first, time(), UTC).timestamp() * 1000)
    end_ms = int(datetime.combine(last + timedelta(days=1), time(), UTC).timestamp() * 1000)
    return ids.time_prefix(start_ms), ids.time_prefix(end_ms - 1) + "~"


# --------------------------------------------------------------------------- limits


def percent(used: int, limit: int) -> float:
    """``used`` of ``limit`` in percent, one decimal, rounded down (100.0 means
    used up); a limit of 0 allows nothing: 100.0."""
    if limit <= 0:
        return 100.0
    return float((Decimal(used) * 100 / Decimal(limit)).quantize(Decimal("0.1"), rounding=ROUND_DOWN))


@dataclass(frozen=True)
class Measured:
    """One enforced limit and how much of it is used (``reserved``: held for
    model calls under way, where the limit reserves before it spends;
    ``queued``: runs waiting for one of the concurrent slots)."""

    name: str
    period: str | None  # "day", "month", or None for a standing limit (agents, concurrent runs)
    used: int
    limit: int
    resets_at: datetime | None
    reserved: int | None = None
    queued: int | None = None
    money: bool = False  # micro-dollars, shown as dollars
    min_interval_seconds: int | None = None  # schedules: the shortest gap a cron may leave between fires

    def view(self) -> dict[str, Any]:
        show = usd if self.money else int
        body: dict[str, Any] = {"period": self.period, "used": show(self.used)}
        if self.min_interval_seconds is not None:
            body["min_interval_seconds"] = self.min_interval_seconds
        if self.reserved is not None:
            body["reserved"] = show(self.reserved)
        if self.queued is not None:
            body["queued"] = self.queued
        return {**body, "limit": show(self.limit), "percent": percent(self.used, self.limit),
                "resets_at": self.resets_at.isoformat() if self.resets_at else None}


@dataclass(frozen=True)
class MonthQuota:
    """The month's ``Quota`` item in numbers (0 when it does not exist yet)."""

    used_tokens: int = 0
    committed_tokens: int = 0
    used_micro_usd: int = 0
    committed_micro_usd: int = 0


@dataclass(frozen=True)
class Slots:
    """The workspace's ``RunSlots`` item in numbers: runs holding a slot, runs queued."""

    running: int = 0
    waiting: int = 0


def measured_limits(limits: TierLimits, at: datetime, runs_today: int, month: MonthQuota, slots: Slots,
                    agents: int, live_connections: int = 0, schedules: int = 0,
                    pending_approvals: int = 0, webhooks: int = 0, mcp_servers: int = 0) -> list[Measured]:
    """Every limit enforced in code, measured the way it is enforced: runs per
    day from the day's quota; tokens and budget from the month's quota (used =
    settled model calls; reserved = held for calls under way); concurrent runs
    from the workspace's run slots (used = running, queued = waiting for a
    slot); agents from the workspace's count."""
    return [
        Measured("runs_per_day", "day", runs_today, limits.runs_per_day, next_day(at)),
        Measured("concurrent_runs", None, slots.running, limits.concurrent_runs, None, queued=slots.waiting),
        Measured("tokens_per_month", "month", month.used_tokens, limits.tokens_per_month, next_month(at),
                 reserved=max(0, month.committed_tokens - month.used_tokens)),
        Measured("budget_usd_per_month", "month", month.used_micro_usd, quota.budget_micro_usd(limits),
                 next_month(at), reserved=max(0, month.committed_micro_usd - month.used_micro_usd), money=True),
        Measured("max_agents", None, agents, limits.max_agents, None),
        Measured("live_connections", None, live_connections, limits.live_connections, None),
        Measured("schedules", None, schedules, limits.schedules, None,
                 min_interval_seconds=limits.schedule_min_interval_seconds),
        Measured("pending_approvals", None, pending_approvals, limits.pending_approvals, None),
        Measured("webhooks", None, webhooks, limits.webhooks, None),
        Measured("mcp_servers", None, mcp_servers, limits.mcp_servers, None),
    ]


def summary(period: str, at: datetime, tier: str, measured: list[Measured], metered: Usage) -> dict[str, Any]:
    """``GET …/usage``: the period's metered totals and every enforced limit."""
    start, resets = period_bounds(period, at)
    return {"period": period, "tier": tier, "starts_at": start.isoformat(), "resets_at": resets.isoformat(),
            "as_of": at.isoformat(), "usage": usage_view(metered),
            "limits": {m.name: m.view() for m in measured}}


# --------------------------------------------------------------------------- metered totals


def usage_view(usage: Usage, *, model_calls: bool = True) -> dict[str, Any]:
    """Metered totals as the usage API shows them (a period, a day, an export).
    A run record does not count model calls apart (its ``steps`` do), so the
    export's totals leave them out."""
    view: dict[str, Any] = {"runs": usage.runs}
    if model_calls:
        view["model_calls"] = usage.model_calls
    view = {**view, **usage.tokens.view(), "model_cost_usd": usd(usage.cost_micro_usd),
            "infra_cost_usd": usd(usage.infra_micro_usd), "tool_calls": usage.tool_calls,
            "agent_seconds": usage.agent_seconds}
    if model_calls:  # a period's or a day's counters; a run counts no messages
        view["api_calls"] = usage.api_calls
    return view


def daily_rows(by_day: Mapping[date, Usage], first: date, last: date) -> list[dict[str, Any]]:
    """One row per day from ``first`` to ``last``; a day that counted nothing is a row of zeros."""
    return [{"date": d.isoformat(), **usage_view(by_day.get(d, Usage()))} for d in days(first, last)]


# --------------------------------------------------------------------------- the export


@dataclass(frozen=True)
class ExportedRun:
    """What the export needs of a run: its record's fields and totals."""

    run_id: str
    agent_id: str
    agent_name: str
    parent_run_id: str | None
    status: str
    created_at: datetime
    finished_at: datetime | None
    usage: Usage  # the run's totals (runs = 1)

    def row(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "agent_id": self.agent_id, "agent_name": self.agent_name,
                "parent_run_id": self.parent_run_id, "status": self.status,
                "created_at": self.created_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                **self.usage.tokens.view(), "model_cost_usd": usd(self.usage.cost_micro_usd),
                "infra_cost_usd": usd(self.usage.infra_micro_usd), "agent_seconds": self.usage.agent_seconds,
                "tool_calls": self.usage.tool_calls}


def bounded(runs: Iterable[ExportedRun], max_runs: int = MAX_EXPORT_RUNS) -> list[ExportedRun]:
    """The runs, unless there are more than ``max_runs`` (then a 400: ask for fewer days)."""
    kept: list[ExportedRun] = []
    for run in runs:
        if len(kept) == max_runs:
            raise InvalidRequest(f"The export has more than {max_runs} runs; ask for fewer days.",
                                 details=[{"field": "to", "in": "query",
                                           "message": f"at most {max_runs} runs per export"}])
        kept.append(run)
    return kept


def export_totals(runs: Iterable[ExportedRun]) -> dict[str, Any]:
    total = sum((r.usage for r in runs), Usage())
    return usage_view(total, model_calls=False)


def export_json(runs: list[ExportedRun], first: date, last: date) -> dict[str, Any]:
    return {"from": first.isoformat(), "to": last.isoformat(), "items": [r.row() for r in runs],
            "totals": export_totals(runs)}


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with ``'``
    (agent names are the workspace's own text)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def export_csv(runs: Iterable[ExportedRun]) -> str:
    """A header row, then one row per run (RFC 4180, CRLF line ends)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for run in runs:
        row = run.row()
        writer.writerow([_cell(row[column]) for column in EXPORT_COLUMNS])
    return out.getvalue()
