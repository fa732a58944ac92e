"""A small MCP server for tests and ``make dev``: the ``mcp`` SDK's MCPServer (FastMCP)
over Streamable HTTP on loopback, with tools that misbehave on purpose.

Tools: ``echo`` (says its text back), ``add``, ``slow`` (sleeps ``seconds``),
``fail`` (raises: the server answers an error result), ``huge`` (returns
``chars`` characters: more than a result may be), and ``extra`` — listed only
after :meth:`McpDemo.change_tools` (a server whose list changes).

With a ``token``, a request without ``Authorization: Bearer <token>`` gets a 401.
``seen_authorization`` records the Authorization headers it received. Two more
paths answer a redirect: ``/to-private`` (to the link-local metadata address) and
``/to-self`` (to ``/mcp`` of the same origin); with ``redirect_to`` set, every path answers a
redirect there (a server that starts redirecting after it was registered).

Run it for ``make dev``: ``python -m local.mcp_demo --port 8765 [--token T]``;
register ``http://127.0.0.1:8765/mcp`` (the local cloud allows loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from typing import Any


class McpDemo:
    """The demo server, started in a thread of this process."""

    def __init__(self, token: str | None = None, *, json_response: bool = False) -> None:
        from mcp.server.mcpserver import MCPServer

        self.token = token
        self.seen_authorization: list[str] = []
        self.calls: list[str] = []
        self.server: MCPServer[Any] = MCPServer("agenthq-demo", log_level="WARNING")
        self.json_response = json_response
        self.redirect_to: str | None = None  # when set, every request is answered with a 307 to it
        self._add_tools()
        self._uvicorn: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def _add_tools(self) -> None:
        server, calls = self.server, self.calls

        @server.tool()
        def echo(text: str) -> str:
            """Say the text back."""
            calls.append("echo")
            return f"echo: {text}"

        @server.tool()
        def add(a: int, b: int) -> int:
            """Add two integers."""
            calls.append("add")
            return a + b

        @server.tool()
        async def slow(seconds: float = 30) -> str:
            """Answer after this many seconds."""
            calls.append("slow")
            await asyncio.sleep(seconds)
            return "finally"

        @server.tool()
        def fail() -> str:
            """Always fails."""
            calls.append("fail")
            raise ValueError("the demo tool failed on purpose")

        @server.tool()
        def huge(chars: int = 100_000) -> str:
            """Return this many characters."""
            calls.append("huge")
            return "x" * chars

    def change_tools(self) -> None:
        """Add the tool ``extra`` and remove ``add``: the next listing differs."""

        def extra(note: str = "") -> str:
            """A tool that appeared later."""
            self.calls.append("extra")
            return f"extra: {note}"

        self.server.add_tool(extra)
        self.server.remove_tool("add")

    def app(self) -> Any:
        from mcp.server.transport_security import TransportSecuritySettings
        from starlette.responses import PlainTextResponse, RedirectResponse

        # Any Host header: tests reach it under made-up names their resolver maps to 127.0.0.1.
        inner = self.server.streamable_http_app(
            stateless_http=True, json_response=self.json_response,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        demo = self

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
                authorization = headers.get("authorization", "")
                demo.seen_authorization.append(authorization)
                if demo.redirect_to:
                    await RedirectResponse(demo.redirect_to, status_code=307)(scope, receive, send)
                    return
                if scope["path"] == "/to-private":
                    await RedirectResponse("http://169.254.169.254/mcp", status_code=307)(scope, receive, send)
                    return
                if scope["path"] == "/to-self":
                    await RedirectResponse(demo.url, status_code=307)(scope, receive, send)
                    return
                if demo.token and authorization != f"Bearer {demo.token}":
                    await PlainTextResponse("unauthorized", status_code=401)(scope, receive, send)
                    return
            await inner(scope, receive, send)

        return app

    def start(self, port: int = 0) -> McpDemo:
        import uvicorn

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        self._uvicorn = uvicorn.Server(uvicorn.Config(self.app(), log_level="warning", lifespan="on"))
        threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="mcp-demo", daemon=True).start()
        deadline = time.monotonic() + 10
        while not self._uvicorn.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the demo MCP server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=None, help="require Authorization: Bearer <token>")
    args = parser.parse_args()
    demo = McpDemo(args.token).start(args.port)
    print(f"MCP demo server: {demo.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        demo.stop()


if __name__ == "__main__":
    main()
