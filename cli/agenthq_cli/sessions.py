"""``agenthq sessions``: conversations with an agent that go on across runs (DESIGN §9).

``new`` starts one, ``send`` sends the next message and waits for the answer (``--watch``
streams the turn's events as they happen), ``watch`` follows the session's one event cursor
live, ``list`` shows them.
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from agenthq_cli.endpoints import EndpointError, live_url_of
from agenthq_cli.session import Api, fail, print_json, workspace_api
from agenthq_cli.watch import TERMINAL, SessionWatcher, WatchError

sessions_app = typer.Typer(help="Conversations with an agent across runs.", no_args_is_help=True)

RUN_ENDS = ("succeeded", "failed", "cancelled", "timed_out")


@sessions_app.command("new")
def sessions_new(agent: str = typer.Argument(..., help="The agent's id."),
                 title: str = typer.Option("", help="A title for the session."),
                 agent_version: str = typer.Option("", help="A version number of the agent, or latest "
                                                            "(default: its version now).")) -> None:
    """Start a session with an agent; prints it (its id is what `send` and `watch` take)."""
    body: dict[str, Any] = {**({"title": title} if title else {})}
    if agent_version:
        body["agent_version"] = agent_version if agent_version == "latest" else int(agent_version)
    api = workspace_api()
    print_json(api.call("POST", api.workspace_path(f"/agents/{agent}/sessions"), json=body))


@sessions_app.command("list")
def sessions_list(agent: str = typer.Option("", help="Only this agent's."),
                  json_output: bool = typer.Option(False, "--json", help="Every session as JSON.")) -> None:
    """The workspace's sessions, newest first."""
    api = workspace_api()
    found: list[dict[str, Any]] = api.every_item(api.workspace_path("/sessions"),
                                                 {"limit": 100, **({"agent_id": agent} if agent else {})})
    if json_output:
        print_json(found)
        return
    for session in found:
        typer.echo(f"{session['id']}  {session['status']:<8} {session['turns']:>3} turns  "
                   f"agent {session['agent_id']} v{session['agent_version']}  ${session['usage']['cost_usd']}  "
                   f"{session.get('title') or ''}")


@sessions_app.command("send")
def sessions_send(session: str = typer.Argument(..., help="The session's id."),
                  input: str = typer.Option(..., "--input", help="Your next message."),  # noqa: A002
                  on_busy: str = typer.Option("enqueue", help="enqueue (wait for the turn before) or reject."),
                  idempotency_key: str = typer.Option("", help="Makes a retried send start one run."),
                  watch: bool = typer.Option(False, "--watch", help="Stream the turn's events as they happen."),
                  timeout: float = typer.Option(600.0, help="Seconds to wait for the answer.")) -> None:
    """Send the next message and print the agent's answer when its run ends (exit 1 if it failed)."""
    api = workspace_api()
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    run = api.call("POST", api.workspace_path(f"/sessions/{session}/messages"),
                   json={"input": input, "on_busy": on_busy}, headers=headers)
    if watch:
        _watch(api, session, _first_seq_of(api, session, run["id"]), until_run=run["id"])
    deadline = time.monotonic() + timeout
    while run["status"] not in RUN_ENDS:
        if time.monotonic() > deadline:
            fail(f"run {run['id']} is still {run['status']} after {timeout:g} s")
        time.sleep(0.5)
        run = api.call("GET", api.workspace_path(f"/runs/{run['id']}"))
    if run["status"] != "succeeded":
        fail(f"run {run['id']} ended {run['status']}: {(run.get('error') or {}).get('message', '')}")
    typer.echo(run["output"] or "")


def _first_seq_of(api: Api, session: str, run_id: str) -> int:
    """The session seq just before this run's first event (its run.queued), to watch from there."""
    after = 0
    while True:
        page = api.call("GET", api.workspace_path(f"/sessions/{session}/events"), params={"after": after, "limit": 500})
        for event in page["items"]:
            if event["run_id"] == run_id:
                return int(event["seq"]) - 1
        if page["next_after"] is None:
            return after
        after = page["next_after"]


@sessions_app.command("watch")
def sessions_watch(session: str = typer.Argument(..., help="The session's id."),
                   after: int = typer.Option(0, min=0, help="Show events after this session seq."),
                   json_lines: bool = typer.Option(False, "--json", help="One JSON event per line."),
                   until_idle: bool = typer.Option(False, "--until-idle",
                                                   help="Stop once the session is idle and every event "
                                                        "it has so far was shown.")) -> None:
    """Print the session's events live — every run of it and their delegated children, under one
    seq — reconnecting where it left off."""
    _watch(workspace_api(), session, after, json_lines=json_lines, until_idle=until_idle)


def _watch(api: Api, session: str, after: int, json_lines: bool = False, until_idle: bool = False,
           until_run: str | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=False, highlight=False)
    api.call("GET", api.workspace_path(f"/sessions/{session}"))  # refreshes an expired token; 404s clearly
    headers = api.profile.auth_headers()
    try:
        live_url = live_url_of(api.profile)
    except EndpointError as refused:
        fail(str(refused))

    def until(event: dict[str, Any]) -> bool:
        if until_run is not None:
            return event["type"] in TERMINAL and event["run_id"] == until_run
        if not until_idle or event["type"] != "session.idle":
            return False
        later = api.call("GET", api.workspace_path(f"/sessions/{session}/events"),
                         params={"after": event["seq"], "limit": 1})
        return not later["items"]  # idle, and no turn launched since: all of it was shown

    watcher = SessionWatcher(live_url, headers, session, after=after, until=until)
    try:
        for event in watcher.events():
            if json_lines:
                typer.echo(json.dumps(event))
                continue
            data = event.get("data") or {}
            detail = ", ".join(f"{k}={v}" for k, v in data.items() if isinstance(v, (str, int, float)))[:120]
            console.print(f"[dim]{int(event['seq']):>4}[/dim] [dim]{escape(str(event['run_id'])[-6:])}[/dim] "
                          f"[cyan]{escape(str(event['type']))}[/cyan] {escape(detail)}")
    except WatchError as error:
        fail(str(error))
