"""The ``agenthq`` command (console script ``agenthq = agenthq_cli.main:app``).

One Typer app; each audience has a sub-app: ``agenthq admin …`` for the
operator (:mod:`agenthq_cli.admin`). User commands (login, runs) join as
sub-apps of their own.
"""

from __future__ import annotations

import typer

from agenthq_cli import __version__
from agenthq_cli.account import verify_email, whoami
from agenthq_cli.admin import admin_app
from agenthq_cli.approvals import approvals_app
from agenthq_cli.mcp import mcp_app
from agenthq_cli.members import members_app
from agenthq_cli.schedules import schedules_app
from agenthq_cli.sessions import sessions_app
from agenthq_cli.user import agents_app, keys_app, login, runs_app, usage, workspaces
from agenthq_cli.webhooks import webhooks_app

app = typer.Typer(name="agenthq", help="AgentHQ from the command line.", no_args_is_help=True,
                  add_completion=False)
app.add_typer(admin_app, name="admin")
app.command()(login)
app.command()(workspaces)
app.command()(usage)
app.command()(whoami)
app.command("verify-email")(verify_email)
app.add_typer(agents_app, name="agents")
app.add_typer(runs_app, name="runs")
app.add_typer(keys_app, name="keys")
app.add_typer(members_app, name="members")
app.add_typer(approvals_app, name="approvals")
app.add_typer(schedules_app, name="schedules")
app.add_typer(sessions_app, name="sessions")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(mcp_app, name="mcp")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agenthq {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """AgentHQ: Claude agents as a service."""


if __name__ == "__main__":
    app()
