"""The shared HTTP edge: one error format, size limit, headers, tenant context.

A small app built by the real factory is driven through the real Lambda
handler (Mangum) with API Gateway proxy events.
"""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field

from agenthq.context import ROLE_SCOPES, Principal, PrincipalKind, Role
from agenthq.errors import Conflict, QuotaExceeded
from agenthq.http import SECURITY_HEADERS, WorkspacePrincipal, create_app, lambda_handler
from agenthq.settings import Settings
from local.events import rest_proxy_event

LIMIT = 1024


class Thing(BaseModel):
    name: str = Field(min_length=1, max_length=20)
    size: int = Field(ge=0)


def build_handler(cors: tuple[str, ...] = ()):
    settings = Settings(TABLE_NAME="unused", MAX_REQUEST_BYTES=LIMIT, CORS_ALLOW_ORIGINS=cors)
    app = create_app("test", settings)
    created: list[Thing] = []

    @app.post("/things")
    def make_thing(thing: Thing) -> dict:
        created.append(thing)
        return thing.model_dump()

    @app.get("/workspaces/{wid}/things")
    def list_things(wid: str, principal: WorkspacePrincipal) -> dict:
        return {"workspace": principal.workspace_id, "items": []}

    @app.post("/conflict")
    def conflict() -> dict:
        raise Conflict("Already there.")

    @app.get("/quota")
    def quota() -> dict:
        raise QuotaExceeded("Runs per day used up.", retry_after=120)

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("secret internal detail /etc/passwd")

    return lambda_handler(app), created


class Ctx:
    function_name = "test"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "req-1"


def call(handler, event):
    response = handler(event, Ctx())
    body = json.loads(response["body"]) if response.get("body") else None
    headers = {k.lower(): v for k, v in response["headers"].items()}
    return response["statusCode"], headers, body


@pytest.fixture()
def edge():
    return build_handler()


def test_valid_request_reaches_the_route_and_carries_security_headers(edge):
    handler, created = edge
    status, headers, body = call(handler, rest_proxy_event("POST", "/things", body={"name": "a", "size": 1},
                                                           request_id="rid-123"))
    assert status == 200 and body == {"name": "a", "size": 1}
    assert [t.name for t in created] == ["a"]
    for name, value in SECURITY_HEADERS.items():
        assert headers[name.lower()] == value
    assert headers["x-request-id"] == "rid-123"


def test_malformed_json_is_a_400_with_the_documented_body_and_changes_nothing(edge):
    handler, created = edge
    status, _, body = call(handler, rest_proxy_event("POST", "/things", body='{"name": "a",',
                                                     headers={"Content-Type": "application/json"},
                                                     request_id="rid-9"))
    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["request_id"] == "rid-9"
    assert "JSON" in body["error"]["message"]
    assert created == []


def test_invalid_fields_are_listed_in_details(edge):
    handler, created = edge
    status, _, body = call(handler, rest_proxy_event("POST", "/things", body={"name": "", "size": -1}))
    assert status == 400
    fields = {d["field"] for d in body["error"]["details"]}
    assert fields == {"name", "size"}
    assert created == []


def test_body_over_the_limit_is_413_whatever_the_content_length_says(edge):
    handler, created = edge
    big = json.dumps({"name": "x" * (LIMIT + 10), "size": 1})
    status, _, body = call(handler, rest_proxy_event("POST", "/things", body=big))
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    # A client that lies about Content-Length is measured as the body streams in.
    status, _, body = call(handler, rest_proxy_event("POST", "/things", body=big,
                                                     headers={"Content-Length": "10",
                                                              "Content-Type": "application/json"}))
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert created == []


def test_unknown_route_is_a_json_404(edge):
    handler, _ = edge
    status, headers, body = call(handler, rest_proxy_event("GET", "/nowhere"))
    assert status == 404 and body["error"]["code"] == "not_found"
    assert headers["x-content-type-options"] == "nosniff"


def test_app_errors_map_to_their_status_and_code(edge):
    handler, _ = edge
    status, _, body = call(handler, rest_proxy_event("POST", "/conflict"))
    assert (status, body["error"]["code"], body["error"]["message"]) == (409, "conflict", "Already there.")
    status, headers, body = call(handler, rest_proxy_event("GET", "/quota"))
    assert (status, body["error"]["code"]) == (429, "quota_exceeded")
    assert headers["retry-after"] == "120"


def test_an_unexpected_error_is_a_json_500_without_internals(edge):
    handler, _ = edge
    status, _, body = call(handler, rest_proxy_event("GET", "/boom", request_id="rid-boom"))
    assert status == 500
    assert body == {"error": {"code": "internal_error", "message": "Internal error.", "request_id": "rid-boom"}}


def principal(workspace_id: str) -> Principal:
    return Principal(workspace_id=workspace_id, subject="U1", kind=PrincipalKind.user, role=Role.member,
                     scopes=ROLE_SCOPES[Role.member])


def test_workspace_comes_from_the_authorizer_and_another_workspace_is_404(edge):
    handler, _ = edge
    ctx = principal("WSA").to_authorizer_context()
    status, _, body = call(handler, rest_proxy_event("GET", "/workspaces/WSA/things", authorizer=ctx))
    assert status == 200 and body["workspace"] == "WSA"
    status, _, body = call(handler, rest_proxy_event("GET", "/workspaces/WSB/things", authorizer=ctx))
    assert status == 404 and body["error"]["code"] == "not_found"


def test_no_authorizer_context_is_401(edge):
    handler, _ = edge
    status, _, body = call(handler, rest_proxy_event("GET", "/workspaces/WSA/things"))
    assert status == 401 and body["error"]["code"] == "unauthorized"


def test_cors_headers_only_for_configured_origins():
    handler, _ = build_handler(cors=("https://app.example.com",))
    _, headers, _ = call(handler, rest_proxy_event("POST", "/things", body={"name": "a", "size": 1},
                                                   headers={"Origin": "https://app.example.com",
                                                            "Content-Type": "application/json"}))
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    _, headers, _ = call(handler, rest_proxy_event("POST", "/things", body={"name": "a", "size": 1},
                                                   headers={"Origin": "https://evil.example.com",
                                                            "Content-Type": "application/json"}))
    assert "access-control-allow-origin" not in headers
