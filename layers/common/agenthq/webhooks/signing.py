"""Standard Webhooks signatures (https://www.standardwebhooks.com), done once here.

The secret is ``whsec_`` + base64 of 24 random bytes; the signature of a message is
``v1,`` + base64(HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")), where the key is
the secret's base64 part decoded. Receivers verify it with the spec's libraries (the
``standardwebhooks`` package: tests/unit/test_webhook_signing.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # nosec B105  # the public prefix of signing secrets, not a secret


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt: the same ``webhook-id`` on every attempt, a fresh timestamp."""
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, message_id, timestamp, body),
            "content-type": "application/json", "user-agent": "AgentHQ-Webhooks/1"}
