"""The web console's files, as ConsoleFunction serves them (``GET /v1/console``, ``/v1/console/{proxy+}``).

The console is HTML, CSS and JavaScript modules with no build step
(``functions/console/static``, shipped with the function). This module answers
API Gateway's proxy events for them:

- ``/console`` redirects to ``console/`` (relative, so it works under any stage
  or custom domain path); ``/console/`` (API Gateway routes it to the same
  resource) and ``/console/index.html`` are the page;
- ``/console/config.json`` is made from the settings: the WebSocket API's URL
  (``LIVE_URL``), the region the operator signs for, the version — so nothing
  in the files names an endpoint;
- any other path is one of the files found under the root when the function
  started (a fixed list: no path is ever joined to the file system), else 404.

Every answer carries a strict Content-Security-Policy — scripts, styles and
images only from the console itself, ``connect-src`` the API's origin and the
WebSocket API's, no inline script or style, Trusted Types required so no
string can become HTML — and ``X-Content-Type-Options: nosniff``. The page
and config are never stored by a cache (``no-store``); the other files are
revalidated on each use (``no-cache`` + ``ETag``), so a deploy is seen at once.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from agenthq.errors import error_body
from agenthq.settings import Settings

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
INDEX = "index.html"
CONFIG = "config.json"
NO_STORE = "no-store"
REVALIDATE = "no-cache"


@dataclass(frozen=True)
class ConsoleFile:
    body: str
    content_type: str
    etag: str


def live_origin(live_url: str) -> str | None:
    """The origin (``wss://host[:port]``) of the WebSocket API's URL, or None if it is not a ws(s) URL."""
    parts = urllib.parse.urlsplit(live_url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(live_url: str) -> str:
    """The console's CSP: everything from the console's own origin (which is the API's), the WebSocket
    API as the one other place it may connect to, no inline code, no HTML from strings."""
    connect = " ".join(filter(None, ["'self'", live_origin(live_url)]))
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        f"connect-src {connect}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ])


def security_headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings.live_url),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }


def client_config(settings: Settings) -> dict[str, Any]:
    """What the console reads at start (``config.json``): where the live status API is, which region
    the operator's requests are signed for, and the version."""
    return {"live_url": settings.live_url if live_origin(settings.live_url) else None,
            "region": settings.region, "version": settings.version}


class ConsoleSite:
    """The console's files under ``root``, answered for API Gateway proxy events."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @cached_property
    def files(self) -> dict[str, ConsoleFile]:
        """Every file under the root with a known type, by its path relative to the root (read once)."""
        found = {}
        for path in sorted(self.root.rglob("*")):
            content_type = CONTENT_TYPES.get(path.suffix)
            relative = path.relative_to(self.root).as_posix()
            if not path.is_file() or content_type is None or relative == CONFIG:
                continue
            body = path.read_text(encoding="utf-8")
            found[relative] = ConsoleFile(body, content_type,
                                          '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"')
        return found

    def respond(self, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
        context = event.get("requestContext") or {}
        request_id = str(context.get("requestId") or "")
        if event.get("httpMethod") != "GET":
            return self._error(settings, 405, "method_not_allowed", "The console only answers GET.", request_id)
        proxy = (event.get("pathParameters") or {}).get("proxy")
        if proxy is None:  # the /console resource: /console or /console/
            if not str(event.get("path") or "").endswith("/"):
                return self._answer(settings, 301, "", "text/plain; charset=utf-8", NO_STORE,
                                    {"Location": "console/"})
            proxy = INDEX
        name = _clean(proxy)
        if name == CONFIG:
            return self._answer(settings, 200, json.dumps(client_config(settings)), CONTENT_TYPES[".json"], NO_STORE)
        found = self.files.get(name) if name is not None else None
        if found is None:
            return self._error(settings, 404, "not_found", "There is no such page in the console.", request_id)
        if found.content_type.startswith("text/html"):
            return self._answer(settings, 200, found.body, found.content_type, NO_STORE)
        if found.etag in _header(event, "if-none-match"):
            return self._answer(settings, 304, "", found.content_type, REVALIDATE, {"ETag": found.etag})
        return self._answer(settings, 200, found.body, found.content_type, REVALIDATE, {"ETag": found.etag})

    def _answer(self, settings: Settings, status: int, body: str, content_type: str, cache: str,
                extra: dict[str, str] | None = None) -> dict[str, Any]:
        headers = {**security_headers(settings), "Content-Type": content_type, "Cache-Control": cache,
                   **(extra or {})}
        return {"statusCode": status, "headers": headers, "body": body, "isBase64Encoded": False}

    def _error(self, settings: Settings, status: int, code: str, message: str, request_id: str) -> dict[str, Any]:
        return self._answer(settings, status, json.dumps(error_body(code, message, request_id)),
                            CONTENT_TYPES[".json"], NO_STORE)


def _clean(proxy: str) -> str | None:
    """``proxy`` as a relative path of plain names (no empty, dot or dot-dot segment, no backslash), or None."""
    path = PurePosixPath(proxy)
    if not proxy or "\\" in proxy or "\x00" in proxy or path.is_absolute():
        return None
    if any(part in ("", ".", "..") or part.startswith(".") for part in proxy.split("/")):
        return None
    return path.as_posix()


def _header(event: dict[str, Any], name: str) -> str:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return ""
