"""The guarded HTTP client: httpx2 (the HTTP client the layer's SDKs use: anthropic, mcp) with a
network backend that resolves, checks and connects to the checked address itself, and responses
bounded in size and time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio
import httpcore2 as httpcore
import httpx2 as httpx

from agenthq.outbound.addresses import Resolver, address_refusal, system_resolver

if TYPE_CHECKING:
    from agenthq.settings import Settings

_SCHEMES = ("https", "http")


class OutboundRefused(Exception):
    """A call to a tenant-given URL was refused or cut off. ``reason`` is one of
    scheme, host, address, unresolvable, redirect, too_large, timeout, connect; the
    message names the host and why, never a header or a secret."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class OutboundPolicy:
    allow_loopback: bool = False  # only the local cloud's setting turns it on (and http with it)
    connect_timeout_seconds: float = 3.0
    timeout_seconds: float = 10.0  # per read, and the whole response body's deadline
    max_response_bytes: int = 256 * 1024

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> OutboundPolicy:
        return replace(cls(allow_loopback=settings.outbound_allow_loopback), **overrides)


def _allowed_addresses(host: str, port: int, policy: OutboundPolicy, resolver: Resolver) -> list[str]:
    """Every address ``host`` resolves to, when all of them may be reached; else OutboundRefused."""
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError):  # UnicodeError: a name IDNA cannot encode (a label over 63 characters)
        raise OutboundRefused("unresolvable", f"{host} does not resolve") from None
    if not addresses:
        raise OutboundRefused("unresolvable", f"{host} does not resolve")
    for address in addresses:
        refusal = address_refusal(address, allow_loopback=policy.allow_loopback)
        if refusal is not None:
            raise OutboundRefused("address", f"{host} resolves to {refusal}, which AgentHQ does not call")
    return addresses


def _check_scheme(url: httpx.URL, policy: OutboundPolicy) -> None:
    if url.scheme not in _SCHEMES or (url.scheme == "http" and not policy.allow_loopback):
        raise OutboundRefused("scheme", "only https URLs are allowed")
    if not url.host:
        raise OutboundRefused("host", "the URL has no host")
    if len(url.host) > 253 or any(not 0 < len(label) <= 63 for label in url.host.rstrip(".").split(".")):
        raise OutboundRefused("host", "the URL's host is not a valid host name")
    if url.userinfo:
        raise OutboundRefused("host", "credentials do not belong in the URL (send them as headers)")


def check_url(url: str, policy: OutboundPolicy, resolver: Resolver | None = None) -> None:
    """At registration: the URL's scheme, host and every address it resolves to now."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise OutboundRefused("host", "not a valid URL") from None
    _check_scheme(parsed, policy)
    _allowed_addresses(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80), policy,
                       resolver or system_resolver)


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, policy: OutboundPolicy, resolver: Resolver) -> None:
        self._policy, self._resolver, self._inner = policy, resolver, httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        failure: Exception | None = None
        for address in _allowed_addresses(host, port, self._policy, self._resolver):
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or OutboundRefused("connect", f"could not connect to {host}")

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        raise OutboundRefused("address", "unix sockets are not reachable")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: OutboundPolicy, resolver: Resolver) -> None:
        self._policy, self._resolver, self._inner = policy, resolver, httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        addresses = await anyio.to_thread.run_sync(_allowed_addresses, host, port, self._policy, self._resolver)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or OutboundRefused("connect", f"could not connect to {host}")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("address", "unix sockets are not reachable")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Bound:
    """A response body's bounds: at most ``max_bytes``, read before ``deadline`` (monotonic)."""

    def __init__(self, policy: OutboundPolicy, request: httpx.Request, response: httpx.Response,
                 started: float) -> None:
        self.max_bytes, self.deadline, self.read = policy.max_response_bytes, started + policy.timeout_seconds, 0
        self.host = request.url.host
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self.too_large()

    def too_large(self) -> OutboundRefused:
        return OutboundRefused("too_large", f"{self.host}'s response is larger than {self.max_bytes} bytes")

    def count(self, chunk: bytes) -> bytes:
        self.read += len(chunk)
        if self.read > self.max_bytes:
            raise self.too_large()
        if time.monotonic() > self.deadline:
            raise OutboundRefused("timeout", f"{self.host} took too long to answer")
        return chunk


class _BoundedStream(httpx.SyncByteStream):
    def __init__(self, inner: Any, bound: _Bound) -> None:
        self._inner, self._bound = inner, bound

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            yield self._bound.count(chunk)

    def close(self) -> None:
        self._inner.close()


class _AsyncBoundedStream(httpx.AsyncByteStream):
    def __init__(self, inner: Any, bound: _Bound) -> None:
        self._inner, self._bound = inner, bound

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield self._bound.count(chunk)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _pool_options(policy: OutboundPolicy) -> dict[str, Any]:
    return {"ssl_context": httpx.create_ssl_context(trust_env=False), "max_connections": 10,
            "max_keepalive_connections": 5, "keepalive_expiry": 5.0, "retries": 0}


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, policy: OutboundPolicy, resolver: Resolver) -> None:
        super().__init__(trust_env=False)
        self._policy = policy
        self._pool = httpcore.ConnectionPool(network_backend=_GuardedBackend(policy, resolver),
                                             **_pool_options(policy))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _check_scheme(request.url, self._policy)
        started = time.monotonic()
        response = super().handle_request(request)
        try:
            bound = _Bound(self._policy, request, response, started)
        except OutboundRefused:
            response.close()
            raise
        response.stream = _BoundedStream(response.stream, bound)
        return response


class _AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: OutboundPolicy, resolver: Resolver) -> None:
        super().__init__(trust_env=False)
        self._policy = policy
        self._pool = httpcore.AsyncConnectionPool(network_backend=_AsyncGuardedBackend(policy, resolver),
                                                  **_pool_options(policy))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _check_scheme(request.url, self._policy)
        started = time.monotonic()
        response = await super().handle_async_request(request)
        try:
            bound = _Bound(self._policy, request, response, started)
        except OutboundRefused:
            await response.aclose()
            raise
        response.stream = _AsyncBoundedStream(response.stream, bound)
        return response


def _timeout(policy: OutboundPolicy) -> httpx.Timeout:
    return httpx.Timeout(policy.timeout_seconds, connect=policy.connect_timeout_seconds)


def guarded_client(policy: OutboundPolicy, *, resolver: Resolver | None = None,
                   headers: dict[str, str] | None = None) -> httpx.Client:
    """A client for tenant-given URLs: redirects are never followed (a 3xx is an answer, not a hop)."""
    return httpx.Client(transport=_GuardedTransport(policy, resolver or system_resolver), headers=headers,
                        timeout=_timeout(policy), follow_redirects=False, trust_env=False)


def guarded_async_client(policy: OutboundPolicy, *, resolver: Resolver | None = None,
                         headers: dict[str, str] | None = None, timeout: httpx.Timeout | None = None,
                         auth: httpx.Auth | None = None) -> httpx.AsyncClient:
    """The async one; its keyword arguments fit the ``mcp`` SDK's httpx client factory. A ``timeout``
    given by the caller may only shorten the policy's."""
    bounded = _timeout(policy)
    if timeout is not None:
        bounded = httpx.Timeout(
            connect=_shorter(timeout.connect, bounded.connect), read=_shorter(timeout.read, bounded.read),
            write=_shorter(timeout.write, bounded.write), pool=_shorter(timeout.pool, bounded.pool))
    return httpx.AsyncClient(transport=_AsyncGuardedTransport(policy, resolver or system_resolver),
                             headers=headers, timeout=bounded, auth=auth, follow_redirects=False,
                             trust_env=False)


def _shorter(asked: float | None, bound: float | None) -> float | None:
    if asked is None:
        return bound
    return asked if bound is None else min(asked, bound)
