"""``agenthq webhooks …``: the workspace's webhook endpoints and their delivery logs (admins)."""

from __future__ import annotations

import typer

from agenthq_cli.session import print_json, workspace_api

webhooks_app = typer.Typer(help="The workspace's webhooks and their deliveries (admins).", no_args_is_help=True)

EVENTS = ("run.succeeded", "run.failed", "run.cancelled", "run.timed_out", "run.paused", "approval.requested",
          "usage.alert", "session.idle")


@webhooks_app.command("add")
def webhooks_add(url: str,
                 event: list[str] = typer.Option(["run.succeeded", "run.failed"], "--event",
                                                 help=f"An event type to receive (repeat it): {', '.join(EVENTS)}."),
                 description: str = typer.Option("", help="What the endpoint is for.")) -> None:
    """Register an endpoint; its signing secret (whsec_…) is shown only now."""
    api = workspace_api()
    body = {"url": url, "events": event, **({"description": description} if description else {})}
    print_json(api.call("POST", api.workspace_path("/webhooks"), json=body))


@webhooks_app.command("list")
def webhooks_list() -> None:
    api = workspace_api()
    print_json(api.call("GET", api.workspace_path("/webhooks"))["items"])


@webhooks_app.command("remove")
def webhooks_remove(webhook_id: str) -> None:
    api = workspace_api()
    api.call("DELETE", api.workspace_path(f"/webhooks/{webhook_id}"))
    typer.echo(f"removed {webhook_id}")


@webhooks_app.command("test")
def webhooks_test(webhook_id: str) -> None:
    """Send a webhook.test event (one attempt); `deliveries` shows how it went."""
    api = workspace_api()
    print_json(api.call("POST", api.workspace_path(f"/webhooks/{webhook_id}/test")))


@webhooks_app.command("deliveries")
def webhooks_deliveries(webhook_id: str, retry: str = typer.Option("", help="Deliver this delivery id again.")
                        ) -> None:
    """The endpoint's delivery log, newest first (or, with --retry, one more attempt of a delivery)."""
    api = workspace_api()
    if retry:
        print_json(api.call("POST", api.workspace_path(f"/webhooks/{webhook_id}/deliveries/{retry}/retry")))
        return
    print_json(api.call("GET", api.workspace_path(f"/webhooks/{webhook_id}/deliveries"))["items"])
