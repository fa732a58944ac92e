"""MCP servers: a workspace's own remote MCP servers, whose tools its agents use
(``mcp__<server>__<tool>``). Header values are write-only secrets (agenthq.mcp)."""

from fastapi import Response

from agenthq.errors import Conflict, PlanLimit
from agenthq.http import Cursor, Limit, WorkspacePrincipal, create_app, documented, lambda_handler
from agenthq.mcp import servers
from agenthq.mcp.servers import McpServerCreate
from agenthq.pagination import Page, limit_param
from agenthq.responses import ListOf, McpServer
from agenthq.services import get_services

app = create_app("mcp_servers")


@app.get("/workspaces/{wid}/mcp-servers", response_model=ListOf[McpServer])
def list_mcp_servers(principal: WorkspacePrincipal, cursor: str | None = Cursor, limit: int | None = Limit) -> Page:
    return servers.list_servers(principal, cursor, limit_param(limit))


@app.post("/workspaces/{wid}/mcp-servers", status_code=201, response_model=McpServer,
          responses=documented(PlanLimit, Conflict))
def register_mcp_server(body: McpServerCreate, principal: WorkspacePrincipal) -> dict:
    return servers.register_server(get_services(), principal, body)


@app.get("/workspaces/{wid}/mcp-servers/{mid}", response_model=McpServer)
def get_mcp_server(mid: str, principal: WorkspacePrincipal) -> dict:
    return servers.get_server(principal, mid)


@app.post("/workspaces/{wid}/mcp-servers/{mid}/refresh", response_model=McpServer)
def refresh_mcp_server(mid: str, principal: WorkspacePrincipal) -> dict:
    return servers.refresh_server(get_services(), principal, mid)


@app.delete("/workspaces/{wid}/mcp-servers/{mid}", status_code=204, responses=documented(Conflict))
def delete_mcp_server(mid: str, principal: WorkspacePrincipal) -> Response:
    servers.delete_server(get_services(), principal, mid)
    return Response(status_code=204)


handler = lambda_handler(app)
