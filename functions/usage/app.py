"""Usage: a workspace's usage against its tier's limits, the daily series, the
per-run export (the billing feed) and its usage alerts. Read-only."""

from fastapi import Query, Response

from agenthq.http import Cursor, Limit, WorkspacePrincipal, create_app, download, lambda_handler
from agenthq.pagination import Page, limit_param
from agenthq.responses import Alert, DailyUsage, ListOf, UsageExport, UsageSummary
from agenthq.services import get_services
from agenthq.usage import api as usage

app = create_app("usage")

# Inclusive UTC dates, YYYY-MM-DD (checked by agenthq.usage.report).
From = Query(default=None, alias="from", max_length=10)
To = Query(default=None, alias="to", max_length=10)


@app.get("/workspaces/{wid}/usage", response_model=UsageSummary)
def usage_summary(principal: WorkspacePrincipal, period: str = Query(default="month", max_length=10)) -> dict:
    return usage.usage_summary(get_services(), principal, period)


@app.get("/workspaces/{wid}/usage/daily", response_model=DailyUsage)
def daily_usage(principal: WorkspacePrincipal, first: str | None = From, last: str | None = To) -> dict:
    return usage.daily_usage(get_services(), principal, first, last)


@app.get("/workspaces/{wid}/usage/export", response_model=None,
         responses={200: {"model": UsageExport, "content": {"text/csv": {}}}})
def usage_export(principal: WorkspacePrincipal, format: str = Query(default="json", max_length=10),
                 first: str | None = From, last: str | None = To) -> dict | Response:
    export = usage.usage_export(get_services(), principal, format, first, last)
    if isinstance(export.body, str):
        return download(export.body, "text/csv; charset=utf-8", export.filename)
    return export.body


@app.get("/workspaces/{wid}/alerts", response_model=ListOf[Alert])
def list_alerts(principal: WorkspacePrincipal, cursor: str | None = Cursor, limit: int | None = Limit) -> Page:
    return usage.list_alerts(principal, cursor, limit_param(limit))


handler = lambda_handler(app)
