"""``agenthq schedules …``: an agent's runs on a cron, in a time zone (members and up)."""

from __future__ import annotations

import json
import os
from typing import Any

import typer

from agenthq_cli.session import Api, Profile

schedules_app = typer.Typer(help="Runs of an agent on a cron, in a time zone.", no_args_is_help=True)


def _api() -> Api:
    profile = Profile.load()
    profile.workspace_id = os.environ.get("AGENTHQ_WORKSPACE_ID") or profile.workspace_id
    return Api(profile)


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _last(schedule: dict[str, Any]) -> str:
    fire = schedule.get("last_fire")
    if not fire:
        return "-"
    why = f" ({fire['reason']})" if fire.get("reason") else ""
    return f"{fire['at']} {fire['status']}{why}"


@schedules_app.command("add")
def schedules_add(agent: str = typer.Argument(..., help="The agent's id."),
                  cron: str = typer.Option(..., help='Five fields, e.g. "0 9 * * MON-FRI".'),
                  timezone: str = typer.Option("UTC", help="An IANA time zone, e.g. Europe/Paris."),
                  input: str = typer.Option(..., "--input", help="What each run asks the agent."),  # noqa: A002
                  session: str = typer.Option("", help="Post it into this session instead (its id)."),
                  disabled: bool = typer.Option(False, "--disabled", help="Create it switched off.")) -> None:
    """Add a schedule; it fires at its cron's times in its time zone."""
    api = _api()
    body: dict[str, Any] = {"cron": cron, "timezone": timezone, "input": input, "enabled": not disabled}
    if session:
        body["session_id"] = session
    _print(api.call("POST", api.workspace_path(f"/agents/{agent}/schedules"), json=body))


@schedules_app.command("list")
def schedules_list(agent: str = typer.Option("", help="Only this agent's."),
                   json_output: bool = typer.Option(False, "--json", help="The schedules as JSON.")) -> None:
    """The workspace's schedules, with their next and last fire."""
    api = _api()
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"agent_id": agent} if agent else {}
    while True:
        page = api.call("GET", api.workspace_path("/schedules"), params=params)
        items += page["items"]
        if not page.get("next_cursor"):
            break
        params["cursor"] = page["next_cursor"]
    if json_output:
        _print(items)
        return
    for s in items:
        state = "on " if s["enabled"] else "off"
        typer.echo(f"{s['id']}  {state}  {s['cron']!r} {s['timezone']}  agent {s['agent_id']}  "
                   f"next {s.get('next_fire') or '-'}  last {_last(s)}")


@schedules_app.command("show")
def schedules_show(schedule: str) -> None:
    api = _api()
    _print(api.call("GET", api.workspace_path(f"/schedules/{schedule}")))


@schedules_app.command("enable")
def schedules_enable(schedule: str) -> None:
    api = _api()
    _print(api.call("PATCH", api.workspace_path(f"/schedules/{schedule}"), json={"enabled": True}))


@schedules_app.command("disable")
def schedules_disable(schedule: str) -> None:
    api = _api()
    _print(api.call("PATCH", api.workspace_path(f"/schedules/{schedule}"), json={"enabled": False}))


@schedules_app.command("remove")
def schedules_remove(schedule: str) -> None:
    """Delete a schedule (from EventBridge Scheduler too)."""
    api = _api()
    api.call("DELETE", api.workspace_path(f"/schedules/{schedule}"))
    typer.echo(f"removed {schedule}")
