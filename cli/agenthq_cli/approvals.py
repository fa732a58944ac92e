"""``agenthq approvals list|approve|deny``: tool calls waiting for a person's decision."""

from __future__ import annotations

import json
from typing import Any

import typer

from agenthq_cli.session import print_json, workspace_api

approvals_app = typer.Typer(help="Tool calls waiting for a person's approval.", no_args_is_help=True)

STATUSES = ("pending", "approved", "denied", "expired", "cancelled")


@approvals_app.command("list")
def approvals_list(status: str = typer.Option("pending", help=f"One of: {', '.join(STATUSES)}, or all."),
                   run: str = typer.Option("", "--run", help="Only this run's (and the runs it delegated to)."),
                   json_output: bool = typer.Option(False, "--json", help="The approvals as JSON.")) -> None:
    """The workspace's approvals, newest first (pending ones by default)."""
    api = workspace_api()
    params: dict[str, Any] = {**({"status": status} if status != "all" else {}), **({"run_id": run} if run else {})}
    items: list[dict[str, Any]] = api.every_item(api.workspace_path("/approvals"), params)
    if json_output:
        print_json(items)
        return
    if not items:
        typer.echo("No approvals." if status == "all" else f"No {status} approvals.")
    for item in items:
        # the tool's input is the model's: printed as JSON, on one line, cut short
        typer.echo(f"{item['id']}  {item['status']:<9}  {item['tool']}  run {item['run_id']}  "
                   f"expires {item['expires_at']}  input {json.dumps(item['input'])[:80]}")


@approvals_app.command("approve")
def approvals_approve(approval: str = typer.Argument(..., help="The approval's id."),
                      reason: str = typer.Option("", help="Why (kept with the decision).")) -> None:
    """Approve a pending tool call: it runs."""
    _decide(approval, "approve", reason)


@approvals_app.command("deny")
def approvals_deny(approval: str = typer.Argument(..., help="The approval's id."),
                   reason: str = typer.Option("", help="Why: the model is told.")) -> None:
    """Deny a pending tool call: the model gets an error with the reason, and the run goes on."""
    _decide(approval, "deny", reason)


def _decide(approval: str, decision: str, reason: str) -> None:
    api = workspace_api()
    body = {"decision": decision, **({"reason": reason} if reason else {})}
    decided = api.call("POST", api.workspace_path(f"/approvals/{approval}"), json=body)
    typer.echo(f"{decided['id']} {decided['status']} ({decided['tool']}, run {decided['run_id']})")
