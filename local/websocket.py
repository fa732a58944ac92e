"""The local WebSocket API: API Gateway's WebSocket front and its @connections API.

It does what API Gateway does for the template's WebSocket API (read from
template.yaml, ``local.template.websocket_api``):

- the handshake at ``ws://host:port/<stage>`` runs the ``$connect`` REQUEST
  authorizer (401 when it says ``Unauthorized``, 403 when its policy does not
  allow the connect, 500 when it fails), then the ``$connect`` integration (a
  non-2xx answer refuses the handshake with that status); a refused connect
  stores nothing;
- each message is routed by the route selection expression
  (``$request.body.action``) to its route or to ``$default``; a two-way
  route's answer (its ``body``) is sent back on the connection;
- every route after ``$connect`` gets the authorizer's context;
- the stage's route throttles (``DefaultRouteSettings``, ``RouteSettings``):
  a token bucket per route; a throttled message gets ``{"message": "Too Many
  Requests", …}`` and invokes nothing, a throttled connect a 429;
- limits: a message of more than 32 KB closes the connection (1009; API
  Gateway allows 128 KB messages in 32 KB frames — locally one frame is the
  limit, stricter), 10 minutes without a message from the client and 2 hours
  in all close it (1001), as on AWS; ``$disconnect`` runs after any close;
- frames for a client wait in a bounded send queue: a client that stops
  reading is closed (1008) when its queue is full, and is gone (410) from
  then on — it never holds up another connection.

The @connections management API (``POST``/``GET``/``DELETE
/<stage>/@connections/{id}``, 410 ``GoneException`` for a connection that is
not open, 413 over 128 KB) is served over HTTP on a port of its own; the
functions reach it through boto3's ``apigatewaymanagementapi`` client with
``LIVE_CONNECTIONS_URL`` (on AWS the same paths live on the API's own host).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import secrets
import threading
import time
import urllib.parse
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.lambda_runtime import FunctionError, LambdaRuntime
from local.template import ACCOUNT_ID, LIVE_API_ID, WebSocketApiSpec

log = logging.getLogger("local.websocket")

MAX_MESSAGE_BYTES = 32 * 1024
MAX_POST_BYTES = 128 * 1024
IDLE_TIMEOUT_SECONDS = 10 * 60
MAX_CONNECTION_SECONDS = 2 * 3600
SEND_QUEUE_FRAMES = 1000
INVOKER_THREADS = 64  # invocations the front has under way at once; the others wait their connection's turn
HANDSHAKE_TIMEOUT_SECONDS = 29  # the authorizer and $connect run within API Gateway's integration timeout

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008


@dataclass
class _Connection:
    id: str
    ws: Any  # websockets ServerConnection
    authorizer: dict[str, Any]
    source_ip: str
    user_agent: str
    connected_at: float = field(default_factory=time.time)
    last_active: float = field(default_factory=time.monotonic)
    queue: asyncio.Queue[str | bytes] | None = None
    closing: bool = False


class WebSocketFront:
    def __init__(self, api: WebSocketApiSpec, runtime: LambdaRuntime, host: str = "127.0.0.1", port: int = 3001,
                 region: str = "us-east-1", idle_timeout: float = IDLE_TIMEOUT_SECONDS,
                 max_connection_seconds: float = MAX_CONNECTION_SECONDS,
                 send_queue_frames: int = SEND_QUEUE_FRAMES) -> None:
        self.api = api
        self.runtime = runtime
        self.host = host
        self.port = port
        self.region = region
        self.idle_timeout = idle_timeout
        self.max_connection_seconds = max_connection_seconds
        self.send_queue_frames = send_queue_frames
        self.connections: dict[str, _Connection] = {}
        self._pending: dict[int, _Connection] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.management = _ManagementServer(self, host)
        self._invokers = ThreadPoolExecutor(max_workers=INVOKER_THREADS + 8, thread_name_prefix="websocket-invoke")
        self._turns = _Turns(INVOKER_THREADS)  # the routes' invocations ($disconnect's has the 8 threads more)
        #: A fault for tests: the @connections API's DELETE fails (500) instead of closing, as a close
        #: that API Gateway could not do would; the callers must still end the connection's access.
        self.failing_closes = False
        self.throttle = _RouteThrottle(api)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/{self.api.stage}"

    @property
    def connections_url(self) -> str:
        """The @connections endpoint, as boto3's endpoint_url (the stage included)."""
        return f"{self.management.url}/{self.api.stage}"

    def start(self) -> WebSocketFront:
        self.management.start()
        self._thread = threading.Thread(target=self._run, name="websocket-api", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def stop(self) -> None:
        self.management.stop()
        loop = self._loop
        if loop is not None and loop.is_running():
            async def shutdown() -> None:
                if self._server is not None:
                    self._server.close()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._server.wait_closed(), 3)
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._invokers.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        from websockets.asyncio.server import serve

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop

        async def open_server() -> None:
            self._server = await serve(self._serve, self.host, self.port, process_request=self._handshake,
                                       max_size=MAX_MESSAGE_BYTES, ping_interval=None, close_timeout=2,
                                       compression=None, max_queue=64, open_timeout=HANDSHAKE_TIMEOUT_SECONDS,
                                       backlog=1024)
            self.port = self._server.sockets[0].getsockname()[1]

        try:
            loop.run_until_complete(open_server())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    # ------------------------------------------------------------------ handshake: $connect

    async def _handshake(self, ws: Any, request: Any) -> Any:
        parsed = urllib.parse.urlsplit(request.path)
        if parsed.path.rstrip("/") != f"/{self.api.stage}":
            return ws.respond(404, "Not Found\n")
        if not self.throttle.take("$connect"):
            return ws.respond(429, "Too Many Requests\n")
        connection_id = base64.b64encode(secrets.token_bytes(12)).decode().replace("/", "_").replace("+", "-")
        headers = {k: v for k, v in request.headers.raw_items()}
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        source_ip = (ws.remote_address or ("127.0.0.1",))[0]
        event = self._event("$connect", "CONNECT", connection_id, source_ip, {})
        event.update({"headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
                      "queryStringParameters": query or None,
                      "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None})
        route = self.api.routes.get("$connect")
        authorizer: dict[str, Any] = {}
        if route is not None and route.authorizer_function:
            method_arn = f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{LIVE_API_ID}/{self.api.stage}/$connect"
            auth_event = {"type": "REQUEST", "methodArn": method_arn, "stageVariables": {},
                          **{k: v for k, v in event.items() if k not in ("body", "isBase64Encoded")}}
            try:
                result = await self._invoke(route.authorizer_function, auth_event)
            except FunctionError as err:
                return ws.respond(401 if err.message == "Unauthorized" else 500,
                                  "Unauthorized\n" if err.message == "Unauthorized" else "Internal server error\n")
            if not isinstance(result, dict) or not _allows(result.get("policyDocument") or {}, method_arn):
                return ws.respond(403, "Forbidden\n")
            authorizer = {**(result.get("context") or {}), "principalId": result.get("principalId")}
        event["requestContext"]["authorizer"] = authorizer
        if route is not None:
            try:
                answer = await self._invoke(route.function, event)
            except FunctionError:
                return ws.respond(500, "Internal server error\n")
            status = int(answer.get("statusCode", 200)) if isinstance(answer, dict) else 500
            if not 200 <= status < 300:
                return ws.respond(status, "Refused\n")
        self._pending[id(ws)] = _Connection(connection_id, ws, authorizer, source_ip,
                                            headers.get("User-Agent", headers.get("user-agent", "")))
        return None

    # ------------------------------------------------------------------ an open connection

    async def _serve(self, ws: Any) -> None:
        connection = self._pending.pop(id(ws), None)
        if connection is None:
            return
        connection.queue = asyncio.Queue(self.send_queue_frames)
        self.connections[connection.id] = connection
        writer = asyncio.create_task(self._write(connection))
        watchdog = asyncio.create_task(self._watch(connection))
        try:
            async for message in ws:
                connection.last_active = time.monotonic()
                asyncio.create_task(self._message(connection, message))
        except Exception:  # noqa: BLE001  # nosec B110  # a broken connection ends like a closed one
            pass
        finally:
            connection.closing = True
            self.connections.pop(connection.id, None)
            writer.cancel()
            watchdog.cancel()
            event = self._event("$disconnect", "DISCONNECT", connection.id, connection.source_ip,
                                connection.authorizer)
            route = self.api.routes.get("$disconnect")
            if route is not None:
                asyncio.get_running_loop().run_in_executor(self._invokers, self._invoke_quietly, route.function, event)

    async def _write(self, connection: _Connection) -> None:
        assert connection.queue is not None  # nosec B101  # type narrowing; set on accept
        while True:
            frame = await connection.queue.get()
            await connection.ws.send(frame)

    async def _watch(self, connection: _Connection) -> None:
        ends = connection.connected_at + self.max_connection_seconds
        while True:
            idle_left = connection.last_active + self.idle_timeout - time.monotonic()
            age_left = ends - time.time()
            if idle_left <= 0 or age_left <= 0:
                await self._close(connection, CLOSE_GOING_AWAY, "Going away")
                return
            await asyncio.sleep(min(idle_left, age_left, 5.0))

    async def _close(self, connection: _Connection, code: int, reason: str) -> None:
        connection.closing = True
        self.connections.pop(connection.id, None)
        try:
            await asyncio.wait_for(connection.ws.close(code, reason), 3)
        except Exception:  # noqa: BLE001 - it does not read: drop it
            connection.ws.transport.abort()

    async def _message(self, connection: _Connection, message: str | bytes) -> None:
        text = message if isinstance(message, str) else None
        route = self.api.routes.get(self._route_key(text)) or self.api.routes.get("$default")
        if route is None:
            return
        event = self._event(route.key, "MESSAGE", connection.id, connection.source_ip, connection.authorizer)
        if not self.throttle.take(route.key):  # the stage's route throttle: the function is not invoked
            self._enqueue(connection, json.dumps({"message": "Too Many Requests", "connectionId": connection.id,
                                                  "requestId": event["requestContext"]["requestId"]}))
            return
        event["body"] = text if text is not None else base64.b64encode(message).decode()  # type: ignore[arg-type]
        event["isBase64Encoded"] = text is None
        try:
            answer = await self._invoke(route.function, event, lane=connection.id)
        except FunctionError:
            answer = None
        if not route.two_way:
            return
        if not isinstance(answer, dict) or not 200 <= int(answer.get("statusCode", 200)) < 300:
            body: str | None = json.dumps({"message": "Internal server error", "connectionId": connection.id,
                                           "requestId": event["requestContext"]["requestId"]})
        else:
            body = answer.get("body")
        if body:
            self._enqueue(connection, body)

    def _route_key(self, text: str | None) -> str:
        field_name = self.api.route_selection.removeprefix("$request.body.")
        try:
            value = json.loads(text) if text is not None else None
        except ValueError:
            return "$default"
        key = value.get(field_name) if isinstance(value, dict) else None
        return key if isinstance(key, str) and key in self.api.routes and not key.startswith("$") else "$default"

    def _event(self, route_key: str, event_type: str, connection_id: str, source_ip: str,
               authorizer: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        return {"requestContext": {
            "routeKey": route_key, "eventType": event_type, "messageDirection": "IN",
            "messageId": str(uuid.uuid4()), "extendedRequestId": str(uuid.uuid4()), "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(now * 1000), "connectedAt": int(now * 1000), "stage": self.api.stage,
            "apiId": LIVE_API_ID, "domainName": f"{self.host}:{self.port}", "connectionId": connection_id,
            "identity": {"sourceIp": source_ip}, "authorizer": authorizer},
            "isBase64Encoded": False}

    async def _invoke(self, function: str, event: dict[str, Any], lane: str | None = None) -> Any:
        """Invoke a function without blocking the front (the runtime bounds the concurrency, as Lambda does).
        ``lane``: the connection whose message it is; where the runtime makes invocations wait for one of
        this machine's few environments (on Lambda none waits), each connection takes its turn, so one
        connection's burst does not hold up every other connection's messages."""
        call = functools.partial(self.runtime.invoke, function, event, lane=lane)
        async with self._turns.turn(lane):
            return await asyncio.get_running_loop().run_in_executor(self._invokers, call)

    def _invoke_quietly(self, function: str, event: dict[str, Any]) -> None:
        try:
            self.runtime.invoke(function, event)
        except FunctionError:
            pass  # $disconnect is best effort

    # ------------------------------------------------------------------ sending (the @connections API)

    def _enqueue(self, connection: _Connection, frame: str | bytes) -> bool:
        """Queue a frame; False when the connection is gone or its queue is full (then it is closed)."""
        if connection.closing or connection.queue is None:
            return False
        try:
            connection.queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("connection %s does not read: closing it", connection.id)
            asyncio.ensure_future(self._close(connection, CLOSE_POLICY, "Send queue full"))
            return False
        return True

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None  # nosec B101  # type narrowing; set by start()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def post(self, connection_id: str, data: bytes) -> bool:
        async def post() -> bool:
            connection = self.connections.get(connection_id)
            if connection is None:
                return False
            try:
                frame: str | bytes = data.decode("utf-8")
            except UnicodeDecodeError:
                frame = data
            return self._enqueue(connection, frame)
        return bool(self._call(post()))

    def describe(self, connection_id: str) -> dict[str, Any] | None:
        connection = self.connections.get(connection_id)
        if connection is None or connection.closing:
            return None
        return {"ConnectedAt": datetime.fromtimestamp(connection.connected_at, UTC).isoformat(),
                "LastActiveAt": datetime.fromtimestamp(
                    time.time() - (time.monotonic() - connection.last_active), UTC).isoformat(),
                "Identity": {"SourceIp": connection.source_ip, "UserAgent": connection.user_agent}}

    def disconnect(self, connection_id: str, code: int = 1000, reason: str = "") -> bool:
        async def disconnect() -> bool:
            connection = self.connections.get(connection_id)
            if connection is None or connection.closing:
                return False
            asyncio.ensure_future(self._close(connection, code, reason))
            return True
        return bool(self._call(disconnect()))

    def cut(self, connection_id: str) -> bool:
        """Drop the connection without a close frame, as a network failure would (for tests)."""
        async def cut() -> bool:
            connection = self.connections.get(connection_id)
            if connection is None:
                return False
            connection.ws.transport.abort()
            return True
        return bool(self._call(cut()))


class _Turns:
    """At most ``limit`` invocations under way at once (the front's threads; API Gateway has no such
    limit, this machine has); the others wait **in turns by connection** (``lane``; None: handshakes),
    so that one connection's burst does not hold up every other connection's messages: the waiting
    lanes are served round robin, each lane's invocations in arrival order. Used on the event loop only."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self.waiting: OrderedDict[object, deque[asyncio.Future[None]]] = OrderedDict()

    @contextlib.asynccontextmanager
    async def turn(self, lane: object) -> AsyncIterator[None]:
        if self.free > 0 and not self.waiting:
            self.free -= 1
        else:
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiting.setdefault(lane, deque()).append(ready)
            try:
                await ready
            except asyncio.CancelledError:
                if ready.done() and not ready.cancelled():
                    self._hand_on()  # it was handed a place it will not use
                raise
        try:
            yield
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        """A place is free: to the first waiting lane's first invocation, that lane to the end of the line."""
        while self.waiting:
            lane, queue = next(iter(self.waiting.items()))
            del self.waiting[lane]
            ready = queue.popleft()
            if queue:
                self.waiting[lane] = queue
            if not ready.done():
                ready.set_result(None)
                return
        self.free += 1


class _RouteThrottle:
    """The stage's route throttles (``DefaultRouteSettings`` and ``RouteSettings``): a token bucket per
    route, ``burst`` tokens refilled at ``rate`` a second, shared by every connection, as API Gateway
    throttles a stage's routes; an empty bucket refuses the message before any function runs."""

    def __init__(self, api: WebSocketApiSpec) -> None:
        self.api = api
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self.throttled: dict[str, int] = {}

    def take(self, route_key: str) -> bool:
        limits = self.api.throttle_of(route_key)
        if limits is None:
            return True
        rate, burst = limits
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(route_key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[route_key] = (tokens, now)
                self.throttled[route_key] = self.throttled.get(route_key, 0) + 1
                return False
            self._buckets[route_key] = (tokens - 1.0, now)
            return True

    def reset(self) -> None:
        """Every bucket full again, as on a newly deployed stage (tests that count from a full burst)."""
        with self._lock:
            self._buckets.clear()


class _ManagementServer:
    """``/<stage>/@connections/{id}``: POST (send), GET (describe), DELETE (close)."""

    def __init__(self, front: WebSocketFront, host: str) -> None:
        self.front = front
        self.server = ThreadingHTTPServer((host, 0), self._handler())
        self.server.daemon_threads = True
        self.server.request_queue_size = 256
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="websocket-connections", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self.front

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, body: dict[str, Any] | None = None, error: str | None = None) -> None:
                raw = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _connection_id(self) -> str | None:
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                prefix = f"/{front.api.stage}/@connections/"
                return path[len(prefix):] if path.startswith(prefix) and len(path) > len(prefix) else None

            def _gone(self) -> None:
                self._reply(410, {"message": None}, "GoneException")

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                connection_id = self._connection_id()
                if connection_id is None:
                    return self._reply(404, {"message": "Not Found"}, "NotFoundException")
                if length > MAX_POST_BYTES:
                    return self._reply(413, {"message": "Payload too large"}, "PayloadTooLargeException")
                if not front.post(connection_id, data):
                    return self._gone()
                self._reply(200)

            def do_GET(self) -> None:  # noqa: N802
                connection_id = self._connection_id()
                found = front.describe(connection_id) if connection_id else None
                if found is None:
                    return self._gone()
                self._reply(200, found)

            def do_DELETE(self) -> None:  # noqa: N802
                connection_id = self._connection_id()
                if front.failing_closes:
                    return self._reply(500, {"message": "Internal server error"}, "InternalServerErrorException")
                if connection_id is None or not front.disconnect(connection_id):
                    return self._gone()
                self._reply(204)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler


def _allows(policy: dict[str, Any], method_arn: str) -> bool:
    from local.apigateway import _policy_allows

    return _policy_allows(policy, method_arn)
