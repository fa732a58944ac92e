"""Webhooks: a workspace's endpoints, told (signed, at least once) when its runs end, pause or wait.

The items — ``Webhook`` (an endpoint), ``WebhookDelivery`` (its delivery log) — are in ``store.items`` with
every other type (code that reads a partition whole, offboarding, knows them all).

- ``signing``: the Standard Webhooks signature (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature: v1,<base64 HMAC-SHA256>``), done once here;
- ``events``: which stored events are delivered, and their payloads (ids and statuses, never input,
  output or secrets);
- ``api``: the routes' logic (register, list, remove, test, the delivery log, redelivery);
- ``delivery``: the table stream's events → deliveries on the queue, and one delivery attempt
  (through the guarded HTTP client) with the spec's reference backoff, then ``failed``.
"""
