"""Webhook signatures: agenthq signs as the Standard Webhooks spec says, and the spec's own library
(the ``standardwebhooks`` package) is the judge."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from agenthq.webhooks import signing


def _signed(secret: str, body: bytes, message_id: str = "msg_01", at: int | None = None) -> dict[str, str]:
    return signing.headers(secret, message_id, int(time.time()) if at is None else at, body)


def test_a_new_secret_is_whsec_and_24_random_bytes() -> None:
    secrets = {signing.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 24


def test_the_package_verifies_what_agenthq_signs() -> None:
    secret = signing.new_secret()
    body = json.dumps({"type": "run.succeeded", "data": {"run_id": "r1", "status": "succeeded", "note": "é✓"}},
                      ensure_ascii=False).encode()
    headers = _signed(secret, body)
    assert headers["webhook-signature"].startswith("v1,") and headers["webhook-id"] == "msg_01"
    assert Verifier(secret).verify(body, headers)["data"]["note"] == "é✓"


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp", "secret"])
def test_any_change_fails_verification(tamper: str) -> None:
    secret, body = signing.new_secret(), b'{"type":"run.failed","data":{"run_id":"r1"}}'
    headers = _signed(secret, body)
    if tamper == "body":
        body = body.replace(b"r1", b"r2")
    elif tamper == "id":
        headers["webhook-id"] = "msg_02"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    else:
        secret = signing.new_secret()
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(body, headers)


def test_an_old_timestamp_is_refused_by_receivers() -> None:
    """Each attempt is signed afresh (a retry an hour later carries its own timestamp): the library
    refuses a message older than 5 minutes, which defeats replays."""
    secret, body = signing.new_secret(), b"{}"
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(body, _signed(secret, body, at=int(time.time()) - 3600))
