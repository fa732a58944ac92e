"""``agenthq admin …``: the operator's commands.

Each request goes to the operator routes (``/v1/admin/…``) signed with SigV4
by the operator's AWS credentials (botocore's chain: environment variables,
``--profile``/``AWS_PROFILE``, SSO, instance roles). On AWS the operator's IAM
policy must allow ``execute-api:Invoke`` on those routes (docs/operations.md);
locally, ``make dev`` prints the credentials it accepts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import typer

from agenthq_cli.endpoints import EndpointError, check_private
from agenthq_cli.session import print_json
from agenthq_cli.signing import NoCredentials, SigV4, credentials_from_chain

DEFAULT_API_URL = "http://127.0.0.1:3000/v1"

admin_app = typer.Typer(help="Operator commands (signed with your AWS credentials).", no_args_is_help=True)
workspace_app = typer.Typer(help="Workspaces: read them, set their tier and enterprise overrides.",
                            no_args_is_help=True)
admin_app.add_typer(workspace_app, name="workspace")


class OperatorApi:
    """The operator routes of one AgentHQ API, signed with the operator's credentials."""

    def __init__(self, api_url: str, region: str, profile: str | None) -> None:
        try:  # a signed request read in transit can be replayed for minutes (SigV4 allows 15 min of skew)
            check_private(api_url, "the API")
        except EndpointError as refused:
            _fail(str(refused), code=2)
        self.api_url = api_url.rstrip("/")
        self.region = region
        self.profile = profile

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            credentials = credentials_from_chain(self.profile)
        except NoCredentials as exc:
            _fail(str(exc), code=2)
        with httpx.Client(base_url=self.api_url, auth=SigV4(credentials, self.region), timeout=30) as client:
            try:
                response = client.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                _fail(f"Could not reach {self.api_url}: {exc}")
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message = f"{response.status_code} {error['code']}: {error['message']}"
                for detail in error.get("details", []):
                    message += f"\n  {detail.get('field')}: {detail.get('message')}"
            except (ValueError, KeyError, TypeError):
                message = f"{response.status_code}: {response.text[:500]}"
            _fail(message)
        return response.json()


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _api(ctx: typer.Context) -> OperatorApi:
    return ctx.obj


@admin_app.callback()
def admin(ctx: typer.Context,
          api_url: str = typer.Option(DEFAULT_API_URL, envvar="AGENTHQ_API_URL", help="The API's base URL (…/v1)."),
          region: str = typer.Option("us-east-1", envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
                                     help="The API's AWS region (part of the signature)."),
          profile: str = typer.Option(None, envvar="AWS_PROFILE", help="AWS profile to sign with.")) -> None:
    """Operator commands, signed with your AWS credentials (SigV4)."""
    ctx.obj = OperatorApi(api_url, region, profile)


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value``: an integer stays an integer; anything else (money: ``2500.50``) is sent as text."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise typer.BadParameter(f"{text!r}: expected key=value, e.g. api_rps=500")
    value = value.strip()
    return name.strip(), int(value) if value.lstrip("-").isdigit() else value


@workspace_app.command("list")
def list_workspaces(ctx: typer.Context, limit: int = typer.Option(50, min=1, max=100)) -> None:
    """Every workspace, newest first (all pages)."""
    items, cursor = [], None
    while True:
        page = _api(ctx).request("GET", "/admin/workspaces",
                                 params={"limit": limit, **({"cursor": cursor} if cursor else {})})
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    print_json({"items": items})


@workspace_app.command("get")
def get_workspace(ctx: typer.Context, workspace_id: str = typer.Argument(..., metavar="WID")) -> None:
    """A workspace: tier, overrides, limits, usage plan, and this month's cost against its price."""
    print_json(_api(ctx).request("GET", f"/admin/workspaces/{workspace_id}"))


@workspace_app.command("set-tier")
def set_tier(ctx: typer.Context, workspace_id: str = typer.Argument(..., metavar="WID"),
             tier: str = typer.Argument(..., metavar="TIER", help="free, starter, pro or enterprise"),
             override: list[str] = typer.Option(None, "--override", metavar="KEY=VALUE",
                                                help="An enterprise limit (repeat): api_rps=500, "
                                                     "price_usd_per_month=4800, …"),
             clear_overrides: bool = typer.Option(False, "--clear-overrides",
                                                  help="Drop the enterprise overrides.")) -> None:
    """Set a workspace's tier (and, for enterprise, its overrides: they replace the old ones)."""
    body: dict[str, Any] = {"tier": tier}
    if override:
        body["limit_overrides"] = dict(parse_override(o) for o in override)
    elif clear_overrides:
        body["limit_overrides"] = {}
    print_json(_api(ctx).request("PATCH", f"/admin/workspaces/{workspace_id}", json=body))


@admin_app.command("usage")
def usage(ctx: typer.Context, month: str = typer.Option(None, help="YYYY-MM (default: this month)"),
          as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON.")) -> None:
    """Every workspace's month: model + infrastructure cost against its price."""
    rows, cursor, report = [], None, {}
    while True:
        params = {"period": "month", "limit": 100, **({"month": month} if month else {}),
                  **({"cursor": cursor} if cursor else {})}
        report = _api(ctx).request("GET", "/admin/usage", params=params)
        rows += report["items"]
        cursor = report.get("next_cursor")
        if not cursor:
            break
    totals = {name: str(sum((Decimal(r[name]) for r in rows), Decimal("0")))
              for name in ("price_usd", "model_cost_usd", "infra_cost_usd", "cost_usd", "margin_usd")}
    if as_json:
        print_json({"period": "month", "month": report.get("month"), "items": rows, "totals": totals})
        return
    typer.echo(f"{'workspace':<28} {'tier':<10} {'price':>10} {'model':>12} {'infra':>12} {'margin':>12}")
    for r in rows:
        typer.echo(f"{r['workspace_id']:<28} {r['tier']:<10} {r['price_usd']:>10} {r['model_cost_usd']:>12} "
                   f"{r['infra_cost_usd']:>12} {r['margin_usd']:>12}")
    typer.echo(f"{'total (' + str(report.get('month')) + ')':<39} {totals['price_usd']:>10} "
               f"{totals['model_cost_usd']:>12} {totals['infra_cost_usd']:>12} {totals['margin_usd']:>12}")
