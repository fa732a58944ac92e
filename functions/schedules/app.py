"""Schedules: runs of an agent on a cron in a time zone (EventBridge Scheduler fires them)."""

from fastapi import Response

from agenthq.errors import PlanLimit, ServiceUnavailable
from agenthq.http import AgentIdFilter, Cursor, Limit, WorkspacePrincipal, create_app, documented, lambda_handler
from agenthq.pagination import Page, limit_param
from agenthq.responses import ListOf, Schedule
from agenthq.schedules import api as schedules
from agenthq.schedules.api import ScheduleCreate, ScheduleUpdate
from agenthq.services import get_services

app = create_app("schedules")


@app.post("/workspaces/{wid}/agents/{aid}/schedules", status_code=201, response_model=Schedule,
          responses=documented(PlanLimit, ServiceUnavailable))
def create_schedule(aid: str, body: ScheduleCreate, principal: WorkspacePrincipal) -> dict:
    return schedules.create_schedule(get_services(), principal, aid, body)


@app.get("/workspaces/{wid}/schedules", response_model=ListOf[Schedule])
def list_schedules(principal: WorkspacePrincipal, agent_id: str | None = AgentIdFilter, cursor: str | None = Cursor,
                   limit: int | None = Limit) -> Page:
    return schedules.list_schedules(get_services(), principal, agent_id, cursor, limit_param(limit))


@app.get("/workspaces/{wid}/schedules/{scid}", response_model=Schedule)
def get_schedule(scid: str, principal: WorkspacePrincipal) -> dict:
    return schedules.get_schedule(get_services(), principal, scid)


@app.patch("/workspaces/{wid}/schedules/{scid}", response_model=Schedule,
           responses=documented(PlanLimit, ServiceUnavailable))
def update_schedule(scid: str, body: ScheduleUpdate, principal: WorkspacePrincipal) -> dict:
    return schedules.update_schedule(get_services(), principal, scid, body)


@app.delete("/workspaces/{wid}/schedules/{scid}", status_code=204, responses=documented(ServiceUnavailable))
def delete_schedule(scid: str, principal: WorkspacePrincipal) -> Response:
    schedules.delete_schedule(get_services(), principal, scid)
    return Response(status_code=204)


handler = lambda_handler(app)
