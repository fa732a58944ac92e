"""Deliveries: the table stream's events → the delivery queue → one signed POST per attempt.

Fan-out (``fan_out``, from the table stream): each deliverable event (``events.event_of``) becomes one
``WebhookDelivery`` per active endpoint of its workspace that subscribed to its type. A delivery's id
is derived from the stored event and the endpoint, so a redelivered stream record makes the same
deliveries (a conditional put) and sends no second message unless the first may not have been sent
(no attempt yet: at least once; the receiver dedupes by ``webhook-id``).

An attempt (``attempt``, from the queue): the delivery is claimed (a conditional write: of two copies of
a message, one attempts, the other is dropped), POSTed through the guarded HTTP client (redirects are
not followed, every connect checks the address, 10 s at most), and the attempt is recorded with its
status code. A 2xx is delivered. Otherwise, while the round has attempts left, the next one is due after
the Standard Webhooks reference schedule (:data:`SCHEDULE`: immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 10 h — 27.6 hours in all): the message is hidden that long (``ChangeMessageVisibility``, at most
12 h, so no wait needs a second message or a sweep) and handed back to the queue, which delivers it
again then; after the last, the delivery is ``failed``. An endpoint that has failed every attempt for
:data:`DISABLE_AFTER` is disabled, and the workspace gets an alert (``webhook_disabled``: stored like a
usage alert, sent live as ``usage.alert``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import PutError, UpdateError

from agenthq import ids
from agenthq.observability import logger
from agenthq.outbound import OutboundPolicy, OutboundRefused, guarded_client
from agenthq.store import tenant_scope, ws_pk
from agenthq.store.items import Alert, Webhook, WebhookAttempt, WebhookDelivery, Workspace
from agenthq.store.sizes import utf8_json
from agenthq.webhooks import signing
from agenthq.webhooks.events import Event, event_of

if TYPE_CHECKING:
    from pynamodb.expressions.update import Action

    from agenthq.outbound import Resolver
    from agenthq.services import Services

#: Seconds before each attempt of a round, the first immediately (the Standard Webhooks reference schedule).
SCHEDULE: tuple[int, ...] = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
TIMEOUT_SECONDS = 10.0  # an answer later than this is a failure
DISABLE_AFTER = timedelta(days=3)
DELIVERY_TTL = timedelta(days=30)  # the delivery log keeps a delivery this long after its last change
CLAIM = timedelta(seconds=60)  # longer than an attempt can take (the delivery function's timeout is 30 s)
EARLY = timedelta(seconds=2)  # a message back a little before its due time is on time
ALERT_LIMIT = "webhook_disabled"


@dataclass(frozen=True)
class Outcome:
    """What became of one queue message: ``postpone`` seconds before it comes back, or None (done)."""

    delivery_id: str
    status: str  # delivered | failed | pending | skipped
    postpone: int | None = None


def new_delivery(webhook: Webhook, event: Event, now: datetime, *, attempt_limit: int = len(SCHEDULE),
                 delivery_id: str | None = None) -> WebhookDelivery:
    delivery_id = delivery_id or ids.new_id()
    return WebhookDelivery(*WebhookDelivery.key(webhook.workspace_id, webhook.id, delivery_id), id=delivery_id,
                           webhook_id=webhook.id, workspace_id=webhook.workspace_id, event_type=event.event_type,
                           payload=event.body(), status="pending", attempt_limit=attempt_limit, attempts=[],
                           next_attempt_at=now, created_at=now, updated_at=now, expires_at=now + DELIVERY_TTL)


def message_of(delivery: WebhookDelivery) -> dict[str, str]:
    """A queue message: ids only (the payload stays in the table)."""
    return {"workspace_id": delivery.workspace_id, "webhook_id": delivery.webhook_id, "delivery_id": delivery.id}


def enqueue(services: Services, delivery: WebhookDelivery) -> None:
    services.webhook_queue.send(message_of(delivery))


# --------------------------------------------------------------------------- fan-out (the table stream)


def fan_out(services: Services, new_image: dict[str, Any]) -> int:
    """The deliveries a stream record's new image calls for, stored and queued; how many were queued."""
    event = event_of(new_image)
    if event is None:
        return 0
    now = services.now()
    queued = 0
    with tenant_scope(event.workspace_id):
        workspace = Workspace.get_or_none(*Workspace.key(event.workspace_id), attributes=["deleting"])
        if workspace is None or workspace.deleting:
            return 0  # being offboarded (its runs' last events come now): nothing more is made for it
        webhooks = [w for w in Webhook.query(ws_pk(event.workspace_id), Webhook.sk.startswith("WEBHOOK#"))
                    if w.status == "active" and event.event_type in (w.events or [])]
        for webhook in webhooks:
            delivery_id = _delivery_id(event, webhook)
            delivery = new_delivery(webhook, event, now, delivery_id=delivery_id)
            try:
                delivery.save(condition=WebhookDelivery.pk.does_not_exist())
            except PutError:
                stored = WebhookDelivery.get_or_none(*WebhookDelivery.key(event.workspace_id, webhook.id, delivery_id))
                if stored is None or stored.status != "pending" or stored.attempts:
                    continue  # made and attempted already: this record was delivered before
                delivery = stored  # made, maybe never queued (a crash between the two): queue it (again)
            enqueue(services, delivery)
            queued += 1
    return queued


def _delivery_id(event: Event, webhook: Webhook) -> str:
    """Derived from the stored event and the endpoint; it sorts by the event's time."""
    try:
        ms = int(datetime.fromisoformat(event.at.replace("+0000", "+00:00")).timestamp() * 1000)
    except ValueError:
        ms = 0
    return ids.derived_id(ids.time_prefix(ms) + "0" * 16, event.event_id, webhook.id)


# --------------------------------------------------------------------------- one attempt (the queue)


def attempt(services: Services, message: dict[str, Any], *, resolver: Resolver | None = None) -> Outcome:
    """Attempt the delivery a queue message names, once; what the queue should do with the message."""
    workspace_id = str(message.get("workspace_id") or "")
    webhook_id, delivery_id = str(message.get("webhook_id") or ""), str(message.get("delivery_id") or "")
    if not (ids.is_id(workspace_id) and ids.is_id(webhook_id) and ids.is_id(delivery_id)):
        logger.warning("webhook delivery: a message that names no delivery was dropped")
        return Outcome(delivery_id, "skipped")
    now = services.now()
    with tenant_scope(workspace_id):
        delivery = WebhookDelivery.get_or_none(*WebhookDelivery.key(workspace_id, webhook_id, delivery_id))
        if delivery is None or delivery.status != "pending":
            return Outcome(delivery_id, "skipped")  # removed (with its endpoint, its workspace) or done
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + EARLY:
            return Outcome(delivery_id, "skipped")  # a stray copy: the message that waits for it comes back then
        try:
            delivery.update(actions=[WebhookDelivery.claimed_until.set(now + CLAIM)],
                            condition=(WebhookDelivery.status == "pending") & (
                                WebhookDelivery.claimed_until.does_not_exist() | (WebhookDelivery.claimed_until < now)))
        except UpdateError:
            return Outcome(delivery_id, "skipped")  # another copy of the message is attempting it
        webhook = Webhook.get_or_none(*Webhook.key(workspace_id, webhook_id))
        if webhook is None or webhook.status != "active":
            _record(delivery, now, None, "The endpoint was removed." if webhook is None else "The endpoint is disabled.",
                    final=True)
            return Outcome(delivery_id, "failed")
    status_code, error = _post(services, webhook, delivery, now, resolver)
    delivered = status_code is not None and 200 <= status_code < 300
    with tenant_scope(workspace_id):
        done = len(delivery.attempts or []) + 1
        final = delivered or done >= int(delivery.attempt_limit)
        wait = None if final else SCHEDULE[min(done, len(SCHEDULE) - 1)]
        _record(delivery, now, status_code, error, final=final, delivered=delivered, wait=wait)
        _follow_endpoint(services, webhook, delivered, now)
    logger.info("webhook delivery attempted", extra={"workspace_id": workspace_id, "webhook_id": webhook_id,
                                                     "delivery_id": delivery_id, "status_code": status_code,
                                                     "attempt": done})
    if delivered:
        return Outcome(delivery_id, "delivered")
    return Outcome(delivery_id, "failed" if final else "pending", postpone=wait)


def _post(services: Services, webhook: Webhook, delivery: WebhookDelivery, now: datetime,
          resolver: Resolver | None) -> tuple[int | None, str | None]:
    """One POST: (status code, None), or (None / the code, why it failed) in words safe to show the tenant."""
    body = utf8_json(delivery.payload).encode()
    headers = signing.headers(webhook.signing_secret, delivery.id, int(now.timestamp()), body)
    policy = OutboundPolicy.from_settings(services.settings, timeout_seconds=TIMEOUT_SECONDS)
    try:  # the answer's status is all that counts: its body is never read
        with guarded_client(policy, resolver=resolver) as client, \
                client.stream("POST", webhook.url, content=body, headers=headers) as response:
            pass
    except OutboundRefused as refused:
        return None, str(refused)
    except Exception as exc:  # noqa: BLE001 - any failure to talk to the endpoint is a failed attempt
        return None, _failure(exc)
    if 300 <= response.status_code < 400:
        return response.status_code, "A redirect is not followed; register the final URL."
    if not 200 <= response.status_code < 300:
        return response.status_code, f"The endpoint answered {response.status_code}."
    return response.status_code, None


def _failure(exc: Exception) -> str:
    import httpx2 as httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"No answer within {TIMEOUT_SECONDS:.0f} s."
    if isinstance(exc, httpx.TransportError):
        return "Could not connect to the endpoint."
    return "The request to the endpoint failed."


def _record(delivery: WebhookDelivery, now: datetime, status_code: int | None, error: str | None, *, final: bool,
            delivered: bool = False, wait: int | None = None) -> None:
    """Append the attempt and the delivery's new state; the claim ends."""
    status = "delivered" if delivered else "failed" if final else "pending"
    attempts = WebhookDelivery.attempts
    made = WebhookAttempt(at=now, status_code=status_code, error=error)  # type: ignore[no-untyped-call]
    actions: list[Action] = [attempts.set(attempts.append([made])),
               WebhookDelivery.status.set(status), WebhookDelivery.updated_at.set(now),
               WebhookDelivery.expires_at.set(now + DELIVERY_TTL), WebhookDelivery.claimed_until.remove()]
    if wait is None:
        actions.append(WebhookDelivery.next_attempt_at.remove())
    else:
        actions.append(WebhookDelivery.next_attempt_at.set(now + timedelta(seconds=wait)))
    try:
        delivery.update(actions=actions, condition=WebhookDelivery.pk.exists())
    except UpdateError:
        pass  # deleted meanwhile (the endpoint or the workspace was removed): nothing to record


def _follow_endpoint(services: Services, webhook: Webhook, delivered: bool, now: datetime) -> None:
    """An endpoint's failing streak: started at a failure, ended by a success; past DISABLE_AFTER, it is
    disabled (once: a conditional write) and the workspace alerted."""
    try:
        if delivered:
            if webhook.failing_since is not None:
                webhook.update(actions=[Webhook.failing_since.remove()], condition=Webhook.pk.exists())
            return
        if webhook.failing_since is None:
            webhook.update(actions=[Webhook.failing_since.set(now)],
                           condition=Webhook.pk.exists() & Webhook.failing_since.does_not_exist())
            return
        if now - webhook.failing_since < DISABLE_AFTER:
            return
        webhook.update(actions=[Webhook.status.set("disabled"),
                                Webhook.disabled_reason.set("Every delivery failed for 3 days.")],
                       condition=(Webhook.status == "active") & Webhook.failing_since.exists())
    except UpdateError:
        return  # removed, or another attempt changed it first (and, for a disabling, alerted)
    _alert_disabled(webhook, now)


def _alert_disabled(webhook: Webhook, now: datetime) -> None:
    days = max(1, (now - (webhook.failing_since or now)).days)
    alert = Alert(*Alert.key(webhook.workspace_id, f"{now:%Y-%m-%d}", f"{ALERT_LIMIT}:{webhook.id}", 100),
                  limit=ALERT_LIMIT, threshold=100, period=f"{now:%Y-%m-%d}", used=days, allowed=DISABLE_AFTER.days,
                  at=now, gsi1pk=Alert.timeline(webhook.workspace_id), gsi1sk=f"ALERT#{now:%Y-%m-%dT%H:%M:%S.%fZ}")
    try:
        alert.save(condition=Alert.pk.does_not_exist())
    except PutError:
        pass
    logger.warning("webhook disabled after 3 days of failures",
                   extra={"workspace_id": webhook.workspace_id, "webhook_id": webhook.id})
