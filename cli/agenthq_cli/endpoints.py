"""Where the CLI may send credentials, and where a deployment's WebSocket API is.

Every request the CLI makes carries a secret (a password, an access or refresh
token, an API key, a SigV4 signature), so it goes over TLS (``https://``,
``wss://``); plaintext (``http://``, ``ws://``) only to a loopback host —
``localhost``, ``127.0.0.0/8`` or ``::1`` written in the URL (a name is not
resolved to decide: a name that resolves to loopback today may not tomorrow).
Anything else is refused before a byte is sent.

The WebSocket API's URL is not derived from the REST API's by rewriting it (on
AWS they are two APIs with two ids): a deployment says where its WebSocket API
is in ``GET <api>/console/config.json`` (``live_url``, the ``LIVE_URL`` its
template sets; the web console reads the same file), which needs no credentials.
The CLI uses, in order: ``AGENTHQ_WS_URL``; the URL stored at login, unless it is
a loopback one while the API is not (what older CLIs stored for every
deployment); the deployment's ``live_url``; and for a loopback API, the local
cloud's default. ``docs/decisions.md`` 171.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from agenthq_cli.session import Profile

DEFAULT_LOCAL_WS_URL = "ws://127.0.0.1:3001/v1"
SECURE = {"https": "http", "wss": "ws"}  # the TLS scheme and its plaintext twin


class EndpointError(Exception):
    """A URL the CLI will not send credentials to, or none to use."""


def host_of(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address, as written (never resolved)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_private(url: str, what: str) -> str:
    """``url`` if credentials may go there (TLS, or plaintext to a loopback host); else
    :class:`EndpointError` naming ``what``."""
    parts = urllib.parse.urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not host or scheme not in set(SECURE) | set(SECURE.values()):
        raise EndpointError(f"{what} URL {url!r} is not an http(s)/ws(s) URL with a host")
    if scheme in SECURE.values() and not is_loopback(host):
        secure = next(s for s, plain in SECURE.items() if plain == scheme)
        raise EndpointError(f"refusing to send credentials to {what} in clear text ({scheme}://{host}): "
                               f"use {secure}:// (plaintext is allowed only to localhost, 127.0.0.1 or ::1)")
    return url


def announced_live_url(api_url: str, timeout: float = 10.0) -> str | None:
    """The WebSocket API the deployment at ``api_url`` announces (``live_url`` of its
    ``/console/config.json``), or None when it announces none or cannot be asked."""
    try:
        response = httpx.get(f"{api_url.rstrip('/')}/console/config.json", timeout=timeout)
        live = response.json().get("live_url") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    if not isinstance(live, str) or urllib.parse.urlsplit(live).scheme not in ("ws", "wss"):
        return None
    return live


def live_url_of(profile: Profile) -> str:
    """The WebSocket API to watch runs on, checked like any URL the CLI sends credentials to
    (:class:`EndpointError` otherwise, or when none can be found)."""
    explicit = os.environ.get("AGENTHQ_WS_URL")
    if explicit:
        return check_private(explicit, "the WebSocket API")
    api_local = is_loopback(host_of(profile.api_url))
    stored = profile.ws_url
    if stored and (api_local or not is_loopback(host_of(stored))):
        return check_private(stored, "the WebSocket API")
    announced = announced_live_url(profile.api_url)
    if announced and (api_local or not is_loopback(host_of(announced))):
        return check_private(announced, "the WebSocket API")
    if api_local:
        return DEFAULT_LOCAL_WS_URL
    raise EndpointError(f"{profile.api_url} announces no WebSocket API (its /console/config.json has no "
                           f"live_url): set AGENTHQ_WS_URL to its wss:// URL, or log in with --ws-url")
