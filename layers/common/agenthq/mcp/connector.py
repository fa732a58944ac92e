"""The one way AgentHQ talks to an MCP server: the official ``mcp`` SDK's
Streamable HTTP client, over an HTTP client the caller gives (in production the
guarded one of ``agenthq.outbound``: public addresses only, checked at every
connect, no redirects, bounded time and size).

Every failure — a refused address, a connection that fails or times out, a
JSON-RPC error, a result past its bound — is a :class:`McpFailure` (listing) or
an ``is_error`` :class:`CallOutcome` (a call), with a message that is safe to
show a tenant and a model: it never holds a header value (each message is also
scrubbed of the headers' values, in case a server echoes one back).
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agenthq.mcp.names import MAX_TOOLS, RemoteTool
from agenthq.text import clip

if TYPE_CHECKING:
    from agenthq.outbound import OutboundPolicy, Resolver

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS = 300
_MAX_PAGES = 5  # tools/list pages read per listing


class McpFailure(Exception):
    """Talking to the server failed; the message is safe to show (no secret)."""


@dataclass(frozen=True)
class CallOutcome:
    """What a tool call gives the model."""

    text: str
    is_error: bool = False


class McpConnector(ABC):
    """What the API and the run worker need of an MCP server."""

    @abstractmethod
    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be used (a message safe to show), or None when it may."""

    @abstractmethod
    def list_tools(self, url: str, headers: Mapping[str, str]) -> list[RemoteTool]:
        """The server's tools (at most a few pages of them). Raises :class:`McpFailure`."""

    @abstractmethod
    def call_tool(self, url: str, headers: Mapping[str, str], name: str, arguments: dict[str, Any]) -> CallOutcome:
        """Call one tool. Never raises for the server's problems: they are ``is_error`` outcomes."""


class SdkConnector(McpConnector):
    """:class:`McpConnector` with the ``mcp`` SDK's client (Streamable HTTP)."""

    def __init__(self, policy: OutboundPolicy, *, resolver: Resolver | None = None, timeout_seconds: float,
                 max_result_chars: int) -> None:
        self.policy = policy
        self.resolver = resolver
        self.timeout_seconds = timeout_seconds
        self.max_result_chars = max_result_chars

    def refusal(self, url: str) -> str | None:
        from agenthq.outbound import OutboundRefused, check_url

        try:
            check_url(url, self.policy, resolver=self.resolver)
        except OutboundRefused as refused:
            return str(refused)
        except (UnicodeError, ValueError):  # a host the resolver cannot even encode (a label past 63 characters)
            return "the URL's host is not a valid host name"
        return None

    def list_tools(self, url: str, headers: Mapping[str, str]) -> list[RemoteTool]:
        async def listing(client: Any) -> list[RemoteTool]:
            found: list[RemoteTool] = []
            cursor: str | None = None
            for _ in range(_MAX_PAGES):
                page = await client.list_tools(cursor=cursor)
                found += [RemoteTool(t.name, t.description or "", dict(t.input_schema or {})) for t in page.tools]
                cursor = page.next_cursor
                if not cursor or len(found) > MAX_TOOLS:
                    break
            return found

        try:
            tools: list[RemoteTool] = self._run(url, headers, listing)
            return tools
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message without secrets
            raise McpFailure(describe(exc, headers)) from None

    def call_tool(self, url: str, headers: Mapping[str, str], name: str, arguments: dict[str, Any]) -> CallOutcome:
        async def calling(client: Any) -> Any:
            return await client.call_tool(name, arguments, read_timeout_seconds=self.timeout_seconds)

        try:
            result = self._run(url, headers, calling)
        except Exception as exc:  # noqa: BLE001 - a failure is an is_error result, never a failed run
            return CallOutcome(describe(exc, headers), is_error=True)
        text = result_text(result)
        if len(text) > self.max_result_chars:
            return CallOutcome(f"The tool's result is too large ({len(text)} characters; at most "
                               f"{self.max_result_chars}).", is_error=True)
        return CallOutcome(scrub(text, headers) if result.is_error else text, is_error=bool(result.is_error))

    def _run(self, url: str, headers: Mapping[str, str], work: Callable[[Any], Any]) -> Any:
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        from agenthq.outbound import guarded_async_client

        async def session() -> Any:
            async with guarded_async_client(self.policy, resolver=self.resolver, headers=dict(headers)) as http:
                transport = streamable_http_client(url, http_client=http, terminate_on_close=False)
                async with Client(transport, read_timeout_seconds=self.timeout_seconds) as client:
                    return await work(client)

        async def bounded() -> Any:
            return await asyncio.wait_for(session(), self.timeout_seconds)

        # On a thread of its own: asyncio.run would leave this thread without an event loop, which the
        # next request's adapter (Mangum) expects to find; and it may be called from a running loop.
        with ThreadPoolExecutor(1, thread_name_prefix="mcp") as pool:
            return pool.submit(asyncio.run, bounded()).result()


def result_text(result: Any) -> str:
    """A tool result's content as one text: text blocks as they are, other blocks named."""
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "unknown")
        parts.append(block.text if kind == "text" else f"[{kind} content omitted]")
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return "\n".join(parts)


def describe(exc: BaseException, headers: Mapping[str, str]) -> str:
    """A failure as a message safe for a tenant and a model."""
    return scrub(_describe(_innermost(exc)), headers)


def _describe(exc: BaseException) -> str:
    from mcp.shared.exceptions import MCPError

    from agenthq.outbound import OutboundRefused

    if isinstance(exc, OutboundRefused):
        return f"The MCP server was not reached: {exc}"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "The MCP server did not answer in time."
    if isinstance(exc, MCPError):
        if "timed out" in exc.error.message:
            return "The MCP server did not answer in time."
        return clip(f"The MCP server answered with an error ({exc.error.code}): {exc.error.message}", MAX_ERROR_CHARS)
    logger.info("MCP connection failed: %s", type(exc).__name__)
    return f"Could not talk to the MCP server ({type(exc).__name__})."


def _innermost(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio's task groups wrap what their tasks raised)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def scrub(text: str, headers: Mapping[str, str]) -> str:
    """``text`` without any header value in it."""
    for value in headers.values():
        if value and len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return text
