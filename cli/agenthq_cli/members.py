"""``agenthq members …``: who is in the workspace, with which role, and whom it has invited."""

from __future__ import annotations

import typer

from agenthq_cli.session import print_json, workspace_api

members_app = typer.Typer(help="The workspace's members and invitations (inviting, roles: admins).",
                          no_args_is_help=True)

ROLES = ("owner", "admin", "member", "viewer")


def _role(value: str) -> str:
    if value not in ROLES:
        raise typer.BadParameter(f"one of {', '.join(ROLES)}")
    return value


@members_app.command("list")
def members_list() -> None:
    """The members and their roles (every page)."""
    api = workspace_api()
    print_json(api.every_item(api.workspace_path("/members"), {"limit": 100}))


@members_app.command("invite")
def members_invite(email: str, role: str = typer.Option("member", callback=_role, help=", ".join(ROLES))) -> None:
    """Invite an address: it becomes a member when its owner logs in naming this workspace (after signing
    up, if they have no account); the invitation lapses after 7 days."""
    api = workspace_api()
    print_json(api.call("POST", api.workspace_path("/members"), json={"email": email, "role": role}))


@members_app.command("invitations")
def members_invitations() -> None:
    """The pending invitations (every page)."""
    api = workspace_api()
    print_json(api.every_item(api.workspace_path("/invitations"), {"limit": 100}))


@members_app.command("role")
def members_role(user_id: str, role: str = typer.Argument(..., callback=_role, help=", ".join(ROLES))) -> None:
    """Change a member's role (their open live connections are closed)."""
    api = workspace_api()
    print_json(api.call("PATCH", api.workspace_path(f"/members/{user_id}"), json={"role": role}))


@members_app.command("remove")
def members_remove(member: str = typer.Argument(..., help="A member's user id, or an invited e-mail address "
                                                           "(withdraws the invitation).")) -> None:
    """Remove a member (their access ends at once) or withdraw an invitation."""
    api = workspace_api()
    api.call("DELETE", api.workspace_path(f"/members/{member}"))
    typer.echo(f"removed {member}")
