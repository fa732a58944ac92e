"""What a run sees of MCP tools and how it calls them.

An agent lists MCP tools by name (``mcp__<server>__<tool>``); a run offers the
model those its workspace's servers still have (as last listed and checked),
and a call goes to the server through the connector. Every problem — a server
or tool that is gone, the run's MCP call limit (the tier's
``mcp_calls_per_run``), a refused address, a timeout, a JSON-RPC error, an
oversized result — is an ``is_error`` result for the model, never a failed run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agenthq.errors import InvalidRequest, NotFound
from agenthq.mcp.names import is_mcp_tool, split, tool_name
from agenthq.mcp.servers import headers_of, servers_by_name
from agenthq.store.items import McpServer, Workspace
from agenthq.tiers import limits_for
from agenthq.tools.registry import ToolResult

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from agenthq.mcp.connector import McpConnector
    from agenthq.mcp.vault import HeaderVault


def wanted(allowed: Iterable[str]) -> list[str]:
    """The MCP tool names among an agent's tools."""
    return [name for name in allowed if is_mcp_tool(name)]


def definitions(workspace_id: str, allowed: Iterable[str]) -> list[dict[str, Any]]:
    """The model's definitions of the agent's MCP tools that exist now (in the agent's order)."""
    names = wanted(allowed)
    if not names:
        return []  # no read at all for an agent without MCP tools
    offered = _offered(servers_by_name(workspace_id))
    return [{"name": name, "description": offered[name]["description"] or name,
             "input_schema": offered[name]["input_schema"]} for name in names if name in offered]


def ensure_known(workspace_id: str, names: Iterable[str], field: str = "tools") -> None:
    """Refuse (400) MCP tool names that no server of this workspace offers."""
    mcp_names = wanted(names)
    if not mcp_names:
        return
    offered = _offered(servers_by_name(workspace_id))
    unknown = [name for name in mcp_names if name not in offered]
    if unknown:
        raise InvalidRequest("Unknown MCP tools.", details=[{
            "field": field, "in": "body",
            "message": f"no MCP server of this workspace offers {unknown[:5]} (register the server, or refresh it)"}])


def server_of(name: str) -> str | None:
    """The server's name in an MCP tool name (for the ledger), None for other tools."""
    parts = split(name)
    return parts[0] if parts else None


def execute(connector: McpConnector, vault: HeaderVault, workspace_id: str, name: str, arguments: Any,
            allowed: Iterable[str], calls_made: int) -> ToolResult:
    """Call MCP tool ``name`` for a run of ``workspace_id``. Never raises for a server's problems."""
    if name not in set(allowed):
        return ToolResult(f"Tool '{name[:80]}' is not allowed for this agent.", is_error=True)
    parts = split(name)
    if parts is None:
        return ToolResult(f"Unknown tool '{name[:80]}'.", is_error=True)
    server_name, remote = parts
    if not isinstance(arguments, dict):
        return ToolResult("Invalid input: input must be a JSON object.", is_error=True)
    try:
        workspace = Workspace.load(workspace_id)
    except NotFound:  # being offboarded: its runs are being cancelled
        return ToolResult("The workspace is being deleted.", is_error=True)
    limit = limits_for(workspace.tier, workspace.limit_overrides).mcp_calls_per_run
    if calls_made >= limit:
        return ToolResult(f"This run has made {calls_made} MCP tool calls, the most its plan allows per run "
                          f"({limit}).", is_error=True)
    server = _server(workspace_id, server_name)
    if server is None or not any(t["name"] == remote for t in server.tools or []):
        return ToolResult(f"The MCP tool '{name}' is not available (its server was removed or no longer "
                          "lists it).", is_error=True)
    try:
        headers = headers_of(vault, server)
    except Exception:  # noqa: BLE001 - the secret is gone or unreadable: the model hears it, the run goes on
        logger.warning("the headers of MCP server %s could not be read", server.id, exc_info=True)
        return ToolResult(f"The MCP server '{server_name}' could not be called: its headers could not be read.",
                          is_error=True)
    outcome = connector.call_tool(server.url, headers, remote, arguments)
    return ToolResult(outcome.text, is_error=outcome.is_error)


def _server(workspace_id: str, server_name: str) -> McpServer | None:
    return servers_by_name(workspace_id).get(server_name)


def _offered(servers: Mapping[str, McpServer]) -> dict[str, dict[str, Any]]:
    return {tool_name(s.name, t["name"]): t for s in servers.values() for t in s.tools or []}
