"""The webhook routes' logic: register, list, remove, test, the delivery log, redelivery.

Webhooks are managed by admins and owners (``workspace:write``, which API keys never hold): an
endpoint receives the workspace's events, so adding one is as much a matter of trust as adding a
member (docs/decisions.md, 240). A URL is checked when it is registered (the guarded HTTP client's
``check_url``: https and public addresses only on AWS) and again at every connect (``delivery``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pynamodb.exceptions import UpdateError

from agenthq import ids
from agenthq.context import Principal, Scope
from agenthq.errors import Conflict, InvalidRequest, NotFound, PlanLimit
from agenthq.observability import logger
from agenthq.outbound import OutboundPolicy, OutboundRefused, check_url
from agenthq.pagination import Page, workspace_page
from agenthq.store import retry_transaction, tenant_scope, transaction, ws_pk
from agenthq.store.items import Webhook, WebhookDelivery, Workspace
from agenthq.tiers import limits_for
from agenthq.webhooks import events, signing
from agenthq.webhooks.delivery import DELIVERY_TTL, enqueue, new_delivery

if TYPE_CHECKING:
    from pynamodb.expressions.condition import Condition

    from agenthq.outbound import Resolver
    from agenthq.services import Services

EventType = Literal["run.succeeded", "run.failed", "run.cancelled", "run.timed_out", "run.paused",
                    "approval.requested", "usage.alert", "session.idle"]
MAX_URL_CHARS = 2048
_ATTEMPTS = 5


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_CHARS,
                     description="Where events are POSTed: https, a public address (checked at every connect).")
    events: list[EventType] = Field(min_length=1, max_length=len(events.EVENT_TYPES),
                                    description="The event types this endpoint receives.")
    description: str | None = Field(default=None, max_length=500)

    @field_validator("events")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat an event type")
        return value


def webhook_view(webhook: Webhook) -> dict[str, Any]:
    """An endpoint as the API shows it: never its secret."""
    return {"id": webhook.id, "url": webhook.url, "events": list(webhook.events), "description": webhook.description,
            "status": webhook.status, "disabled_reason": webhook.disabled_reason,
            "created_at": webhook.created_at.isoformat()}


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    attempts = [{"at": a.at.isoformat(), "status_code": None if a.status_code is None else int(a.status_code),
                 "error": a.error} for a in delivery.attempts or []]
    return {"id": delivery.id, "webhook_id": delivery.webhook_id, "event_type": delivery.event_type,
            "status": delivery.status, "attempts": attempts,
            "last_status_code": attempts[-1]["status_code"] if attempts else None,
            "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
            "created_at": delivery.created_at.isoformat()}


def create_webhook(services: Services, principal: Principal, body: WebhookCreate, *,
                   resolver: Resolver | None = None) -> dict[str, Any]:
    """Register an endpoint; the answer carries its signing secret, shown this once."""
    principal.require(Scope.workspace_write)
    workspace_id = principal.workspace_id
    try:
        check_url(body.url, OutboundPolicy.from_settings(services.settings), resolver)
    except OutboundRefused as refused:
        raise InvalidRequest(f"This URL cannot receive webhooks: {refused}",
                             details=[{"field": "url", "message": str(refused)}]) from None
    webhook_id = ids.new_id()
    secret = signing.new_secret()
    webhook = Webhook(*Webhook.key(workspace_id, webhook_id), id=webhook_id, workspace_id=workspace_id, url=body.url,
                      events=list(body.events), description=body.description, signing_secret=secret,
                      created_at=services.now(), created_by=principal.subject)
    with tenant_scope(workspace_id):
        def attempt() -> None:
            allowed = _allowed(workspace_id)
            with transaction() as tx:
                tx.save(webhook, condition=Webhook.pk.does_not_exist())
                tx.update(Workspace(*Workspace.key(workspace_id)), actions=[Workspace.webhook_count.add(1)],
                          condition=Workspace.pk.exists() & (Workspace.deleting == False) & _below(allowed))  # noqa: E712

        def explain(_: Exception) -> None:
            workspace = Workspace.load(workspace_id)
            allowed = _allowed(workspace_id)
            if int(workspace.webhook_count or 0) >= allowed:
                raise _plan_limit(allowed)

        retry_transaction(attempt, explain, attempts=_ATTEMPTS, exhausted=lambda: Conflict(
            "The workspace's webhooks are being changed concurrently; try again."))
    logger.info("webhook registered", extra={"workspace_id": workspace_id, "webhook_id": webhook_id})
    return {**webhook_view(webhook), "secret": secret}


def list_webhooks(principal: Principal, cursor: str | None, limit: int) -> Page:
    principal.require(Scope.workspace_write)
    with tenant_scope(principal.workspace_id):
        Workspace.load(principal.workspace_id)
        return workspace_page(Webhook, principal.workspace_id, "WEBHOOK#", webhook_view, cursor, limit)


def delete_webhook(principal: Principal, webhook_id: str) -> None:
    """Remove the endpoint (and give back its place under the limit); its queued deliveries find it gone
    and are dropped, its delivery log is deleted."""
    principal.require(Scope.workspace_write)
    workspace_id = principal.workspace_id
    with tenant_scope(workspace_id):
        Workspace.load(workspace_id)
        _load_webhook(workspace_id, webhook_id)  # 404 for an id that names none (whatever its shape or size)

        def attempt() -> None:
            with transaction() as tx:
                tx.delete(Webhook(*Webhook.key(workspace_id, webhook_id)), condition=Webhook.pk.exists())
                tx.update(Workspace(*Workspace.key(workspace_id)), actions=[Workspace.webhook_count.add(-1)],
                          condition=Workspace.pk.exists())

        def explain(_: Exception) -> None:
            _load_webhook(workspace_id, webhook_id)  # gone → 404; else a concurrent change: again

        retry_transaction(attempt, explain, attempts=_ATTEMPTS, exhausted=lambda: Conflict(
            "The workspace's webhooks are being changed concurrently; try again."))
        _delete_log(workspace_id, webhook_id)


def _delete_log(workspace_id: str, webhook_id: str) -> None:
    """The endpoint's delivery log, page by page (what is left past a failure expires with its TTL)."""
    try:
        for _ in range(100):
            page = list(WebhookDelivery.query(ws_pk(workspace_id),
                                              WebhookDelivery.sk.startswith(WebhookDelivery.prefix(webhook_id)),
                                              limit=25, attributes_to_get=["pk", "sk"]))
            if not page:
                return
            with WebhookDelivery.batch_write() as batch:
                for item in page:
                    batch.delete(item)
    except Exception:  # noqa: BLE001 - the endpoint is gone; its log expires (TTL) if not deleted now
        logger.exception("webhook %s: could not delete its delivery log", webhook_id)


def test_webhook(services: Services, principal: Principal, webhook_id: str) -> dict[str, Any]:
    """A ``webhook.test`` event to this endpoint, through the queue like any delivery (one attempt)."""
    workspace_id = principal.workspace_id
    now = services.now()
    with _endpoint_of(principal, webhook_id) as webhook:
        event = events.Event(workspace_id, events.TEST_EVENT, ids.new_id(), now.isoformat(),
                             {"workspace_id": workspace_id, "webhook_id": webhook.id, "status": "test"})
        delivery = new_delivery(webhook, event, now, attempt_limit=1)
        delivery.save(condition=WebhookDelivery.pk.does_not_exist())
    enqueue(services, delivery)
    return delivery_view(delivery)


def list_deliveries(principal: Principal, webhook_id: str, cursor: str | None, limit: int) -> Page:
    """The endpoint's delivery log, newest first."""
    workspace_id = principal.workspace_id
    with _endpoint_of(principal, webhook_id):
        return workspace_page(WebhookDelivery, workspace_id, WebhookDelivery.prefix(webhook_id), delivery_view,
                              cursor, limit, scan_index_forward=False)


def retry_delivery(services: Services, principal: Principal, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    """Deliver again (one more attempt, now) a delivery that ended, delivered or failed; 409 while pending."""
    workspace_id = principal.workspace_id
    now = services.now()
    with _endpoint_of(principal, webhook_id) as webhook:
        if webhook.status != "active":
            raise Conflict("This endpoint is disabled; register it again to receive deliveries.")
        delivery = WebhookDelivery.get_or_404(*WebhookDelivery.key(workspace_id, webhook_id, delivery_id))
        try:
            delivery.update(actions=[WebhookDelivery.status.set("pending"),
                                     WebhookDelivery.attempt_limit.set(len(delivery.attempts or []) + 1),
                                     WebhookDelivery.next_attempt_at.set(now), WebhookDelivery.updated_at.set(now),
                                     WebhookDelivery.expires_at.set(now + DELIVERY_TTL)],
                            condition=WebhookDelivery.status.is_in("delivered", "failed"))
        except UpdateError:
            if WebhookDelivery.get_or_none(*WebhookDelivery.key(workspace_id, webhook_id, delivery_id)) is None:
                raise NotFound() from None
            raise Conflict("This delivery is still pending; it is attempted again on its own.") from None
    enqueue(services, delivery)
    return delivery_view(delivery)


@contextmanager
def _endpoint_of(principal: Principal, webhook_id: str) -> Iterator[Webhook]:
    """The workspace's endpoint ``webhook_id`` for an admin (403 for others; 404 for no such workspace or
    endpoint), inside the workspace's tenant scope."""
    principal.require(Scope.workspace_write)
    with tenant_scope(principal.workspace_id):
        Workspace.load(principal.workspace_id)
        yield _load_webhook(principal.workspace_id, webhook_id)


def _load_webhook(workspace_id: str, webhook_id: str) -> Webhook:
    return Webhook.get_or_404(*Webhook.key(workspace_id, webhook_id), "Webhook not found.")


def _allowed(workspace_id: str) -> int:
    workspace = Workspace.load(workspace_id)
    allowed = limits_for(workspace.tier, workspace.limit_overrides).webhooks
    if allowed <= 0:
        raise _plan_limit(allowed)
    return allowed


def _below(allowed: int) -> Condition:
    below: Condition = Workspace.webhook_count.does_not_exist() | (Workspace.webhook_count < allowed)
    return below


def _plan_limit(allowed: int) -> PlanLimit:
    noun = "webhook" if allowed == 1 else "webhooks"
    return PlanLimit(f"Your plan allows {allowed} {noun}. Remove one or upgrade your plan.",
                     details=[{"field": "webhooks", "message": f"limit is {allowed}"}])


__all__ = ["WebhookCreate", "create_webhook", "delete_webhook", "delivery_view", "list_deliveries",
           "list_webhooks", "retry_delivery", "test_webhook", "webhook_view"]
