"""Helpers for tests that talk to the local cloud over HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from agenthq import ids

PASSWORD = "correct-horse-battery-staple-42"


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{ids.new_id().lower()}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Tenant:
    """A signed-up workspace with its owner's tokens (and, once made, an API key)."""

    api: httpx.Client
    email: str
    user_id: str
    workspace_id: str
    access_token: str
    refresh_token: str
    api_key: str = ""
    api_key_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)

    @property
    def key_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}

    def path(self, suffix: str = "") -> str:
        return f"/workspaces/{self.workspace_id}{suffix}"

    def get(self, suffix: str = "", **kw: Any) -> httpx.Response:
        return self.api.get(self.path(suffix), headers=self.headers, **kw)

    def post(self, suffix: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.api.post(self.path(suffix), headers={**self.headers, **kw.pop("headers", {})}, json=json, **kw)


class LocalApi(httpx.Client):
    """An HTTP client for a local cloud's REST API that can also act as its operator."""

    def __init__(self, *, operator: httpx.Auth, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.operator = operator


def set_tier(api: httpx.Client, workspace_id: str, tier: str, operator: httpx.Auth | None = None,
             **change: Any) -> dict[str, Any]:
    """The operator sets a workspace's tier (a signed PATCH /admin/workspaces/{wid})."""
    operator = operator or getattr(api, "operator", None)
    assert operator is not None, "an operator's credentials are needed to change a tier"
    changed = api.patch(f"/admin/workspaces/{workspace_id}", json={"tier": tier, **change}, auth=operator)
    assert changed.status_code == 200, changed.text
    return changed.json()


def signup(api: httpx.Client, tag: str = "owner", workspace_name: str = "Acme Robotics",
           tier: str | None = None, operator: httpx.Auth | None = None) -> Tenant:
    """Sign up a new workspace. ``tier`` moves it off the free plan (whose 5 requests
    per second would throttle a test that talks fast): the operator's change, signed
    with ``operator`` (by default the client's, see ``LocalApi``)."""
    email = unique_email(tag)
    response = api.post("/auth/signup", json={"email": email, "password": PASSWORD, "workspace_name": workspace_name})
    assert response.status_code == 201, response.text
    body = response.json()
    tenant = Tenant(api=api, email=email, user_id=body["user"]["id"], workspace_id=body["workspace"]["id"],
                    access_token=body["access_token"], refresh_token=body["refresh_token"])
    if tier:
        set_tier(api, tenant.workspace_id, tier, operator)
    return tenant


def with_api_key(tenant: Tenant, scopes: tuple[str, ...] = ("runs:read", "runs:write", "agents:read",
                                                            "agents:write", "usage:read", "workspace:read")) -> Tenant:
    response = tenant.post("/api-keys", json={"name": "ci", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    tenant.api_key = response.json()["key"]
    tenant.api_key_id = response.json()["id"]
    return tenant


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "request_id"} <= set(body["error"]), body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]
