"""The operator's routes (/v1/admin/…, AWS_IAM): workspaces, tiers, offboarding, cost against price."""

from fastapi import Query

from agenthq.admin import workspaces as admin
from agenthq.admin.workspaces import TierChange
from agenthq.http import CurrentOperator, Cursor, Limit, create_app, lambda_handler
from agenthq.pagination import Page, limit_param
from agenthq.services import get_services

app = create_app("admin")


@app.get("/admin/workspaces")
def list_workspaces(operator: CurrentOperator, cursor: str | None = Cursor, limit: int | None = Limit) -> Page:
    return admin.list_workspaces(operator, cursor, limit_param(limit))


@app.get("/admin/workspaces/{wid}")
def get_workspace(wid: str, operator: CurrentOperator) -> dict:
    return admin.get_workspace(get_services(), operator, wid)


@app.patch("/admin/workspaces/{wid}")
def change_tier(wid: str, body: TierChange, operator: CurrentOperator) -> dict:
    return admin.change_tier(get_services(), operator, wid, body)


@app.delete("/admin/workspaces/{wid}", status_code=202)
def offboard_workspace(wid: str, operator: CurrentOperator) -> dict:
    return admin.offboard(get_services(), operator, wid)


@app.get("/admin/usage")
def usage_report(operator: CurrentOperator, period: str = Query(default="month", pattern="^month$"),
                 month: str | None = Query(default=None, max_length=7), cursor: str | None = Cursor,
                 limit: int | None = Limit) -> dict:
    return admin.usage_report(get_services(), operator, month, cursor, limit_param(limit))


handler = lambda_handler(app)
