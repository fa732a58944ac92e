"""``agenthq mcp``: the workspace's MCP servers (add, list, refresh, remove)."""

from __future__ import annotations

import os
from typing import Any

import typer

from agenthq_cli.session import Api, fail, print_json, workspace_api

mcp_app = typer.Typer(help="The workspace's MCP servers, whose tools agents use as mcp__<server>__<tool>.",
                      no_args_is_help=True)


def _server_id(api: Api, server: str) -> str:
    """An id as it is; a name looked up among the workspace's servers."""
    cursor: str | None = None
    while True:
        page = api.call("GET", api.workspace_path("/mcp-servers"),
                        params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        for item in page["items"]:
            if server in (item["id"], item["name"]):
                return str(item["id"])
        cursor = page.get("next_cursor")
        if not cursor:
            fail(f"no MCP server named {server!r} in this workspace")


def _show(server: dict[str, Any]) -> None:
    status = server["status"]
    state = status["state"] + (f": {status['message']}" if status.get("message") else "")
    typer.echo(f"{server['name']} ({server['id']}) {server['url']}")
    typer.echo(f"  status {state} (checked {status['checked_at']})")
    if server["header_names"]:
        typer.echo(f"  headers {', '.join(server['header_names'])} (values are never shown)")
    for tool in server["tools"]:
        typer.echo(f"  {tool['name']}  {tool['description'].splitlines()[0] if tool['description'] else ''}")
    if status.get("skipped_tools"):
        typer.echo(f"  {status['skipped_tools']} tools left out: "
                   + "; ".join(f"{s['name']}: {s['reason']}" for s in status.get("skipped", [])))


@mcp_app.command("add")
def mcp_add(name: str = typer.Argument(..., help="Lowercase letters, digits and '-'."),
            url: str = typer.Argument(..., help="The server's Streamable HTTP endpoint."),
            header: list[str] = typer.Option([], "--header", help="'Name: value', sent with every request."),
            bearer_from_env: str = typer.Option("", help="Send Authorization: Bearer <the value of this variable> "
                                                         "(keeps the token out of your shell history)."),
            json_output: bool = typer.Option(False, "--json", help="The server as JSON.")) -> None:
    """Register an MCP server: AgentHQ connects and lists its tools."""
    headers: dict[str, str] = {}
    for given in header:
        key, sep, value = given.partition(":")
        if not sep or not key.strip():
            fail(f"a header is 'Name: value', not {given.split(':')[0]!r}")
        headers[key.strip()] = value.strip()
    if bearer_from_env:
        token = os.environ.get(bearer_from_env)
        if not token:
            fail(f"${bearer_from_env} is not set")
        headers["Authorization"] = f"Bearer {token}"
    api = workspace_api()
    body: dict[str, Any] = {"name": name, "url": url, **({"headers": headers} if headers else {})}
    server = api.call("POST", api.workspace_path("/mcp-servers"), json=body)
    print_json(server) if json_output else _show(server)


@mcp_app.command("list")
def mcp_list(json_output: bool = typer.Option(False, "--json", help="The servers as JSON.")) -> None:
    """The workspace's MCP servers, their tools and whether the last connection worked."""
    api = workspace_api()
    servers = api.call("GET", api.workspace_path("/mcp-servers"), params={"limit": 100})["items"]
    if json_output:
        print_json(servers)
        return
    if not servers:
        typer.echo("no MCP servers")
    for server in servers:
        _show(server)


@mcp_app.command("refresh")
def mcp_refresh(server: str = typer.Argument(..., help="The server's name or id."),
                json_output: bool = typer.Option(False, "--json", help="The server as JSON.")) -> None:
    """Connect again and take the tool list the server has now."""
    api = workspace_api()
    refreshed = api.call("POST", api.workspace_path(f"/mcp-servers/{_server_id(api, server)}/refresh"))
    print_json(refreshed) if json_output else _show(refreshed)


@mcp_app.command("remove")
def mcp_remove(server: str = typer.Argument(..., help="The server's name or id.")) -> None:
    """Delete the server and its headers' secret."""
    api = workspace_api()
    server_id = _server_id(api, server)
    api.call("DELETE", api.workspace_path(f"/mcp-servers/{server_id}"))
    typer.echo(f"removed {server} ({server_id})")
