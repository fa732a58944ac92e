"""SigV4-signed HTTP for the operator routes (API Gateway ``AWS_IAM``).

:class:`SigV4` is an ``httpx.Auth`` that signs each request with AWS
credentials for the ``execute-api`` service, as API Gateway expects: the
signature covers the method, path, query, ``host``, ``x-amz-date``,
``content-type`` (and the session token, for temporary credentials) and the
SHA-256 of the body. Credentials come from botocore's usual chain (environment,
``~/.aws`` profiles, SSO, instance roles) unless given.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timezone
from typing import Any

import httpx

SERVICE = "execute-api"
SIGNED_HEADERS = ("host", "content-type")


class NoCredentials(RuntimeError):
    """No AWS credentials were found to sign with."""


def credentials_from_chain(profile: str | None = None) -> Any:
    """Frozen credentials (access key, secret, token) from botocore's credential chain."""
    import botocore.session

    session = botocore.session.Session(profile=profile)
    credentials = session.get_credentials()
    if credentials is None:
        raise NoCredentials("No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                            "or AWS_PROFILE (make dev prints the local operator's).")
    return credentials.get_frozen_credentials()


def sign(request: httpx.Request, credentials: Any, region: str, at: datetime | None = None) -> httpx.Request:
    """Add ``x-amz-date``, ``authorization`` (and ``x-amz-security-token``) to ``request``,
    signed as of ``at`` (now by default)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    amz_date = (at or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    headers = {name: request.headers[name] for name in SIGNED_HEADERS if name in request.headers}
    headers["x-amz-date"] = amz_date
    if getattr(credentials, "token", None):
        headers["x-amz-security-token"] = credentials.token
    unsigned = AWSRequest(method=request.method, url=str(request.url), headers=headers, data=request.content)
    unsigned.context["timestamp"] = amz_date
    auth = SigV4Auth(credentials, SERVICE, region)
    signature = auth.signature(auth.string_to_sign(unsigned, auth.canonical_request(unsigned)), unsigned)
    signed_headers = auth.signed_headers(auth.headers_to_sign(unsigned))
    request.headers.update({k: v for k, v in headers.items() if k != "host"})
    request.headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={auth.scope(unsigned)}, "
                                        f"SignedHeaders={signed_headers}, Signature={signature}")
    return request


class SigV4(httpx.Auth):
    """Signs every request of an ``httpx.Client`` for API Gateway's ``AWS_IAM``."""

    requires_request_body = True

    def __init__(self, credentials: Any, region: str) -> None:
        self.credentials = credentials
        self.region = region

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield sign(request, self.credentials, self.region)
