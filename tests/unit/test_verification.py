"""E-mail verification's pieces that need no table: where the mailed link points, and the gate."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from agenthq import http
from agenthq.settings import Settings
from agenthq.store.items import Workspace
from agenthq.verification import EmailUnverified, pending_at_signup, require_verified


def settings(**env: str) -> Settings:
    return Settings.from_env({"TABLE_NAME": "agenthq-test", **env})


def request_with(event: dict) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/auth/signup", "headers": [(b"host", b"evil.example")],
                    "query_string": b"", "server": ("evil.example", 80), "scheme": "http", "aws.event": event})


@pytest.mark.parametrize(("event", "expected"), [
    # API Gateway's own domain: the stage is in requestContext.path, not in the event's path
    ({"path": "/auth/signup", "requestContext": {"domainName": "abc123.execute-api.us-east-1.amazonaws.com",
                                                 "path": "/v1/auth/signup", "stage": "v1"}},
     "https://abc123.execute-api.us-east-1.amazonaws.com/v1"),
    # a custom domain mapped at its root: no prefix
    ({"path": "/auth/signup", "requestContext": {"domainName": "api.example.com", "path": "/auth/signup",
                                                 "stage": "v1"}},
     "https://api.example.com"),
])
def test_the_link_points_at_the_domain_and_stage_api_gateway_received_the_request_on(monkeypatch, event, expected):
    monkeypatch.setattr(http, "get_settings", lambda: settings())
    assert http.public_api_url(request_with(event)) == expected  # never the Host header the client chose


def test_a_configured_public_url_wins(monkeypatch):
    monkeypatch.setattr(http, "get_settings", lambda: settings(PUBLIC_API_URL="https://agents.example.com/api/"))
    event = {"path": "/auth/signup", "requestContext": {"domainName": "abc.execute-api.us-east-1.amazonaws.com",
                                                        "path": "/v1/auth/signup"}}
    assert http.public_api_url(request_with(event)) == "https://agents.example.com/api"


def test_the_gate_holds_a_pending_workspace_only_while_verification_is_required():
    on, off = settings(REQUIRE_VERIFIED_EMAIL="true"), settings(REQUIRE_VERIFIED_EMAIL="false")
    assert pending_at_signup(on) is True and pending_at_signup(off) is None
    pending = Workspace(*Workspace.key("01" + "A" * 24), verification_pending=True)
    verified = Workspace(*Workspace.key("01" + "B" * 24))
    with pytest.raises(EmailUnverified) as refused:
        require_verified(on, pending)
    assert (refused.value.status, refused.value.code) == (403, "email_unverified")
    require_verified(on, verified)  # verified, or made while verification was off
    require_verified(off, pending)  # the operator turned it off: every workspace may launch
    assert Settings.model_fields["require_verified_email"].default is False  # off unless the stack says so
