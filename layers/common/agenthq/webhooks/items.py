"""The webhooks' items: all in the workspace's partition ``WS#<id>`` (offboarding deletes them with it).

How many endpoints a workspace has is ``Workspace.webhook_count`` (the tier's ``webhooks`` limit), moved
in the same transaction as the endpoint it counts.

- ``Webhook``        sk ``WEBHOOK#<webhook_id>``: the endpoint, its event filter and its signing secret;
- ``WebhookDelivery`` sk ``WHDELIVERY#<webhook_id>#<delivery_id>``: one event to one endpoint, with each
  attempt; kept 30 days (TTL).
"""

from __future__ import annotations

from pynamodb.attributes import ListAttribute, MapAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute

from agenthq.store import BaseItem, ws_pk
from agenthq.store.sizes import Utf8JSONAttribute


class Webhook(BaseItem, discriminator="Webhook"):
    id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    url = UnicodeAttribute()
    events = ListAttribute(of=UnicodeAttribute)
    description = UnicodeAttribute(null=True)
    # The signing secret (``whsec_…``): a symmetric key the sender must hold to sign (Standard Webhooks).
    # Read only by the delivery function; never in a view, a log line, an event or an error.
    signing_secret = UnicodeAttribute()
    status = UnicodeAttribute(default="active")  # active | disabled
    disabled_reason = UnicodeAttribute(null=True)
    failing_since = UTCDateTimeAttribute(null=True)  # the first failed attempt since the last success
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()

    @staticmethod
    def key(workspace_id: str, webhook_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"WEBHOOK#{webhook_id}"


class Attempt(MapAttribute):  # type: ignore[type-arg]  # pynamodb's generic MapAttribute
    at = UTCDateTimeAttribute()
    status_code = NumberAttribute(null=True)  # None: no answer (refused, timed out, not connected)
    error = UnicodeAttribute(null=True)  # why, in words safe to show the tenant


class WebhookDelivery(BaseItem, discriminator="WebhookDelivery"):
    id = UnicodeAttribute()  # also the ``webhook-id`` header: the same on every attempt
    webhook_id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    # not stored as ``event_type``: the table stream's webhook filter picks events by that attribute, and a
    # delivery must never look like an event to deliver (tests/unit/test_webhook_events.py)
    event_type = UnicodeAttribute(attr_name="delivered_event")
    payload = Utf8JSONAttribute()  # the body, signed as sent (ids and statuses only)
    status = UnicodeAttribute(default="pending")  # pending | delivered | failed
    attempt_limit = NumberAttribute()  # attempts this round may make: the schedule's, or 1 more (manual, test)
    claimed_until = UTCDateTimeAttribute(null=True)  # an attempt under way (one copy of a message at a time)
    attempts = ListAttribute(of=Attempt, default=list)
    next_attempt_at = UTCDateTimeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    @staticmethod
    def key(workspace_id: str, webhook_id: str, delivery_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"WHDELIVERY#{webhook_id}#{delivery_id}"

    @staticmethod
    def prefix(webhook_id: str) -> str:
        return f"WHDELIVERY#{webhook_id}#"
