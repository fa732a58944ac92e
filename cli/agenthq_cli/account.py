"""Who you are and your e-mail address: ``agenthq whoami``, ``agenthq verify-email``."""

from __future__ import annotations

import json

import httpx
import typer

from agenthq_cli.session import Api, Profile, fail


def whoami(json_output: bool = typer.Option(False, "--json", help="The whole answer (GET /v1/me) as JSON.")) -> None:
    """Who is logged in: your e-mail (and whether it is verified), your workspaces and roles."""
    profile = Profile.load()
    me = Api(profile).call("GET", "/me")
    if json_output:
        typer.echo(json.dumps(me, indent=2))
        return
    user = me["user"]
    verified = "verified" if user.get("email_verified") else "NOT verified"
    typer.echo(f"{user['email']} (e-mail {verified}) at {profile.api_url}")
    if not user.get("email_verified") and me.get("email_verification_required"):
        typer.echo("  A workspace you signed up launches runs once you verify: open the link we mailed you, or "
                   "`agenthq verify-email <token>`; a new mail: `agenthq verify-email --resend`.")
    for membership in me.get("memberships", []):
        current = " (current)" if membership["workspace_id"] == profile.workspace_id else ""
        typer.echo(f"  {membership['workspace_id']}  {membership['role']:<7} {membership['workspace_name']}{current}")


def verify_email(token: str = typer.Argument("", help="The token of the link we mailed you (ahv_…)."),
                 resend: bool = typer.Option(False, "--resend", help="Mail me a new link (once a minute).")) -> None:
    """Verify your e-mail address with the token of the link we mailed you, or ask for a new link."""
    profile = Profile.load()
    api = Api(profile)
    if resend:
        answer = api.call("POST", "/auth/verify-email/resend")
        typer.echo(f"A new link was mailed to {answer['email']}." if answer.get("sent")
                   else f"{answer['email']} is verified already.")
        return
    if not token:
        fail("Give the token of the link we mailed you (or --resend for a new link).")
    try:  # no login needed: the token is the proof
        response = api.http.post("/auth/verify-email", json={"token": token.strip()})
    except httpx.HTTPError as exc:
        fail(f"cannot reach {profile.api_url}: {exc}")
    if response.status_code != 200:
        try:
            error = response.json()["error"]
            fail(f"{error['message']} ({response.status_code} {error['code']})")
        except (ValueError, KeyError, TypeError):
            fail(f"{response.status_code} {response.text[:200]}")
    typer.echo(f"{response.json()['email']} is verified.")
