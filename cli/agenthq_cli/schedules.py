"""``agenthq schedules …``: an agent's runs on a cron, in a time zone (members and up)."""

from __future__ import annotations

from typing import Any

import typer

from agenthq_cli.session import print_json, workspace_api

schedules_app = typer.Typer(help="Runs of an agent on a cron, in a time zone.", no_args_is_help=True)


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
    api = workspace_api()
    body: dict[str, Any] = {"cron": cron, "timezone": timezone, "input": input, "enabled": not disabled}
    if session:
        body["session_id"] = session
    print_json(api.call("POST", api.workspace_path(f"/agents/{agent}/schedules"), json=body))


@schedules_app.command("list")
def schedules_list(agent: str = typer.Option("", help="Only this agent's."),
                   json_output: bool = typer.Option(False, "--json", help="The schedules as JSON.")) -> None:
    """The workspace's schedules, with their next and last fire."""
    api = workspace_api()
    items: list[dict[str, Any]] = api.every_item(api.workspace_path("/schedules"), {"agent_id": agent} if agent else {})
    if json_output:
        print_json(items)
        return
    for s in items:
        state = "on " if s["enabled"] else "off"
        typer.echo(f"{s['id']}  {state}  {s['cron']!r} {s['timezone']}  agent {s['agent_id']}  "
                   f"next {s.get('next_fire') or '-'}  last {_last(s)}")


@schedules_app.command("show")
def schedules_show(schedule: str) -> None:
    api = workspace_api()
    print_json(api.call("GET", api.workspace_path(f"/schedules/{schedule}")))


@schedules_app.command("enable")
def schedules_enable(schedule: str) -> None:
    api = workspace_api()
    print_json(api.call("PATCH", api.workspace_path(f"/schedules/{schedule}"), json={"enabled": True}))


@schedules_app.command("disable")
def schedules_disable(schedule: str) -> None:
    api = workspace_api()
    print_json(api.call("PATCH", api.workspace_path(f"/schedules/{schedule}"), json={"enabled": False}))


@schedules_app.command("remove")
def schedules_remove(schedule: str) -> None:
    """Delete a schedule (from EventBridge Scheduler too)."""
    api = workspace_api()
    api.call("DELETE", api.workspace_path(f"/schedules/{schedule}"))
    typer.echo(f"removed {schedule}")
