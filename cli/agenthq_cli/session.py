"""Where the CLI talks to and as whom: the user's config file and an HTTP client.

``agenthq login`` stores the API URL, the WebSocket URL and the tokens in
``<config dir>/agenthq/config.json`` (mode 0600; the config dir is
``$AGENTHQ_CONFIG_DIR``, else ``$XDG_CONFIG_HOME``, else ``~/.config``).
``AGENTHQ_API_KEY`` (an API key, sent as ``x-api-key``) takes the place of the
stored login; ``AGENTHQ_API_URL`` / ``AGENTHQ_WS_URL`` override the URLs.
An expired access token is refreshed once with the stored refresh token.
Credentials go only over TLS, or in clear to a loopback host (agenthq_cli.endpoints).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer

from agenthq_cli.endpoints import EndpointError, check_private

DEFAULT_API_URL = "http://127.0.0.1:3000/v1"


def config_path() -> Path:
    base = os.environ.get("AGENTHQ_CONFIG_DIR") or os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "agenthq" / "config.json"


@dataclass
class Profile:
    api_url: str = DEFAULT_API_URL
    ws_url: str = ""  # "": the one the API announces (agenthq_cli.endpoints.live_url_of)
    access_token: str = ""
    refresh_token: str = ""
    workspace_id: str = ""
    email: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Profile:
        path = config_path()
        stored = json.loads(path.read_text()) if path.exists() else {}
        profile = cls(**{k: v for k, v in stored.items() if k in cls.__dataclass_fields__})
        profile.api_url = os.environ.get("AGENTHQ_API_URL") or profile.api_url
        return profile

    def save(self) -> Path:
        path = config_path()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=2)
        os.chmod(path, 0o600)  # also when the file existed with a wider mode
        return path

    def auth_headers(self) -> dict[str, str]:
        key = os.environ.get("AGENTHQ_API_KEY")
        if key:
            return {"x-api-key": key}
        if not self.access_token:
            fail("Not logged in: run `agenthq login` (or set AGENTHQ_API_KEY).")
        return {"Authorization": f"Bearer {self.access_token}"}


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    """What a command answers, as indented JSON (for people and for `jq`)."""
    typer.echo(json.dumps(value, indent=2))


class Api:
    """The REST API as the logged-in user (or API key); errors end the command with their message."""

    def __init__(self, profile: Profile) -> None:
        try:
            check_private(profile.api_url, "the API")
        except EndpointError as refused:
            fail(str(refused))
        self.profile = profile
        self.http = httpx.Client(base_url=profile.api_url, timeout=30)

    def workspace_path(self, suffix: str) -> str:
        if not self.profile.workspace_id:
            fail("No workspace: log in again.")
        return f"/workspaces/{self.profile.workspace_id}{suffix}"

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, headers={**self.profile.auth_headers(), **(headers or {})},
                                         **kwargs)
            if response.status_code == 401 and self._refresh():
                response = self.http.request(method, path,
                                             headers={**self.profile.auth_headers(), **(headers or {})}, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach {self.profile.api_url}: {exc}")
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                fail(f"{error['message']} ({response.status_code} {error['code']})")
            except (ValueError, KeyError, TypeError):
                fail(f"{response.status_code} {response.text[:200]}")
        return response.json() if response.content else None

    def every_item(self, path: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every item of a list, page after page (``params`` with each page's ``cursor``)."""
        params = dict(params or {})
        items: list[Any] = []
        while True:
            page = self.call("GET", path, params=params)
            items += page["items"]
            if not page.get("next_cursor"):
                return items
            params["cursor"] = page["next_cursor"]

    def _refresh(self) -> bool:
        if os.environ.get("AGENTHQ_API_KEY") or not self.profile.refresh_token:
            return False
        response = self.http.post("/auth/refresh", json={"refresh_token": self.profile.refresh_token})
        if response.status_code != 200:
            return False
        tokens = response.json()
        self.profile.access_token, self.profile.refresh_token = tokens["access_token"], tokens["refresh_token"]
        self.profile.save()
        return True


def workspace_api() -> Api:
    """The API as the logged-in profile, acting on its workspace (or on $AGENTHQ_WORKSPACE_ID's)."""
    profile = Profile.load()
    profile.workspace_id = os.environ.get("AGENTHQ_WORKSPACE_ID") or profile.workspace_id
    return Api(profile)
