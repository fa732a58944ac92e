"""Run the real Lambda handlers in this process, as the Lambda service would.

Each function's ``app.py`` is loaded from its CodeUri under a module name of
its own (every function has an ``app.py``), with the layer on ``sys.path`` as
``/opt/python`` is on Lambda. ``lambda:Invoke`` calls made through boto3 (the
Step Functions interpreter's Task states) are routed here by a botocore hook.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import logging
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import ContextVar
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from local.template import ROOT, FunctionSpec

LAYER_PATH = ROOT / "layers" / "common"
log = logging.getLogger("local.lambda")

_running: ContextVar[str | None] = ContextVar("local_lambda_running_function", default=None)
_THREAD_FUNCTION = "_local_lambda_function"
_THREAD_STATE_MACHINE = "_local_state_machine"


def running_function() -> str | None:
    """The logical id of the function whose handler this code runs in, or None.

    Set for the handler's invocation, and inherited by the threads the handler
    starts (on Lambda they run in the function's sandbox, with its role)."""
    return _running.get() or getattr(threading.current_thread(), _THREAD_FUNCTION, None)


def running_state_machine() -> str | None:
    """The name of the state machine whose execution this thread of moto's
    interpreter works for, or None (not an interpreter thread)."""
    return getattr(threading.current_thread(), _THREAD_STATE_MACHINE, None)


def _threads_inherit_the_running_function() -> None:
    """Make a thread started during an invocation belong to that function.

    Threads of moto's Step Functions interpreter are excepted: an execution a
    handler starts runs as the state machine, not as the handler. They are
    marked with their execution's state machine instead (an execution's first
    thread is its worker's; the threads it starts for states inherit the mark),
    so local IAM knows which state machine's role signs their calls."""
    original = threading.Thread.start
    if getattr(original, "_local_lambda", False):
        return

    def start(self: threading.Thread) -> None:
        target = getattr(self, "_target", None)
        if not str(getattr(target, "__module__", "") or "").startswith("moto."):
            setattr(self, _THREAD_FUNCTION, running_function())
        else:
            setattr(self, _THREAD_STATE_MACHINE, _state_machine_of(target) or running_state_machine())
        original(self)

    start._local_lambda = True  # type: ignore[attr-defined]
    threading.Thread.start = start  # type: ignore[method-assign]


def _state_machine_of(target: Any) -> str | None:
    """The state machine name of an execution worker's thread target (moto's ExecutionWorker)."""
    details = getattr(getattr(target, "__self__", None), "_evaluation_details", None)
    return getattr(getattr(details, "state_machine_details", None), "name", None)


@dataclass
class LambdaContext:
    """The context object Lambda passes to a handler."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    deadline: float
    function_version: str = "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class FunctionError(Exception):
    """A handler raised (or timed out): what Lambda reports as FunctionError."""

    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.stack = stack or []

    def payload(self) -> dict[str, Any]:
        return {"errorType": self.error_type, "errorMessage": self.message, "stackTrace": self.stack}


def _give_thread_an_event_loop() -> None:
    # On Lambda a handler runs on the main thread, which has an event loop
    # (Mangum relies on it); give each of our worker threads one too.
    asyncio.set_event_loop(asyncio.new_event_loop())


@dataclass
class InvocationFault:
    """A failure the runtime injects, for fault tests (as AWS FIS would):
    ``when="before"`` fails the invocation without running the handler,
    ``"after"`` runs it and then reports a failure (a crash after the work was
    done — what a retried step must survive), ``"none"`` only delays it.
    ``delay_seconds`` holds the invocation first. Applies to ``times`` invocations that ``match``."""

    function: str  # logical id
    match: Callable[[Any], bool] = lambda event: True
    times: int = 1
    when: str = "before"
    delay_seconds: float = 0.0
    error_type: str = "InjectedFault"
    fired: int = 0


class LambdaRuntime:
    def __init__(self, specs: dict[str, FunctionSpec], region: str = "us-east-1", account: str = "123456789012",
                 max_concurrency: int = 64) -> None:
        self.specs = specs
        self.region = region
        self.account = account
        self._by_name = {spec.name: spec for spec in specs.values()}
        self._modules: dict[str, ModuleType] = {}
        self._load_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="lambda",
                                        initializer=_give_thread_an_event_loop)
        self.invocations: dict[str, int] = {}
        self.faults: list[InvocationFault] = []
        self._faults_lock = threading.Lock()
        if str(LAYER_PATH) not in sys.path:
            sys.path.insert(0, str(LAYER_PATH))
        _threads_inherit_the_running_function()

    # ------------------------------------------------------------------ lookup and loading

    def spec(self, name_or_arn: str) -> FunctionSpec:
        name = urllib.parse.unquote(name_or_arn)
        if name.startswith("arn:"):
            name = name.split(":function:", 1)[1].split(":", 1)[0]
        spec = self.specs.get(name) or self._by_name.get(name)
        if spec is None:
            raise KeyError(f"no function {name_or_arn!r}")
        return spec

    def module(self, logical_id: str) -> ModuleType:
        with self._load_lock:
            if logical_id not in self._modules:
                spec = self.specs[logical_id]
                module_file, _ = spec.handler.rsplit(".", 1)
                path = spec.code_uri / f"{module_file}.py"
                module_name = f"_lambda_{logical_id}"
                loader_spec = importlib.util.spec_from_file_location(module_name, path)
                assert loader_spec and loader_spec.loader  # nosec B101  # type narrowing of importlib's API
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[module_name] = module
                loader_spec.loader.exec_module(module)
                self._modules[logical_id] = module
            return self._modules[logical_id]

    def handler(self, logical_id: str) -> Callable[[dict, Any], Any]:
        spec = self.specs[logical_id]
        return getattr(self.module(logical_id), spec.handler.rsplit(".", 1)[1])

    def warm(self) -> None:
        """Load every function now (cold starts happen before the first request)."""
        for logical_id in self.specs:
            self.module(logical_id)

    # ------------------------------------------------------------------ invocation

    def context_for(self, spec: FunctionSpec) -> LambdaContext:
        return LambdaContext(
            function_name=spec.name,
            invoked_function_arn=f"arn:aws:lambda:{self.region}:{self.account}:function:{spec.name}",
            memory_limit_in_mb=spec.memory,
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + spec.timeout,
        )

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        """Call the function's handler with ``event``; its result, or FunctionError.
        A handler running past the function's Timeout is reported as Lambda does."""
        spec = self.spec(name_or_arn)
        handler = self.handler(spec.logical_id)
        context = self.context_for(spec)
        self.invocations[spec.logical_id] = self.invocations.get(spec.logical_id, 0) + 1

        fault = self._fault_for(spec.logical_id, event)

        def call() -> Any:
            running = _running.set(spec.logical_id)
            try:
                return run()
            finally:
                _running.reset(running)

        def run() -> Any:
            if fault and fault.delay_seconds:
                time.sleep(fault.delay_seconds)
            if fault and fault.when == "before":
                raise FunctionError(fault.error_type, "injected failure before the handler ran")
            try:
                result = handler(event, context)
            except Exception as exc:
                stack = traceback.format_exception(type(exc), exc, exc.__traceback__)
                raise FunctionError(type(exc).__name__, str(exc), stack) from exc
            if fault and fault.when == "after":
                raise FunctionError(fault.error_type, "injected failure after the handler ran")
            return result

        future = self._pool.submit(call)
        try:
            return future.result(timeout=spec.timeout)
        except FutureTimeout:
            error = FunctionError("Sandbox.Timedout", f"Task timed out after {spec.timeout:.2f} seconds")
            log.error("%s: %s", spec.name, error.message)
            raise error from None
        except FunctionError as error:
            # What CloudWatch Logs would show for a failed invocation.
            log.error("%s failed: %s\n%s", spec.name, error, "".join(error.stack))
            raise

    def _fault_for(self, logical_id: str, event: Any) -> InvocationFault | None:
        with self._faults_lock:
            for fault in self.faults:
                if fault.function == logical_id and fault.fired < fault.times and fault.match(event):
                    fault.fired += 1
                    return fault
        return None

    def invoke_payload(self, name_or_arn: str, payload: bytes) -> tuple[bytes, str | None]:
        """Invoke with a JSON payload as the Lambda API does: (payload, FunctionError)."""
        event = json.loads(payload or b"{}")
        try:
            result = self.invoke(name_or_arn, event)
        except FunctionError as err:
            return json.dumps(err.payload()).encode(), "Unhandled"
        return json.dumps(result).encode(), None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ boto3 routing

    def install_invoke_hook(self) -> None:
        """Route boto3 ``lambda.Invoke`` calls made in this process to the handlers.

        Must be called after ``mock_aws`` has started (moto replaces boto3's
        default session); clients created afterwards carry the hook.
        """
        import boto3
        from botocore.awsrequest import AWSResponse
        from botocore.response import StreamingBody

        def before_invoke(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
            name = urllib.parse.unquote(params["url_path"].split("/functions/", 1)[1].rsplit("/invocations", 1)[0])
            body, error = self.invoke_payload(name, params.get("body") or b"{}")
            parsed: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}
            if error:
                parsed["FunctionError"] = error
            return AWSResponse(params.get("url", ""), 200, {}, None), parsed

        boto3._get_default_session().events.register("before-call.lambda.Invoke", before_invoke)
