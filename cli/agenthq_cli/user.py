"""The user's commands: login, workspaces, agents, runs (launch, watch, events, cancel), API keys, usage."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import typer

from agenthq_cli.endpoints import EndpointError, announced_live_url, check_private, host_of, is_loopback, live_url_of
from agenthq_cli.session import DEFAULT_API_URL, Api, Profile, fail, print_json, workspace_api
from agenthq_cli.watch import RunWatcher, WatchError, exit_status

agents_app = typer.Typer(help="A workspace's agents.", no_args_is_help=True)
runs_app = typer.Typer(help="Launch runs and watch them live.", no_args_is_help=True)
keys_app = typer.Typer(help="The workspace's API keys (admins).", no_args_is_help=True)


def _workspace_of(token: str) -> str:
    """The workspace an access token names (its ``wid`` claim; the server verifies the token, not us)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims.get("wid") or "")
    except (IndexError, ValueError):
        return ""


def login(email: str = typer.Option(..., prompt=True, help="Your e-mail."),
          password: str = typer.Option(..., prompt=True, hide_input=True, help="Your password."),
          workspace: str = typer.Option("", help="The workspace to act on (default: your first)."),
          api_url: str = typer.Option(DEFAULT_API_URL, envvar="AGENTHQ_API_URL", help="The REST API (…/v1)."),
          ws_url: str = typer.Option("", envvar="AGENTHQ_WS_URL",
                                     help="The WebSocket API (default: the one the API announces).")) -> None:
    """Log in; the tokens are kept in your config dir (mode 0600)."""
    try:
        check_private(api_url, "the API")
        if ws_url:
            check_private(ws_url, "the WebSocket API")
    except EndpointError as refused:
        fail(str(refused))
    if not ws_url:
        announced = announced_live_url(api_url)
        if announced and (is_loopback(host_of(api_url)) or not is_loopback(host_of(announced))):
            ws_url = announced  # checked again before it is used (runs watch)
    profile = Profile(api_url=api_url, ws_url=ws_url, email=email)
    body: dict[str, Any] = {"email": email, "password": password, **({"workspace_id": workspace} if workspace else {})}
    try:
        tokens = Api(profile).http.post("/auth/login", json=body)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {profile.api_url}: {exc}")
    if tokens.status_code != 200:
        fail("login refused: " + (tokens.json().get("error", {}).get("message", tokens.text)
                                  if tokens.headers.get("content-type", "").startswith("application/json")
                                  else tokens.text))
    profile.access_token = tokens.json()["access_token"]
    profile.refresh_token = tokens.json()["refresh_token"]
    profile.workspace_id = _workspace_of(profile.access_token)
    path = profile.save()
    typer.echo(f"Logged in as {email} (workspace {profile.workspace_id}); token saved in {path}")


def workspaces() -> None:
    """Your workspaces and roles."""
    print_json(workspace_api().call("GET", "/me")["memberships"])


def usage(period: str = typer.Option("month", help="day or month."),
          json_output: bool = typer.Option(False, "--json", help="The whole answer as JSON.")) -> None:
    """What the workspace used against each limit of its tier."""
    api = workspace_api()
    summary = api.call("GET", api.workspace_path("/usage"), params={"period": period})
    if json_output:
        print_json(summary)
        return
    typer.echo(f"{summary.get('tier', '')} tier, {period} to {summary.get('as_of', '')}")
    for name, limit in summary.get("limits", {}).items():
        percent = limit.get("percent")
        shown = f"{percent}%" if percent is not None else "-"
        typer.echo(f"  {name:<22} {limit.get('used')!s:>14} of {limit.get('limit')!s:<14} {shown:>7}"
                   f"  resets {limit.get('resets_at') or '-'}")
    used = summary.get("usage", {})
    typer.echo(f"  model cost ${used.get('model_cost_usd')}, infrastructure ${used.get('infra_cost_usd')}, "
               f"{used.get('runs')} runs, {used.get('tool_calls')} tool calls")


@agents_app.command("list")
def agents_list() -> None:
    """The workspace's agents."""
    api = workspace_api()
    print_json(api.call("GET", api.workspace_path("/agents"))["items"])


@agents_app.command("create")
def agents_create(name: str, personality: str = typer.Option(..., help="coordinator, architect, sre, …")) -> None:
    """Create an agent from a personality."""
    api = workspace_api()
    print_json(api.call("POST", api.workspace_path("/agents"), json={"name": name, "personality": personality}))


@agents_app.command("versions")
def agents_versions(agent: str = typer.Argument(..., help="The agent's id."),
                    json_output: bool = typer.Option(False, "--json", help="Every version as JSON.")) -> None:
    """The agent's versions, newest first: every change to an agent makes one."""
    api = workspace_api()
    versions: list[dict[str, Any]] = api.every_item(api.workspace_path(f"/agents/{agent}/versions"), {"limit": 100})
    if json_output:
        print_json(versions)
        return
    for version in versions:
        made = version["change"] + (f" to v{version['restored_version']}" if version.get("restored_version") else "")
        definition = version["definition"]
        typer.echo(f"v{version['version']:<5} {version['created_at']}  {made:<16} {definition.get('name')}: "
                   f"{definition.get('model')}, tools {','.join(definition.get('tools') or []) or '-'}, "
                   f"{'own prompt' if definition.get('own_system_prompt') else 'personality prompt'}")


@agents_app.command("rollback")
def agents_rollback(agent: str = typer.Argument(..., help="The agent's id."),
                    version: int = typer.Argument(..., min=1, help="The version to make current again."),
                    json_output: bool = typer.Option(False, "--json", help="The agent as JSON.")) -> None:
    """Make an earlier version current again: a new version equal to it (the history only grows)."""
    api = workspace_api()
    before = api.call("GET", api.workspace_path(f"/agents/{agent}"))
    after = api.call("POST", api.workspace_path(f"/agents/{agent}/rollback"), json={"version": version})
    if json_output:
        print_json(after)
    elif after["version"] == before["version"]:
        typer.echo(f"{after['name']} is already as version {version} was (version {after['version']}): "
                   "nothing changed.")
    else:
        typer.echo(f"{after['name']} is now version {after['version']}, equal to version {version}.")


@runs_app.command("launch")
def runs_launch(agent: str = typer.Argument(..., help="The agent's id."),
                input: str = typer.Option(..., "--input", help="What to ask the agent."),  # noqa: A002
                idempotency_key: str = typer.Option("", help="Makes a retried launch start one run."),
                watch: bool = typer.Option(False, "--watch", help="Watch it until it ends."),
                json_lines: bool = typer.Option(False, "--json", help="With --watch: one JSON event per line."),
                exit_with_status: bool = typer.Option(False, "--exit-status", help="With --watch: exit 0/1/2.")) -> None:
    """Launch a run of an agent."""
    api = workspace_api()
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    run = api.call("POST", api.workspace_path(f"/agents/{agent}/runs"), json={"input": input}, headers=headers)
    if not watch:
        print_json(run)
        return
    if not json_lines:
        typer.echo(f"run {run['id']}")
    _watch(api, run["id"], 0, json_lines, exit_with_status)


@runs_app.command("watch")
def runs_watch(run: str = typer.Argument(..., help="The run's id."),
               after: int = typer.Option(0, min=0, help="Show events after this seq."),
               json_lines: bool = typer.Option(False, "--json", help="One JSON event per line."),
               exit_with_status: bool = typer.Option(False, "--exit-status",
                                                     help="Exit 0 if it succeeds, 1 if it fails, 2 if cancelled.")
               ) -> None:
    """Print a run's events live until it ends (reconnecting where it left off)."""
    _watch(workspace_api(), run, after, json_lines, exit_with_status)


def _watch(api: Api, run_id: str, after: int, json_lines: bool, exit_with_status: bool) -> None:
    from rich.console import Console

    console = Console(stderr=False, highlight=False)
    headers = api.profile.auth_headers()
    if "Authorization" in headers:
        api.call("GET", api.workspace_path(f"/runs/{run_id}"))  # refreshes an expired token; 404s clearly
        headers = api.profile.auth_headers()
    try:
        live_url = live_url_of(api.profile)
    except EndpointError as refused:
        fail(str(refused))
    watcher = RunWatcher(live_url, headers, run_id, after=after,
                         on_reconnect=lambda seq: None if json_lines else
                         console.print(f"[dim]… reconnecting after seq {seq}[/dim]"))
    last = ""
    try:
        for event in watcher.events():
            last = event["type"]
            if json_lines:
                typer.echo(json.dumps(event))
            else:
                console.print(_line(event))
    except WatchError as error:
        fail(str(error))
    if exit_with_status:
        raise typer.Exit(exit_status(last))


def _line(event: dict[str, Any]) -> str:
    """One event as Rich markup; what the event says (written by models, tools and tenants) is
    escaped, so it prints as it is and can neither style the terminal nor break the markup."""
    from rich.markup import escape

    data = event.get("data") or {}
    detail = ", ".join(f"{k}={v}" for k, v in data.items() if isinstance(v, (str, int, float)))[:120]
    style = {"run.succeeded": "green", "run.failed": "red", "run.cancelled": "yellow"}.get(event["type"], "cyan")
    truncated = " [dim](truncated: see `agenthq runs events`)[/dim]" if event.get("truncated") else ""
    return (f"[dim]{int(event['seq']):>4}[/dim] [{style}]{escape(str(event['type']))}[/{style}] "
            f"{escape(detail)}{truncated}")


@runs_app.command("events")
def runs_events(run: str, after: int = typer.Option(0, min=0)) -> None:
    """A run's stored events (all of them, in seq order)."""
    api = workspace_api()
    items: list[dict[str, Any]] = []
    while True:
        page = api.call("GET", api.workspace_path(f"/runs/{run}/events"), params={"after": after})
        items += page["items"]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    print_json(items)


@runs_app.command("cancel")
def runs_cancel(run: str) -> None:
    """Cancel a run (it ends at its next step)."""
    api = workspace_api()
    print_json(api.call("POST", api.workspace_path(f"/runs/{run}/cancel")))


@keys_app.command("create")
def keys_create(name: str, scope: list[str] = typer.Option(["runs:read", "runs:write", "agents:read"], "--scope")
                ) -> None:
    """Create an API key; its secret is shown only now."""
    api = workspace_api()
    print_json(api.call("POST", api.workspace_path("/api-keys"), json={"name": name, "scopes": scope}))


@keys_app.command("list")
def keys_list() -> None:
    api = workspace_api()
    print_json(api.call("GET", api.workspace_path("/api-keys"))["items"])


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    api = workspace_api()
    api.call("DELETE", api.workspace_path(f"/api-keys/{key_id}"))
    typer.echo(f"revoked {key_id}")
