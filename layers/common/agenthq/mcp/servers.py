"""A workspace's MCP servers: register, list, get, refresh, delete (DESIGN §9).

Registering checks the URL with the guarded client's rules (public https on
AWS), connects, lists the server's tools and stores them checked
(:mod:`agenthq.mcp.names`); a server that cannot be reached is still stored,
with a ``failed`` status that says why, and a refresh tries again. A refresh
that fails keeps the last tool list it had and says it failed.

Header values go to the vault (one secret per server) before the server's item
is written, and are never returned: a view shows header *names* only. The
server, its name marker and the workspace's count move in one transaction on
the condition that the count is below the tier's ``mcp_servers`` (a 403
``plan_limit`` when it is not) and the name is free (a 409); when the
transaction fails, the secret it made is deleted again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action

from agenthq import ids
from agenthq.context import Principal, Scope
from agenthq.errors import Conflict, InvalidRequest, NotFound, PlanLimit
from agenthq.mcp.connector import McpFailure
from agenthq.mcp.names import SERVER_NAME, check_tools, tool_name
from agenthq.pagination import Page, workspace_page
from agenthq.store import retry_transaction, tenant_scope, transaction
from agenthq.store.items import McpServer, McpServerName, Workspace
from agenthq.tiers import limits_for

if TYPE_CHECKING:
    from agenthq.mcp.connector import McpConnector
    from agenthq.mcp.vault import HeaderVault
    from agenthq.services import Services

MAX_URL_CHARS = 2_048
MAX_HEADERS = 8
MAX_HEADER_VALUE_CHARS = 4_096
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
#: Headers the client sets itself (the transport, the protocol): a tenant may not set them.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
    "trailer", "accept", "accept-encoding", "proxy-authorization", "proxy-connection", "cookie",
    "mcp-session-id", "mcp-protocol-version", "last-event-id",
})
_ATTEMPTS = 8


class McpServerCreate(BaseModel):
    """A server to register: its name (used in tool names ``mcp__<name>__<tool>``), its
    Streamable HTTP URL, and headers to send (secrets: stored encrypted, never shown again)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "tickets", "url": "https://mcp.example.com/mcp",
         "headers": {"Authorization": "Bearer <token>"}}]})

    name: str = Field(min_length=1, max_length=24, pattern=SERVER_NAME.pattern,
                      description="Lowercase letters, digits and '-', starting with a letter.")
    url: str = Field(min_length=1, max_length=MAX_URL_CHARS, pattern=r"^[hH][tT][tT][pP][sS]?://\S+$",
                     description="The server's Streamable HTTP endpoint (https; a public address).")
    headers: dict[str, str] | None = Field(default=None, max_length=MAX_HEADERS,
                                           description="Sent with every request to the server; write-only.")

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, header in (value or {}).items():
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name {name[:64]!r} is not a valid HTTP header name")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by AgentHQ and may not be given")
            if len(header) > MAX_HEADER_VALUE_CHARS:
                raise ValueError(f"header {name!r} is longer than {MAX_HEADER_VALUE_CHARS} characters")
            if not header or any(ord(c) < 0x20 or ord(c) == 0x7F for c in header) or not header.isascii():
                raise ValueError(f"header {name!r} must be non-empty printable ASCII")
        names = [n.lower() for n in (value or {})]
        if len(set(names)) != len(names):
            raise ValueError("a header is given twice (header names are case-insensitive)")
        return value


# --------------------------------------------------------------------------- views


def server_view(server: McpServer) -> dict[str, Any]:
    return {
        "id": server.id,
        "workspace_id": server.workspace_id,
        "name": server.name,
        "url": server.url,
        "header_names": list(server.header_names or []),
        "tools": [{"name": tool_name(server.name, t["name"]), "remote_name": t["name"],
                   "description": t["description"], "input_schema": t["input_schema"]} for t in server.tools or []],
        "status": dict(server.status or {}),
        "created_at": server.created_at.isoformat(),
        "updated_at": server.updated_at.isoformat(),
    }


# --------------------------------------------------------------------------- reading


def load_server(workspace_id: str, server_id: str) -> McpServer:
    """The workspace's server (404 for an unknown id and for another workspace's)."""
    if not ids.is_id(server_id):
        raise NotFound("MCP server not found.")
    server = McpServer.get_or_none(*McpServer.key(workspace_id, server_id))
    if server is None:
        raise NotFound("MCP server not found.")
    return server


def get_server(principal: Principal, server_id: str) -> dict[str, Any]:
    principal.require(Scope.agents_read)
    with tenant_scope(principal.workspace_id):
        Workspace.load(principal.workspace_id)
        return server_view(load_server(principal.workspace_id, server_id))


def list_servers(principal: Principal, cursor: str | None, limit: int) -> Page:
    principal.require(Scope.agents_read)
    with tenant_scope(principal.workspace_id):
        return workspace_page(McpServer, principal.workspace_id, "MCP#", server_view, cursor, limit)


def servers_by_name(workspace_id: str) -> dict[str, McpServer]:
    """Every server of the workspace, by name (at most the tier's ``mcp_servers``: one Query)."""
    return {s.name: s for s in McpServer.query(f"WS#{workspace_id}", McpServer.sk.startswith("MCP#"),
                                               consistent_read=True)}


# --------------------------------------------------------------------------- changing


def register_server(services: Services, principal: Principal, body: McpServerCreate) -> dict[str, Any]:
    principal.require(Scope.agents_write)
    workspace_id = principal.workspace_id
    connector, vault = services.mcp_connector, services.header_vault
    with tenant_scope(workspace_id):
        _max_servers(workspace_id)  # 403 before anything is tried
        if McpServerName.get_or_none(*McpServerName.key(workspace_id, body.name)) is not None:
            raise _name_taken(body.name)
    _check_url(connector, body.url)
    headers = dict(body.headers or {})
    now = services.now()
    server_id = ids.new_id()
    tools, status = _connect(connector, body.name, body.url, headers, now.isoformat())
    secret_arn = vault.put(workspace_id, server_id, headers) if headers else None
    server = McpServer(*McpServer.key(workspace_id, server_id), id=server_id, workspace_id=workspace_id,
                       name=body.name, url=body.url, header_names=list(headers), secret_arn=secret_arn,
                       tools=tools, status=status, created_at=now, updated_at=now)
    marker = McpServerName(*McpServerName.key(workspace_id, body.name), server_id=server_id)
    with tenant_scope(workspace_id):

        def attempt() -> None:
            limit = _max_servers(workspace_id)
            with transaction() as tx:
                tx.save(server, condition=McpServer.pk.does_not_exist())
                tx.save(marker, condition=McpServerName.pk.does_not_exist())
                tx.update(Workspace(*Workspace.key(workspace_id)), actions=[Workspace.mcp_server_count.add(1)],
                          condition=Workspace.pk.exists() & _below(limit))

        def explain() -> None:
            limit = _max_servers(workspace_id)
            if int(Workspace.load(workspace_id).mcp_server_count or 0) >= limit:
                raise _plan_limit(limit)
            if McpServerName.get_or_none(*McpServerName.key(workspace_id, body.name)) is not None:
                raise _name_taken(body.name)

        try:
            _transact(attempt, explain)
        except BaseException:
            if secret_arn:
                vault.delete(secret_arn)  # the server was not stored: neither is its secret
            raise
    return server_view(server)


def refresh_server(services: Services, principal: Principal, server_id: str) -> dict[str, Any]:
    """Connect again and store the tool list the server sends now (or, if that fails, why)."""
    principal.require(Scope.agents_write)
    workspace_id = principal.workspace_id
    with tenant_scope(workspace_id):
        Workspace.load(workspace_id)
        server = load_server(workspace_id, server_id)
    headers = services.header_vault.get(server.secret_arn) if server.secret_arn else {}
    now = services.now()
    try:
        _check_url(services.mcp_connector, server.url)
        tools, status = _connect(services.mcp_connector, server.name, server.url, headers, now.isoformat())
    except InvalidRequest as refused:  # an address that became private since: refused, and said so
        tools, status = None, _failed(now.isoformat(), refused.details[0]["message"])
    actions: list[Action] = [McpServer.status.set(status), McpServer.updated_at.set(now)]
    if status["state"] == "ok":
        actions.append(McpServer.tools.set(tools))
    with tenant_scope(workspace_id):
        try:
            server.update(actions=actions, condition=McpServer.pk.exists())
        except Exception as exc:  # deleted meanwhile
            if McpServer.get_or_none(*McpServer.key(workspace_id, server_id)) is None:
                raise NotFound("MCP server not found.") from exc
            raise
        return server_view(load_server(workspace_id, server_id))


def delete_server(services: Services, principal: Principal, server_id: str) -> None:
    """Delete the server, its name and its secret. Agents that list its tools get
    ``is_error`` results for them (unknown tools) until they are changed."""
    principal.require(Scope.agents_write)
    workspace_id = principal.workspace_id
    with tenant_scope(workspace_id):
        Workspace.load(workspace_id)
        server = load_server(workspace_id, server_id)

        def attempt() -> None:
            with transaction() as tx:
                tx.delete(server, condition=McpServer.pk.exists())
                tx.delete(McpServerName(*McpServerName.key(workspace_id, server.name)),
                          condition=McpServerName.server_id == server.id)
                tx.update(Workspace(*Workspace.key(workspace_id)), actions=[Workspace.mcp_server_count.add(-1)],
                          condition=Workspace.pk.exists())

        def explain() -> None:
            load_server(workspace_id, server_id)  # gone → 404; else a concurrent change: again

        _transact(attempt, explain)
    if server.secret_arn:
        services.header_vault.delete(server.secret_arn)


# --------------------------------------------------------------------------- helpers


def _check_url(connector: McpConnector, url: str) -> None:
    problem = connector.refusal(url)
    if problem is not None:
        raise InvalidRequest("The MCP server's URL is not allowed.",
                             details=[{"field": "url", "in": "body", "message": problem}])


def _connect(connector: McpConnector, name: str, url: str, headers: dict[str, str],
             at: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    try:
        remote = connector.list_tools(url, headers)
    except McpFailure as failure:
        return [], _failed(at, str(failure))
    checked = check_tools(name, remote)
    return checked.tools, {"state": "ok", "checked_at": at, "message": None, "tool_count": len(checked.tools),
                           "skipped_tools": checked.skipped_count, "skipped": checked.skipped}


def _failed(at: str, message: str) -> dict[str, Any]:
    return {"state": "failed", "checked_at": at, "message": message, "tool_count": 0, "skipped_tools": 0,
            "skipped": []}


def _max_servers(workspace_id: str) -> int:
    workspace = Workspace.load(workspace_id)
    limit = limits_for(workspace.tier, workspace.limit_overrides).mcp_servers
    if limit <= 0 or int(workspace.mcp_server_count or 0) >= limit:
        raise _plan_limit(limit)
    return limit


def _below(limit: int) -> Any:
    return Workspace.mcp_server_count.does_not_exist() | (Workspace.mcp_server_count < limit)


def _plan_limit(limit: int) -> PlanLimit:
    noun = "MCP server" if limit == 1 else "MCP servers"
    return PlanLimit(f"Your plan allows {limit} {noun}. Delete one or upgrade your plan.",
                     details=[{"field": "mcp_servers", "message": f"limit is {limit}"}])


def _name_taken(name: str) -> Conflict:
    return Conflict(f"An MCP server named '{name}' already exists in this workspace.",
                    details=[{"field": "name", "message": "already taken"}])


def _transact(attempt: Callable[[], None], explain: Callable[[], None]) -> None:
    def explained(_: TransactWriteError) -> None:
        explain()

    retry_transaction(attempt, explained, attempts=_ATTEMPTS, exhausted=lambda: Conflict(
        "The workspace's MCP servers are being changed concurrently; try again."))


def headers_of(vault: HeaderVault, server: McpServer) -> dict[str, str]:
    return vault.get(server.secret_arn) if server.secret_arn else {}
