"""The usage API as the workspace sees it (DESIGN §5), read-only: the summary
of a period against the tier's limits, the daily series, the per-run export
(the billing feed) and the stored alerts. Each needs ``usage:read`` (viewers
and up; API keys that hold it) and reads only the caller's workspace, through
its tenant scope. The arithmetic is in ``agenthq.usage.report``.

Reads, no Scan:
- summary: the Workspace item (tier, agent count), the day's and the month's
  ``Quota`` items, the ``RunSlots`` item (concurrent runs), the
  ``LiveConnectionCount`` item (live connections), the ``PendingApprovals``
  item (approvals waiting for a decision), the period's usage
  counters (one Query over its shards);
- daily: one Query over the range's day counters (``DAY#<from>`` … ``DAY#<to>``);
- export: one Query over the runs made in the range — a ULID starts with its
  time, so the dates are a key range of ``RUN#<id>`` — plus one of the agents'
  names; a run's totals are on its item (what its ledger entries add up to);
- alerts: a page of gsi1 ``WS#<id>#ALERTS``, newest first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agenthq.context import Principal, Scope
from agenthq.pagination import Page
from agenthq.store import tenant_scope, ws_pk
from agenthq.store.items import Agent, LiveConnectionCount, PendingApprovals, Run, RunSlots, ScheduleCount, Workspace
from agenthq.tiers import limits_for
from agenthq.usage import alerts, counters, quota, report
from agenthq.usage.vector import Usage

if TYPE_CHECKING:
    from agenthq.clock import Clock

def usage_summary(clock: Clock, principal: Principal, period: str) -> dict[str, Any]:
    """The period's (``day`` or ``month``) metered totals and each enforced limit."""
    principal.require(Scope.usage_read)
    period = report.period_param(period)
    at = clock.now()
    wid = principal.workspace_id
    with tenant_scope(wid):
        workspace = Workspace.load(wid)
        runs_today = quota.runs_today(wid, at)
        month = quota.month_quota(wid, at)
        slots = RunSlots.get_or_none(*RunSlots.key(wid))
        metered = counters.read(wid, counters.day(at) if period == "day" else counters.month(at))
        live = LiveConnectionCount.get_or_none(*LiveConnectionCount.key(wid))
        approvals = PendingApprovals.get_or_none(*PendingApprovals.key(wid))
        schedules = ScheduleCount.get_or_none(*ScheduleCount.key(wid))
    month_numbers = report.MonthQuota(
        used_tokens=int(month.used_tokens), committed_tokens=int(month.committed_tokens),
        used_micro_usd=int(month.used_micro_usd), committed_micro_usd=int(month.committed_micro_usd),
    ) if month is not None else report.MonthQuota()
    limits = limits_for(workspace.tier, workspace.limit_overrides)
    slot_numbers = report.Slots(running=int(slots.running), waiting=int(slots.waiting)) if slots else report.Slots()
    measured = report.measured_limits(limits, at, runs_today, month_numbers, slot_numbers, int(workspace.agent_count),
                                      max(0, int(live.open)) if live is not None else 0,
                                      int(schedules.total) if schedules is not None else 0,
                                      pending_approvals=max(0, int(approvals.pending)) if approvals else 0,
                                      webhooks=int(workspace.webhook_count or 0),
                                      mcp_servers=int(workspace.mcp_server_count or 0))
    return {"workspace_id": wid, **report.summary(period, at, workspace.tier, measured, metered)}


def daily_usage(clock: Clock, principal: Principal, first: str | None, last: str | None) -> dict[str, Any]:
    """One row per day from ``first`` to ``last`` (inclusive, at most 92 days)."""
    principal.require(Scope.usage_read)
    start, end = report.date_range(first, last, clock.now().date(), report.MAX_DAILY_DAYS)
    wid = principal.workspace_id
    with tenant_scope(wid):
        by_day = counters.read_days(wid, start, end)
    rows = report.daily_rows(by_day, start, end)
    total = sum(by_day.values(), Usage())
    return {"from": start.isoformat(), "to": end.isoformat(), "items": rows, "totals": report.usage_view(total)}


@dataclass(frozen=True)
class Export:
    """The export as the edge sends it: a JSON body, or a CSV file to download."""

    body: dict[str, Any] | str
    filename: str = ""


def usage_export(clock: Clock, principal: Principal, export_format: str, first: str | None,
                 last: str | None) -> Export:
    """One row per run made from ``first`` to ``last`` (UTC dates, at most 31
    days and 5,000 runs), with the totals of those rows."""
    principal.require(Scope.usage_read)
    export_format = report.export_format_param(export_format)
    start, end = report.date_range(first, last, clock.now().date(), report.MAX_EXPORT_DAYS)
    wid = principal.workspace_id
    with tenant_scope(wid):
        runs = report.bounded(_exported_runs(wid, *report.run_id_bounds(start, end)))
    if export_format == "json":
        return Export(report.export_json(runs, start, end))
    return Export(report.export_csv(runs), filename=f"agenthq-usage-{wid}-{start}-{end}.csv")


def _exported_runs(workspace_id: str, lowest: str, highest: str) -> Iterator[report.ExportedRun]:
    names = {a.id: a.name for a in Agent.query(ws_pk(workspace_id), Agent.sk.startswith("AGENT#"))}
    for run in Run.query(ws_pk(workspace_id), Run.sk.between(f"RUN#{lowest}", f"RUN#{highest}"),
                         consistent_read=True):
        yield report.ExportedRun(
            run_id=run.id, agent_id=run.agent_id, agent_name=names.get(run.agent_id, ""),
            parent_run_id=run.parent_run_id, status=run.status, created_at=run.created_at,
            finished_at=run.finished_at, usage=Usage.of(run) + Usage(runs=1))


def list_alerts(principal: Principal, cursor: str | None, limit: int) -> Page:
    """The workspace's usage alerts (80% and 100% of a limit), newest first."""
    principal.require(Scope.usage_read)
    with tenant_scope(principal.workspace_id):
        return alerts.list_alerts(principal.workspace_id, cursor, limit)
