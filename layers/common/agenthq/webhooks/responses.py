"""The webhook routes' response bodies, as the contract (``GET /v1/openapi.json``) shows them."""

from __future__ import annotations

from pydantic import Field

from agenthq.responses import Timestamp, View


class Webhook(View):
    id: str
    url: str
    events: list[str]
    description: str | None
    status: str = Field(description="`active`, or `disabled` (after 3 days of failed deliveries).")
    disabled_reason: str | None
    created_at: Timestamp


class NewWebhook(Webhook):
    secret: str = Field(description="The signing secret (`whsec_…`, Standard Webhooks): shown only in this answer.")


class DeliveryAttempt(View):
    at: Timestamp
    status_code: int | None = Field(description="The endpoint's answer; null when there was none.")
    error: str | None


class WebhookDelivery(View):
    id: str = Field(description="Also the `webhook-id` header: the same on every attempt (receivers dedupe by it).")
    webhook_id: str
    event_type: str
    status: str = Field(description="`pending`, `delivered` or `failed`.")
    attempts: list[DeliveryAttempt]
    last_status_code: int | None
    next_attempt_at: Timestamp | None
    created_at: Timestamp
