"""AWS_IAM authorization for the local REST API: SigV4 checked against local credentials.

API Gateway authorizes an ``AWS_IAM`` method by checking the request's
Signature Version 4 (``Authorization: AWS4-HMAC-SHA256 Credential=…,
SignedHeaders=…, Signature=…``) and then the caller's IAM policies. The local
front does the same against the local cloud's credentials (the operator's, see
:func:`operator_credentials`): the signature is recomputed with botocore's
``SigV4Auth`` over the request exactly as received — method, path, query, the
signed headers and the SHA-256 of the body actually received — and compared in
constant time; the date must be within 15 minutes of now, as on AWS. The
operator's local IAM policy allows ``execute-api:Invoke`` on every route, so a
valid signature is also an allowed one.

Refusals carry the gateway response type API Gateway uses, so the front answers
with the template's GatewayResponses: ``MISSING_AUTHENTICATION_TOKEN`` when
nothing is signed, ``INVALID_SIGNATURE`` for any signature that does not hold.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import string
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from local.apigateway import SignatureRefused, SignatureVerifier
from local.template import ACCOUNT_ID

MAX_SKEW_SECONDS = 15 * 60
ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
OPERATOR_USER = "agenthq-operator"


@dataclass(frozen=True)
class LocalCredentials:
    """An IAM user's access key in the local cloud: long-lived (``AKIA…``), or temporary (``ASIA…``, with a
    session token and an end, as STS ``GetSessionToken`` gives the user: they act as the user)."""

    access_key_id: str
    secret_access_key: str
    user_name: str = OPERATOR_USER
    user_id: str = "AIDALOCALOPERATOR0001"
    account_id: str = ACCOUNT_ID
    session_token: str = ""
    expires_at: float | None = None  # epoch seconds (temporary credentials only)

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{self.user_name}"

    def identity(self) -> dict[str, Any]:
        """``requestContext.identity`` of a request this user signed, as API Gateway fills it."""
        return {"accountId": self.account_id, "accessKey": self.access_key_id, "caller": self.user_id,
                "user": self.user_id, "userArn": self.arn, "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None, "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                "principalOrgId": None}


def operator_credentials(data_dir: Path | None) -> LocalCredentials:
    """The local operator's credentials: made once and kept in ``data_dir``
    (``operator-credentials.json``, mode 0600); new ones each start without a data folder."""
    path = data_dir / "operator-credentials.json" if data_dir else None
    if path and path.exists():
        saved = json.loads(path.read_text())
        return LocalCredentials(saved["access_key_id"], saved["secret_access_key"])
    alphabet = string.ascii_uppercase + string.digits
    credentials = LocalCredentials(
        access_key_id="AKIA" + "".join(secrets.choice(alphabet) for _ in range(16)),
        secret_access_key=secrets.token_urlsafe(30)[:40],
    )
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"access_key_id": credentials.access_key_id,
                       "secret_access_key": credentials.secret_access_key}, f)
    return credentials


def session_credentials(user: LocalCredentials, seconds: float, clock: Callable[[], float] = time.time
                        ) -> LocalCredentials:
    """Temporary credentials of ``user``, valid ``seconds`` from now (what ``aws sts get-session-token`` gives)."""
    alphabet = string.ascii_uppercase + string.digits
    return LocalCredentials(access_key_id="ASIA" + "".join(secrets.choice(alphabet) for _ in range(16)),
                            secret_access_key=secrets.token_urlsafe(30)[:40], user_name=user.user_name,
                            user_id=user.user_id, account_id=user.account_id,
                            session_token=secrets.token_urlsafe(96), expires_at=clock() + seconds)


class SigV4Verifier(SignatureVerifier):
    def __init__(self, credentials: Iterable[LocalCredentials], region: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.credentials = {c.access_key_id: c for c in credentials}
        self.region = region
        self.clock = clock

    def verify(self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes) -> LocalCredentials:
        """The signer of the request, or :class:`SignatureRefused`. ``raw_path`` is the
        request target as received (percent-encoding and query string included)."""
        values: dict[str, list[str]] = {}
        for name, value in headers:
            values.setdefault(name.lower(), []).append(value)
        authorization = (values.get("authorization") or [""])[0].strip()
        if not authorization:
            raise SignatureRefused("MISSING_AUTHENTICATION_TOKEN", "the request is not signed")
        credential, signed_headers, signature = _parse_authorization(authorization)
        try:
            key_id, day, region, service, terminator = credential.split("/")
        except ValueError:
            raise SignatureRefused("INVALID_SIGNATURE", "malformed Credential") from None
        signer = self.credentials.get(key_id)
        token = (values.get("x-amz-security-token") or [""])[0]
        # a long-lived key takes no token; a temporary one needs its own
        if signer is None or bool(token) != bool(signer.session_token) or (
                token and not hmac.compare_digest(token.encode(), signer.session_token.encode())):
            raise SignatureRefused("INVALID_SIGNATURE", "the security token included in the request is invalid")
        if signer.expires_at is not None and self.clock() >= signer.expires_at:
            raise SignatureRefused("INVALID_SIGNATURE", "the security token included in the request is expired")
        if (region, service, terminator) != (self.region, SERVICE, "aws4_request"):
            raise SignatureRefused("INVALID_SIGNATURE", f"credential scope must be <date>/{self.region}/{SERVICE}/"
                                                        "aws4_request")
        amz_date = (values.get("x-amz-date") or [""])[0]
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            raise SignatureRefused("INVALID_SIGNATURE", "X-Amz-Date is missing or malformed") from None
        if day != amz_date[:8]:
            raise SignatureRefused("INVALID_SIGNATURE", "credential date is not the X-Amz-Date's")
        if abs(self.clock() - signed_at) > MAX_SKEW_SECONDS:
            raise SignatureRefused("INVALID_SIGNATURE", "signature expired: X-Amz-Date is more than 15 minutes "
                                                        "from now")
        if not {"host", "x-amz-date"} <= set(signed_headers) or any(h not in values for h in signed_headers):
            raise SignatureRefused("INVALID_SIGNATURE", "host and x-amz-date must be signed, and every signed "
                                                        "header present")
        body_hash = hashlib.sha256(body).hexdigest()
        declared = values.get("x-amz-content-sha256")
        if declared and declared[0] != body_hash:
            raise SignatureRefused("INVALID_SIGNATURE", "the body is not the one whose hash was signed")
        expected = _signature(signer, self.region, method, raw_path, {h: values[h] for h in signed_headers},
                              amz_date, body)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise SignatureRefused("INVALID_SIGNATURE", "the request signature we calculated does not match")
        return signer


def _parse_authorization(value: str) -> tuple[str, list[str], str]:
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureRefused("INVALID_SIGNATURE", f"the Authorization header must be {ALGORITHM}")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, _, val = item.strip().partition("=")
        parts[name] = val
    if not all(parts.get(k) for k in ("Credential", "SignedHeaders", "Signature")):
        raise SignatureRefused("INVALID_SIGNATURE", "Authorization needs Credential, SignedHeaders and Signature")
    return parts["Credential"], parts["SignedHeaders"].split(";"), parts["Signature"]


def _signature(signer: LocalCredentials, region: str, method: str, raw_path: str,
               signed: dict[str, list[str]], amz_date: str, body: bytes) -> str:
    """What the signature must be: botocore's SigV4 over exactly the signed headers."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest, HTTPHeaders
    from botocore.credentials import Credentials

    class _ExactlySigned(SigV4Auth):
        def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
            chosen = HTTPHeaders()
            for name, values in signed.items():
                for value in values:
                    chosen.add_header(name, value)
            return chosen

    request = AWSRequest(method=method, url=f"http://{signed['host'][0]}{raw_path}", data=body)
    request.context["timestamp"] = amz_date
    auth = _ExactlySigned(Credentials(signer.access_key_id, signer.secret_access_key), SERVICE, region)
    canonical = auth.canonical_request(request)
    return auth.signature(auth.string_to_sign(request, canonical), request)
