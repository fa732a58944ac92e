"""The local front's SigV4 check (API Gateway AWS_IAM), against requests signed as the CLI signs them."""

from __future__ import annotations

import hashlib
import stat
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from botocore.credentials import Credentials

from agenthq_cli.signing import sign
from local.apigateway import SignatureRefused
from local.sigv4 import LocalCredentials, SigV4Verifier, operator_credentials

OPERATOR = LocalCredentials("AKIATESTOPERATOR0001", "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-0001")
SIGNED_AT = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
REGION = "us-east-1"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.value = at.timestamp()

    def __call__(self) -> float:
        return self.value


def signed(method: str = "PATCH", url: str = "http://127.0.0.1:3000/v1/admin/workspaces/01ABC",
           body: bytes = b'{"tier": "pro"}', secret: str | None = None, region: str = REGION,
           at: datetime = SIGNED_AT, key_id: str | None = None) -> httpx.Request:
    headers = {"content-type": "application/json"} if body else {}
    request = httpx.Request(method, url, content=body, headers=headers)
    credentials = Credentials(key_id or OPERATOR.access_key_id, secret or OPERATOR.secret_access_key)
    return sign(request, credentials, region, at)


def verify(request: httpx.Request, now: datetime = SIGNED_AT, body: bytes | None = None,
           headers: dict[str, str] | None = None, raw_path: str | None = None, method: str | None = None):
    verifier = SigV4Verifier([OPERATOR], REGION, clock=Clock(now))
    target = raw_path or request.url.raw_path.decode()
    all_headers = list(request.headers.items()) + list((headers or {}).items())
    return verifier.verify(method or request.method, target, all_headers,
                           request.content if body is None else body)


def refusal(*args, **kwargs) -> str:
    with pytest.raises(SignatureRefused) as caught:
        verify(*args, **kwargs)
    return caught.value.kind


def test_a_request_signed_as_the_cli_signs_is_the_operators():
    assert verify(signed()) == OPERATOR
    assert verify(signed("GET", "http://127.0.0.1:3000/v1/admin/usage?period=month&cursor=a%2Fb", b"")) == OPERATOR
    assert verify(signed("GET", "http://127.0.0.1:3000/v1/admin/workspaces/%C3%A9t%C3%A9", b"")) == OPERATOR


def test_unsigned_is_a_missing_token_and_anything_else_an_invalid_signature():
    unsigned = httpx.Request("GET", "http://127.0.0.1:3000/v1/admin/usage")
    assert refusal(unsigned) == "MISSING_AUTHENTICATION_TOKEN"
    bearer = httpx.Request("GET", "http://127.0.0.1:3000/v1/admin/usage", headers={"authorization": "Bearer x.y.z"})
    assert refusal(bearer) == "INVALID_SIGNATURE"
    incomplete = httpx.Request("GET", "http://h/v1/x", headers={"authorization": "AWS4-HMAC-SHA256 Credential=a"})
    assert refusal(incomplete) == "INVALID_SIGNATURE"


@pytest.mark.parametrize("spoil", [
    "secret", "unknown key", "region", "body", "method", "path", "query", "host", "content-type", "date",
    "declared body hash", "session token"])
def test_a_signature_that_does_not_hold_is_refused(spoil):
    request = signed(secret="another-secret" if spoil == "secret" else None,
                     key_id="AKIAUNKNOWNKEY000000" if spoil == "unknown key" else None,
                     region="eu-west-1" if spoil == "region" else REGION)
    kwargs: dict = {}
    if spoil == "body":
        kwargs["body"] = b'{"tier": "enterprise"}'
    elif spoil == "method":
        kwargs["method"] = "PUT"
    elif spoil == "path":
        kwargs["raw_path"] = "/v1/admin/workspaces/01XYZ"
    elif spoil == "query":
        kwargs["raw_path"] = "/v1/admin/workspaces/01ABC?tier=enterprise"
    elif spoil == "host":
        request.headers["host"] = "evil.example.com"
    elif spoil == "content-type":
        request.headers["content-type"] = "text/plain"
    elif spoil == "date":
        request.headers["x-amz-date"] = (SIGNED_AT + timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")
    elif spoil == "declared body hash":
        kwargs["headers"] = {"x-amz-content-sha256": hashlib.sha256(b"something else").hexdigest()}
    elif spoil == "session token":
        kwargs["headers"] = {"x-amz-security-token": "FwoGZXIvYXdzEJr"}
    assert refusal(request, **kwargs) == "INVALID_SIGNATURE"


def test_the_date_may_be_15_minutes_off_and_no_more():
    request = signed()
    for off in (timedelta(minutes=15), -timedelta(minutes=15)):
        assert verify(request, now=SIGNED_AT + off) == OPERATOR
    for off in (timedelta(minutes=15, seconds=1), -timedelta(minutes=15, seconds=1), timedelta(days=1)):
        assert refusal(request, now=SIGNED_AT + off) == "INVALID_SIGNATURE"


def test_host_and_date_must_be_signed():
    request = signed()
    auth = request.headers["authorization"].replace("SignedHeaders=content-type;host;x-amz-date",
                                                    "SignedHeaders=content-type;x-amz-date")
    request.headers["authorization"] = auth
    assert refusal(request) == "INVALID_SIGNATURE"


def test_the_identity_is_what_api_gateway_passes_for_an_iam_user():
    identity = OPERATOR.identity()
    assert identity["userArn"] == "arn:aws:iam::123456789012:user/agenthq-operator"
    assert identity["accessKey"] == OPERATOR.access_key_id and identity["caller"] and identity["accountId"]


def test_operator_credentials_are_made_once_and_kept_private(tmp_path):
    first = operator_credentials(tmp_path)
    assert first.access_key_id.startswith("AKIA") and len(first.access_key_id) == 20
    assert len(first.secret_access_key) == 40
    assert operator_credentials(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "operator-credentials.json").stat().st_mode) == 0o600
    assert operator_credentials(None) != operator_credentials(None)


def test_temporary_credentials_need_their_own_token_and_end_when_they_expire():
    """What the web console takes (ASIA… with a session token): signed with the token they were issued with,
    until their end; a long-lived key with a token, or a temporary one without its token, is refused."""
    from local.sigv4 import session_credentials

    session = session_credentials(OPERATOR, 3600, clock=Clock(SIGNED_AT))
    assert session.access_key_id.startswith("ASIA") and session.session_token
    verifier = SigV4Verifier([OPERATOR, session], REGION, clock=Clock(SIGNED_AT + timedelta(minutes=5)))

    def check(credentials: Credentials, verifier: SigV4Verifier = verifier):
        request = sign(httpx.Request("GET", "http://127.0.0.1:3000/v1/admin/usage", headers={}), credentials,
                       REGION, SIGNED_AT + timedelta(minutes=5))
        return verifier.verify("GET", request.url.raw_path.decode(), list(request.headers.items()), b"")

    signer = check(Credentials(session.access_key_id, session.secret_access_key, session.session_token))
    assert signer == session and signer.identity()["userArn"] == OPERATOR.arn  # it acts as the user
    for wrong in (Credentials(session.access_key_id, session.secret_access_key),  # no token
                  Credentials(session.access_key_id, session.secret_access_key, "another-token"),
                  Credentials(OPERATOR.access_key_id, OPERATOR.secret_access_key, session.session_token)):
        with pytest.raises(SignatureRefused, match="security token"):
            check(wrong)
    later = SigV4Verifier([OPERATOR, session], REGION, clock=Clock(SIGNED_AT + timedelta(hours=1, minutes=5)))
    with pytest.raises(SignatureRefused, match="expired"):
        check(Credentials(session.access_key_id, session.secret_access_key, session.session_token), later)
