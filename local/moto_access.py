"""moto, safe under concurrent callers, and reachable from other processes.

moto's backends are plain Python objects: two threads calling at once can
break them (``RuntimeError: dictionary changed size during iteration`` in the
API Gateway backend while one signup lists keys and another creates one).
Every request to moto goes through one re-entrant lock, whichever way it
comes:

- in this process, through ``mock_aws``'s botocore stubber (the local
  cloud's own calls, tests, and handlers run in this process);
- from the functions' worker processes, through :class:`MotoServer`: moto's
  own server application (the same in-memory backends as the mock), behind
  the same lock, on a loopback port the workers reach with the standard
  ``AWS_ENDPOINT_URL`` variable. It listens on a loopback address only, and
  answers no browser: moto's server allows every origin (CORS), which would let
  any web page open in the developer's browser read the local cloud's SSM
  parameters (the JWT signing keys) and secrets; every ``Access-Control-*``
  header is dropped, so a cross-origin request or preflight fails in the browser.

moto's calls are short (microseconds to a few milliseconds), so one lock
costs little; DynamoDB is DynamoDB Local, outside moto, and never waits on it.
Step Functions executions run in moto's own threads outside the lock: a
request only starts one, or hands a task token back (which sets an event).
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

MOTO_LOCK = threading.RLock()
_serialized = False
_parses_remembered = False


def serialize_moto() -> None:
    """Make every in-process request to moto hold :data:`MOTO_LOCK`. Idempotent."""
    global _serialized
    if _serialized:
        return
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.process_request

    def process_request(self: Any, request: Any) -> Any:
        with MOTO_LOCK:
            return original(self, request)

    BotocoreStubber.process_request = process_request  # type: ignore[method-assign]
    _serialized = True


def remember_state_machine_parses() -> None:
    """Parse each state machine definition once, not once per execution. Idempotent.

    moto's Step Functions interpreter lexes and parses an execution's whole definition with a pure-Python
    ANTLR parser when the execution starts (about 40 ms of CPU for agent_run.asl.json, on this machine's
    busiest thread under load). The parse tree of a definition never changes; it is kept (per definition
    text) and only turned into fresh evaluation components for each execution, as moto does after parsing."""
    global _parses_remembered
    if _parses_remembered:
        return
    from moto.stepfunctions.parser.asl.parse import asl_parser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    original = asl_parser.AmazonStateLanguageParser.parse
    trees: dict[str, Any] = {}
    lock = threading.Lock()

    def parse(definition: str) -> tuple[Any, Any]:
        with lock:
            tree = trees.get(definition)
        if tree is None:
            program, tree = original(definition)  # raises on a bad definition, as before
            with lock:
                if len(trees) < 64:
                    trees[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    asl_parser.AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]
    _parses_remembered = True


class MotoServer:
    """moto's server application on a loopback port, one request at a time inside moto."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"moto's server holds the local cloud's secrets: it listens on loopback only, not {host}")
        app = DomainDispatcherApplication(create_backend_app)

        def serialized(environ: dict[str, Any], start_response: Any) -> Any:
            def without_cors(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
                kept = [(name, value) for name, value in headers if not name.lower().startswith("access-control-")]
                return start_response(status, kept, *rest)

            with MOTO_LOCK:
                return list(app(environ, without_cors))

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass  # one line per AWS call of every function would drown the local cloud's own output

        self._server = make_server(host, port, serialized, threaded=True, request_handler=QuietHandler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MotoServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
