"""The workspace: settings and tier, members and roles, API keys, offboarding."""

from fastapi import Response

from agenthq import workspaces
from agenthq.errors import Conflict
from agenthq.http import Cursor, Limit, WorkspacePrincipal, create_app, documented, lambda_handler
from agenthq.pagination import Page, limit_param
from agenthq.responses import ApiKey, Invitation, ListOf, Member, NewApiKey, OffboardingWorkspace, Workspace
from agenthq.services import get_services
from agenthq.workspaces import ApiKeyCreate, MemberInvite, MemberUpdate, WorkspaceUpdate

app = create_app("workspaces")


@app.get("/workspaces/{wid}", response_model=Workspace)
def get_workspace(principal: WorkspacePrincipal) -> dict:
    return workspaces.get_workspace(principal)


@app.patch("/workspaces/{wid}", response_model=Workspace)
def update_workspace(body: WorkspaceUpdate, principal: WorkspacePrincipal) -> dict:
    return workspaces.update_workspace(principal, body)


@app.delete("/workspaces/{wid}", status_code=202, response_model=OffboardingWorkspace)
def delete_workspace(principal: WorkspacePrincipal) -> dict:
    return workspaces.delete_workspace(get_services(), principal)


@app.get("/workspaces/{wid}/members", response_model=ListOf[Member])
def list_members(principal: WorkspacePrincipal, cursor: str | None = Cursor, limit: int | None = Limit) -> Page:
    return workspaces.list_members(principal, cursor, limit_param(limit))


@app.get("/workspaces/{wid}/invitations", response_model=ListOf[Invitation])
def list_invitations(principal: WorkspacePrincipal, cursor: str | None = Cursor, limit: int | None = Limit) -> Page:
    return workspaces.list_invitations(get_services(), principal, cursor, limit_param(limit))


@app.post("/workspaces/{wid}/members", status_code=201, response_model=Invitation, responses=documented(Conflict))
def add_member(body: MemberInvite, principal: WorkspacePrincipal) -> dict:
    return workspaces.add_member(get_services(), principal, body)


@app.patch("/workspaces/{wid}/members/{uid}", response_model=Member, responses=documented(Conflict))
def change_member_role(uid: str, body: MemberUpdate, principal: WorkspacePrincipal) -> dict:
    return workspaces.change_member_role(get_services(), principal, uid, body)


@app.delete("/workspaces/{wid}/members/{uid}", status_code=204, responses=documented(Conflict))
def remove_member(uid: str, principal: WorkspacePrincipal) -> Response:
    workspaces.remove_member(get_services(), principal, uid)
    return Response(status_code=204)


@app.get("/workspaces/{wid}/api-keys", response_model=ListOf[ApiKey])
def list_api_keys(principal: WorkspacePrincipal, cursor: str | None = Cursor, limit: int | None = Limit) -> Page:
    return workspaces.list_api_keys(principal, cursor, limit_param(limit))


@app.post("/workspaces/{wid}/api-keys", status_code=201, response_model=NewApiKey)
def create_api_key(body: ApiKeyCreate, principal: WorkspacePrincipal) -> dict:
    return workspaces.create_api_key(get_services(), principal, body)


@app.delete("/workspaces/{wid}/api-keys/{kid}", status_code=204)
def revoke_api_key(kid: str, principal: WorkspacePrincipal) -> Response:
    workspaces.revoke_api_key(get_services(), principal, kid)
    return Response(status_code=204)


handler = lambda_handler(app)
