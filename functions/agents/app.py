"""Agents: the built-in personalities, a workspace's agents, their runs, sessions and messages."""

from fastapi import Header, Response

from agenthq import agents, messaging
from agenthq.agents import AgentCreate, AgentUpdate
from agenthq.approvals import api as approvals
from agenthq.approvals.api import ApprovalDecision, ApprovalStatus
from agenthq.errors import Conflict, PlanLimit, ServiceUnavailable, SessionBusy
from agenthq.http import (
    AgentIdFilter,
    CurrentPrincipal,
    Cursor,
    EventsAfter,
    EventsLimit,
    Limit,
    RunIdFilter,
    WorkspacePrincipal,
    create_app,
    documented,
    lambda_handler,
)
from agenthq.pagination import Page, limit_param
from agenthq.responses import (
    Agent,
    AgentVersion,
    Approval,
    ListOf,
    Message,
    Personality,
    Run,
    RunEvents,
    Session,
    SessionEvents,
    TranscriptMessage,
)
from agenthq.runs import api as runs
from agenthq.runs.api import IDEMPOTENCY_KEY, RunLaunchRequest, RunStatus
from agenthq.services import get_services
from agenthq.sessions import api as sessions
from agenthq.sessions.api import SessionCreate, SessionMessage, SessionUpdate
from agenthq.verification import EmailUnverified
from agenthq.versions import api as versions
from agenthq.versions.api import RollbackRequest

app = create_app("agents")

IdempotencyKey = Header(default=None, alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY.pattern,
                        description="The same key and body give back the same run, for 24 hours.")


@app.get("/personalities", response_model=ListOf[Personality])
def list_personalities(principal: CurrentPrincipal) -> dict:
    return agents.list_personality_views()


@app.get("/workspaces/{wid}/agents", response_model=ListOf[Agent])
def list_agents(principal: WorkspacePrincipal, cursor: str | None = Cursor, limit: int | None = Limit) -> Page:
    return agents.list_agents(principal, cursor, limit_param(limit))


@app.post("/workspaces/{wid}/agents", status_code=201, response_model=Agent, responses=documented(PlanLimit, Conflict))
def create_agent(body: AgentCreate, principal: WorkspacePrincipal) -> dict:
    return agents.create_agent(get_services(), principal, body)


@app.get("/workspaces/{wid}/agents/{aid}", response_model=Agent)
def get_agent(aid: str, principal: WorkspacePrincipal) -> dict:
    return agents.get_agent(principal, aid)


@app.patch("/workspaces/{wid}/agents/{aid}", response_model=Agent, responses=documented(Conflict))
def update_agent(aid: str, body: AgentUpdate, principal: WorkspacePrincipal) -> dict:
    return agents.update_agent(get_services(), principal, aid, body)


@app.delete("/workspaces/{wid}/agents/{aid}", status_code=204, responses=documented(Conflict))
def delete_agent(aid: str, principal: WorkspacePrincipal) -> Response:
    agents.delete_agent(principal, aid)
    return Response(status_code=204)


@app.get("/workspaces/{wid}/agents/{aid}/versions", response_model=ListOf[AgentVersion])
def list_agent_versions(aid: str, principal: WorkspacePrincipal, cursor: str | None = Cursor,
                        limit: int | None = Limit) -> Page:
    return versions.list_versions(principal, aid, cursor, limit_param(limit))


@app.get("/workspaces/{wid}/agents/{aid}/versions/{version}", response_model=AgentVersion)
def get_agent_version(aid: str, version: str, principal: WorkspacePrincipal) -> dict:
    return versions.get_version(principal, aid, version)


@app.post("/workspaces/{wid}/agents/{aid}/rollback", response_model=Agent, responses=documented(Conflict))
def rollback_agent(aid: str, body: RollbackRequest, principal: WorkspacePrincipal) -> dict:
    return versions.rollback(get_services(), principal, aid, body)


@app.get("/workspaces/{wid}/messages", response_model=ListOf[Message])
def list_messages(principal: WorkspacePrincipal, agent_id: str | None = AgentIdFilter,
                  cursor: str | None = Cursor, limit: int | None = Limit) -> Page:
    return messaging.list_messages(principal, agent_id, cursor, limit_param(limit))


@app.post("/workspaces/{wid}/agents/{aid}/runs", status_code=202, response_model=Run,
          responses=documented(Conflict, EmailUnverified, ServiceUnavailable))
def launch_run(aid: str, body: RunLaunchRequest, principal: WorkspacePrincipal,
               idempotency_key: str | None = IdempotencyKey) -> dict:
    return runs.launch_run(get_services(), principal, aid, body, idempotency_key)


@app.get("/workspaces/{wid}/runs", response_model=ListOf[Run])
def list_runs(principal: WorkspacePrincipal, status: RunStatus | None = None,
              agent_id: str | None = AgentIdFilter, cursor: str | None = Cursor,
              limit: int | None = Limit) -> Page:
    return runs.list_runs(principal, status, agent_id, cursor, limit_param(limit))


@app.get("/workspaces/{wid}/runs/{rid}", response_model=Run)
def get_run(rid: str, principal: WorkspacePrincipal) -> dict:
    return runs.get_run(principal, rid)


@app.get("/workspaces/{wid}/runs/{rid}/events", response_model=RunEvents)
def list_run_events(rid: str, principal: WorkspacePrincipal, after: int = EventsAfter,
                    limit: int = EventsLimit) -> dict:
    return runs.list_events(principal, rid, after, limit)


@app.post("/workspaces/{wid}/runs/{rid}/cancel", status_code=202, response_model=Run, responses=documented(Conflict))
def cancel_run(rid: str, principal: WorkspacePrincipal) -> dict:
    return runs.cancel_run(get_services(), principal, rid)


@app.post("/workspaces/{wid}/runs/{rid}/resume", status_code=202, response_model=Run, responses=documented(Conflict))
def resume_run(rid: str, principal: WorkspacePrincipal) -> dict:
    return runs.resume_run(get_services(), principal, rid)


@app.get("/workspaces/{wid}/approvals", response_model=ListOf[Approval])
def list_approvals(principal: WorkspacePrincipal, status: ApprovalStatus | None = None,
                   run_id: str | None = RunIdFilter, cursor: str | None = Cursor, limit: int | None = Limit) -> Page:
    return approvals.list_approvals(principal, status, run_id, cursor, limit_param(limit))


@app.get("/workspaces/{wid}/approvals/{apid}", response_model=Approval)
def get_approval(apid: str, principal: WorkspacePrincipal) -> dict:
    return approvals.get_approval(principal, apid)


@app.post("/workspaces/{wid}/approvals/{apid}", response_model=Approval, responses=documented(Conflict))
def decide_approval(apid: str, body: ApprovalDecision, principal: WorkspacePrincipal) -> dict:
    return approvals.decide(get_services(), principal, apid, body)

@app.post("/workspaces/{wid}/agents/{aid}/sessions", status_code=201, response_model=Session)
def create_session(aid: str, body: SessionCreate, principal: WorkspacePrincipal) -> dict:
    return sessions.create_session(get_services(), principal, aid, body)


@app.get("/workspaces/{wid}/sessions", response_model=ListOf[Session])
def list_sessions(principal: WorkspacePrincipal, agent_id: str | None = AgentIdFilter,
                  cursor: str | None = Cursor, limit: int | None = Limit) -> Page:
    return sessions.list_sessions(principal, agent_id, cursor, limit_param(limit))


@app.get("/workspaces/{wid}/sessions/{sid}", response_model=Session)
def get_session(sid: str, principal: WorkspacePrincipal) -> dict:
    return sessions.get_session(principal, sid)


@app.patch("/workspaces/{wid}/sessions/{sid}", response_model=Session)
def rename_session(sid: str, body: SessionUpdate, principal: WorkspacePrincipal) -> dict:
    return sessions.rename_session(get_services(), principal, sid, body)


@app.delete("/workspaces/{wid}/sessions/{sid}", status_code=204, responses=documented(SessionBusy))
def delete_session(sid: str, principal: WorkspacePrincipal) -> Response:
    sessions.delete_session(principal, sid)
    return Response(status_code=204)


@app.post("/workspaces/{wid}/sessions/{sid}/messages", status_code=202, response_model=Run,
          responses=documented(SessionBusy, EmailUnverified, ServiceUnavailable))
def send_session_message(sid: str, body: SessionMessage, principal: WorkspacePrincipal,
                         idempotency_key: str | None = IdempotencyKey) -> dict:
    return sessions.send_message(get_services(), principal, sid, body, idempotency_key)


@app.get("/workspaces/{wid}/sessions/{sid}/messages", response_model=ListOf[TranscriptMessage])
def list_session_messages(sid: str, principal: WorkspacePrincipal, cursor: str | None = Cursor,
                          limit: int | None = Limit) -> Page:
    return sessions.list_transcript(principal, sid, cursor, limit_param(limit))


@app.get("/workspaces/{wid}/sessions/{sid}/events", response_model=SessionEvents)
def list_session_events(sid: str, principal: WorkspacePrincipal, after: int = EventsAfter,
                        limit: int = EventsLimit) -> dict:
    return sessions.list_events(principal, sid, after, limit)


handler = lambda_handler(app)
