"""Run the real Lambda handlers as the Lambda service would.

**Worker processes** (the default of the local cloud): each function runs in
execution environments of its own — processes (``local.lambda_worker``) that
get the function's environment from template.yaml and its role's credentials,
import its handler once (a cold start, on first use) and then serve one
invocation at a time (warm reuse, most recently used first). A function has at
most the runtime's ``concurrency`` environments (beyond it an invocation
waits for a free one: Lambda would scale further, this machine cannot). A
function's ``ReservedConcurrentExecutions`` holds as on Lambda, in either
mode: at most that many invocations at once (the waiting ones counted), and
one more is throttled (``TooManyRequestsException``; the handler never runs). A handler still running at its timeout
is killed with its process — nothing it would have done afterwards happens —
and the caller gets Lambda's timeout error; the next invocation cold-starts a
new environment. Environments are forked from a server process that has
imported the layer's third-party packages already, so a local cold start
costs the function's own imports, not boto3's (docs/decisions.md, 80).

**In this process** (``in_process()``, or a runtime made without workers):
each function's ``app.py`` is loaded under a module name of its own (every
function has an ``app.py``), with the layer on ``sys.path`` as ``/opt/python``
is on Lambda, and its handler runs on a thread. This is what tests that put
fakes into the process (``services_with``, ``step_faults`` …) need: their
fakes exist only here. A handler that a test or a benchmark replaced in its
module here runs here too. A thread cannot be killed: in this mode a handler
past its timeout is reported as timed out and keeps running.

``lambda:Invoke`` calls made through boto3 (the Step Functions interpreter's
Task states) are routed here by a botocore hook, in either mode.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import importlib.util
import io
import itertools
import json
import logging
import multiprocessing
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from local.lambda_worker import LambdaContext, WorkerSetup
from local.template import ROOT, FunctionSpec

LAYER_PATH = ROOT / "layers" / "common"
log = logging.getLogger("local.lambda")

DEFAULT_CONCURRENCY = 4  # execution environments per function without ReservedConcurrentExecutions
INIT_TIMEOUT_SECONDS = 10.0  # Lambda's limit on a cold start's init phase (then it is retried within the invoke)
# What the fork server imports once, so that a cold start forks them ready (the layer's third-party
# packages and what importing them pulls in; agenthq itself is imported by each function's cold start).
PRELOAD = ("boto3", "botocore.client", "botocore.session", "pydantic", "fastapi", "mangum", "pynamodb.models",
           "pynamodb.connection", "jwt", "cryptography.hazmat.primitives.asymmetric.ed25519", "argon2",
           "aws_lambda_powertools", "aws_lambda_powertools.logging", "aws_lambda_powertools.metrics",
           "anthropic", "yaml", "local.lambda_worker", "local.iam", "local.template")

_running: ContextVar[str | None] = ContextVar("local_lambda_running_function", default=None)
_THREAD_FUNCTION = "_local_lambda_function"
_THREAD_STATE_MACHINE = "_local_state_machine"
_in_process_depth = 0
_in_process_lock = threading.Lock()


@contextmanager
def in_process() -> Iterator[None]:
    """Meanwhile every runtime of this process runs handlers here, on threads, instead of in their
    worker processes: for tests whose fakes live in this process. Re-entrant."""
    global _in_process_depth
    with _in_process_lock:
        _in_process_depth += 1
    try:
        yield
    finally:
        with _in_process_lock:
            _in_process_depth -= 1


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


def _import_target(target: str) -> Callable[[dict, Any], Any]:
    """``"package.module:function"`` -> the function."""
    import importlib

    module, function = target.split(":", 1)
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def _state_machine_of(target: Any) -> str | None:
    """The state machine name of an execution worker's thread target (moto's ExecutionWorker)."""
    details = getattr(getattr(target, "__self__", None), "_evaluation_details", None)
    return getattr(getattr(details, "state_machine_details", None), "name", None)


class FunctionError(Exception):
    """A handler raised (or timed out): what Lambda reports as FunctionError."""

    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.stack = stack or []

    def payload(self) -> dict[str, Any]:
        return {"errorType": self.error_type, "errorMessage": self.message, "stackTrace": self.stack}


class Throttled(FunctionError):
    """Lambda refused the invocation: the function is at its reserved concurrency
    (the Invoke API's 429 ``TooManyRequestsException``; the handler never ran)."""

    def __init__(self, function: str) -> None:
        super().__init__("TooManyRequestsException", f"Rate Exceeded. ({function} is at its reserved concurrency)")


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
    ``delay_seconds`` holds the invocation first, inside the invocation (it
    counts against the function's timeout). Applies to ``times`` invocations
    that ``match`` (decided in this process, so a fault works in either mode)."""

    function: str  # logical id
    match: Callable[[Any], bool] = lambda event: True
    times: int = 1
    when: str = "before"
    delay_seconds: float = 0.0
    error_type: str = "InjectedFault"
    fired: int = 0


@dataclass
class Workers:
    """How the runtime runs functions in worker processes."""

    environment: Callable[[FunctionSpec], dict[str, str]]  # the function's whole environment, as Lambda sets it
    iam: Callable[[], dict[str, Any] | None] = lambda: None  # WorkerSetup.iam (None: IAM not enforced)
    concurrency: int = DEFAULT_CONCURRENCY
    profile_dir: str | None = None  # each invocation's cProfile statistics go there (a developer's tool)


@dataclass
class TimedOut:
    """An invocation the runtime stopped at the function's timeout (for tests and logs)."""

    function: str
    pid: int | None  # the worker process killed with it (None: in this process, where nothing can be killed)
    at: float  # time.monotonic()


class _Worker:
    """One execution environment: a worker process and the pipe to it."""

    def __init__(self, context: Any, setup: WorkerSetup, generation: int) -> None:
        from local.lambda_worker import main

        self.generation = generation  # of its function's code: a worker of an older one is not reused
        self.conn, child = context.Pipe()
        self.process = context.Process(target=main, args=(child, setup), daemon=True,
                                       name=f"lambda-{setup.logical_id}")
        self.process.start()
        child.close()
        self.init_seconds: float | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def wait_ready(self, timeout: float) -> None:
        """The cold start: the worker has imported its handler, or FunctionError."""
        if not self.conn.poll(timeout):
            self.kill()
            raise FunctionError("Sandbox.Timedout", f"Init timed out after {timeout:.2f} seconds")
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise FunctionError("Runtime.ExitError", "Runtime exited without providing a reason") from None
        if message[0] == "ready":
            self.init_seconds = message[1]
            return
        self.kill()
        _, error_type, text, stack = message
        raise FunctionError(error_type, text, stack)

    def died_idle(self) -> bool:
        """An idle environment that is gone (killed from outside). Its pipe says so at once (an idle one has
        nothing to say, so anything readable is the end of the pipe); its process object only once the fork
        server has reaped it and reported, which can come later."""
        try:
            return not self.process.is_alive() or self.conn.poll(0)
        except (EOFError, OSError):
            return True

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class _Reservation:
    """A function's ``ReservedConcurrentExecutions``, as Lambda holds it: at most that many invocations
    at once, in either mode; one more is throttled (``Throttled``, the handler never runs). Counted are
    the invocations under way, those waiting for one of this machine's worker processes included."""

    def __init__(self, reserved: int) -> None:
        self.reserved = reserved
        self.in_flight = 0
        self.throttled = 0
        self._lock = threading.Lock()

    @contextmanager
    def held(self, function: str) -> Iterator[None]:
        with self._lock:
            if self.in_flight >= self.reserved:
                self.throttled += 1
                raise Throttled(function)
            self.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1


class _Environments:
    """A function's execution environments: idle ones reused most recent first, at most ``limit``.

    On Lambda an invocation never waits for an environment: under the function's concurrency it gets
    one of its own at once. Here at most ``limit`` run, and the rest wait; so that one caller's burst
    does not make every other caller wait behind all of it (on Lambda it would not wait at all), the
    waiting invocations are served **in turns by caller** (``lane``: the WebSocket connection that sent
    the message; None, one lane for every other caller): each lane's invocations in arrival order, and
    a lane with one waiting is served before a second of a lane with many waiting (start-time fair
    queueing, one turn per invocation). Nothing more runs at once and nothing less waits in all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.idle: list[_Worker] = []
        self.count = 0  # idle + busy + starting
        self._lock = threading.Lock()
        self.cold_starts = 0
        self.generation = 0  # moves on when the function's code changes (a test replaces its handler)
        #: invocations waiting for an environment, sorted: (turn, arrival) -> the condition it waits on.
        #: Only the first is woken when an environment frees (not every waiting thread: under a burst that
        #: woke dozens of threads for each invocation, which took the interpreter from everything else).
        self.queue: list[tuple[int, int]] = []
        self._waiting: dict[tuple[int, int], threading.Condition] = {}
        self._turn = 0  # the turn of the last invocation that got an environment
        self._lanes: dict[object, int] = {}  # a lane with invocations waiting -> the turn of its last one
        self._arrivals = itertools.count()

    def _wake_first(self) -> None:
        """The first waiting invocation looks again (the lock held)."""
        if self.queue:
            self._waiting[self.queue[0]].notify()

    def take(self, function: str, start: Callable[[], _Worker], patience: float,
             lane: object = None) -> tuple[_Worker, float]:
        """A free environment (a warm one, else a new one: a cold start), and how long the invocation waited
        for one. It waits at most ``patience`` (its timeout: on Lambda it would have run at once), for its
        turn (see the class)."""
        began = time.monotonic()
        with self._lock:
            turn = max(self._turn, self._lanes.get(lane, 0)) + 1
            self._lanes[lane] = turn
            ticket = (turn, next(self._arrivals))
            bisect.insort(self.queue, ticket)
            self._waiting[ticket] = waiting = threading.Condition(self._lock)
            try:
                while self.queue[0] != ticket or (not self.idle and self.count >= self.limit):
                    left = began + patience - time.monotonic()
                    if left <= 0:
                        raise FunctionError("Sandbox.Timedout", f"Task timed out after {patience:.2f} seconds "
                                            f"(waited for one of {self.limit} busy execution environments)")
                    waiting.wait(left)
            finally:
                self.queue.remove(ticket)
                del self._waiting[ticket]
                if self._lanes.get(lane) == turn:  # the lane's last waiting one: it starts afresh next time
                    del self._lanes[lane]
                self._wake_first()  # the next in line looks again
            self._turn = max(self._turn, turn)
            waited = time.monotonic() - began
            if self.idle:
                return self.idle.pop(), waited
            self.count += 1
            self.cold_starts += 1
        try:
            return start(), waited
        except BaseException:
            self.give_back(None)
            raise

    def give_back(self, worker: _Worker | None) -> None:
        """A worker done with its invocation (None: it is gone)."""
        retired = None
        with self._lock:
            if worker is None:
                self.count -= 1
            elif worker.generation != self.generation:
                self.count -= 1
                retired = worker
            else:
                self.idle.append(worker)
            self._wake_first()
        if retired is not None:
            retired.kill()

    def drain(self, new_generation: bool = False) -> list[_Worker]:
        """Take every idle worker out (to be killed); ``new_generation``: busy ones will not be reused."""
        with self._lock:
            idle, self.idle = self.idle, []
            self.count -= len(idle)
            if new_generation:
                self.generation += 1
            self._wake_first()
            return idle


class LambdaRuntime:
    def __init__(self, specs: dict[str, FunctionSpec], region: str = "us-east-1", account: str = "123456789012",
                 max_concurrency: int = 64, workers: Workers | None = None) -> None:
        self.specs = specs
        self.region = region
        self.account = account
        self._by_name = {spec.name: spec for spec in specs.values()}
        self._modules: dict[str, ModuleType] = {}
        self._handlers: dict[str, Callable[[dict, Any], Any]] = {}  # as loaded: a replaced one runs here
        self._load_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="lambda",
                                        initializer=_give_thread_an_event_loop)
        self._callers = ThreadPoolExecutor(max_workers=256, thread_name_prefix="lambda-caller")
        self.invocations: dict[str, int] = {}
        self._count_lock = threading.Lock()
        self.faults: list[InvocationFault] = []
        self._faults_lock = threading.Lock()
        self.timeouts: dict[str, float] = {}  # logical id -> a timeout other than the template's (tests)
        self.replacements: dict[str, str] = {}  # logical id -> "module:function" run instead (tests)
        self.timed_out: list[TimedOut] = []
        self.workers = workers
        concurrency = workers.concurrency if workers else 0
        self._environments = {logical_id: _Environments(min(spec.reserved_concurrency, concurrency)
                                                        if spec.reserved_concurrency is not None else concurrency)
                              for logical_id, spec in specs.items()}
        self._reservations = {logical_id: _Reservation(spec.reserved_concurrency)
                              for logical_id, spec in specs.items() if spec.reserved_concurrency is not None}
        self._context: Any = None  # the fork server's multiprocessing context, made on first use
        self._closed = False
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
        """The function's module as loaded in this process (in-process invocations run it)."""
        with self._load_lock:
            if logical_id not in self._modules:
                spec = self.specs[logical_id]
                module_file, handler_name = spec.handler.rsplit(".", 1)
                path = spec.code_uri / f"{module_file}.py"
                module_name = f"_lambda_{logical_id}"
                loader_spec = importlib.util.spec_from_file_location(module_name, path)
                assert loader_spec and loader_spec.loader  # nosec B101  # type narrowing of importlib's API
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[module_name] = module
                loader_spec.loader.exec_module(module)
                self._modules[logical_id] = module
                self._handlers[logical_id] = getattr(module, handler_name)
            return self._modules[logical_id]

    def handler(self, logical_id: str) -> Callable[[dict, Any], Any]:
        if logical_id in self.replacements:
            return _import_target(self.replacements[logical_id])
        spec = self.specs[logical_id]
        return getattr(self.module(logical_id), spec.handler.rsplit(".", 1)[1])

    @contextmanager
    def handler_replaced(self, logical_id: str, target: str) -> Iterator[None]:
        """Meanwhile the function runs ``target`` (``"package.module:function"``, importable from the
        repository) instead of its handler — in its worker processes, with its environment and role, or
        in this process. For tests of the execution model itself (what a handler may do, and what
        happens to one that runs too long)."""
        self.replacements[logical_id] = target
        self._retire(logical_id)
        try:
            yield
        finally:
            self.replacements.pop(logical_id, None)
            self._retire(logical_id)

    def retire_environments(self) -> None:
        """Every function's next invocation starts a new environment (as after a deploy): for measuring
        what a workload alone leaves in its environments (bench.memory)."""
        for logical_id in self.specs:
            self._retire(logical_id)

    def _retire(self, logical_id: str) -> None:
        """No environment of the function's current code is used again (a cold start follows)."""
        for worker in self._environments[logical_id].drain(new_generation=True):
            worker.kill()

    def warm(self) -> None:
        """Get ready for the first request. Without workers: load every function in this process. With
        workers: start the fork server (it imports the layer's packages once); each function still
        cold-starts on its first invocation, as on Lambda."""
        if self.workers is None:
            for logical_id in self.specs:
                self.module(logical_id)
            return
        from multiprocessing import forkserver

        self._fork_server()
        forkserver.ensure_running()

    def runs_in_process(self, logical_id: str) -> bool:
        """Whether an invocation of the function now runs in this process (see the module's docstring)."""
        if self.workers is None or _in_process_depth > 0:
            return True
        module = self._modules.get(logical_id)
        if module is None:
            return False
        return getattr(module, self.specs[logical_id].handler.rsplit(".", 1)[1]) is not self._handlers[logical_id]

    def cold_starts(self, logical_id: str) -> int:
        """How many execution environments of the function were started (workers only)."""
        return self._environments[logical_id].cold_starts

    def throttles(self, logical_id: str) -> int:
        """How many invocations of the function its reserved concurrency refused."""
        reservation = self._reservations.get(logical_id)
        return reservation.throttled if reservation else 0

    # ------------------------------------------------------------------ invocation

    def timeout_of(self, spec: FunctionSpec) -> float:
        return self.timeouts.get(spec.logical_id, float(spec.timeout))

    @contextmanager
    def timeout_changed(self, logical_id: str, seconds: float) -> Iterator[None]:
        """Meanwhile the function's timeout is ``seconds`` (tests: a timeout reached quickly)."""
        self.timeouts[logical_id] = seconds
        try:
            yield
        finally:
            self.timeouts.pop(logical_id, None)

    def context_for(self, spec: FunctionSpec) -> LambdaContext:
        return LambdaContext(
            function_name=spec.name,
            invoked_function_arn=self._arn(spec),
            memory_limit_in_mb=spec.memory,
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + self.timeout_of(spec),
        )

    def _arn(self, spec: FunctionSpec) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{spec.name}"

    def invoke(self, name_or_arn: str, event: Any, lane: object = None) -> Any:
        """Call the function's handler with ``event``; its result, or FunctionError (or Throttled).
        A handler running past the function's Timeout is stopped and reported as Lambda does. ``lane``:
        the caller, when it waits for an environment (``_Environments``: callers are served in turns)."""
        spec = self.spec(name_or_arn)
        with self._count_lock:
            self.invocations[spec.logical_id] = self.invocations.get(spec.logical_id, 0) + 1
        fault = self._fault_for(spec.logical_id, event)
        reservation = self._reservations.get(spec.logical_id)
        try:
            with reservation.held(spec.logical_id) if reservation else contextlib.nullcontext():
                if self.runs_in_process(spec.logical_id):
                    return self._invoke_here(spec, event, fault)
                return self._invoke_in_worker(spec, event, fault, lane)
        except FunctionError as error:
            # What CloudWatch Logs would show for a failed invocation.
            log.error("%s failed: %s\n%s", spec.name, error, "".join(error.stack))
            raise

    def submit(self, name_or_arn: str, event: Any) -> Future[Any]:
        """Invoke without waiting: a future of ``invoke``'s answer. A caller that stops waiting (API
        Gateway at its integration timeout) leaves the invocation to end as it would: at its timeout."""
        return self._callers.submit(self.invoke, name_or_arn, event)

    def _timed_out(self, spec: FunctionSpec, pid: int | None) -> FunctionError:
        self.timed_out.append(TimedOut(spec.logical_id, pid, time.monotonic()))
        return FunctionError("Sandbox.Timedout", f"Task timed out after {self.timeout_of(spec):.2f} seconds")

    def _invoke_here(self, spec: FunctionSpec, event: Any, fault: InvocationFault | None) -> Any:
        handler = self.handler(spec.logical_id)
        context = self.context_for(spec)

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
            return future.result(timeout=self.timeout_of(spec))
        except FutureTimeout:
            raise self._timed_out(spec, None) from None

    def _invoke_in_worker(self, spec: FunctionSpec, event: Any, fault: InvocationFault | None,
                          lane: object = None) -> Any:
        environments = self._environments[spec.logical_id]
        timeout = self.timeout_of(spec)
        worker, waited = environments.take(spec.logical_id, lambda: self._start_worker(spec), patience=timeout,
                                           lane=lane)
        while worker.died_idle():  # an idle environment that died (killed from outside): another
            worker.kill()
            environments.give_back(None)
            worker, more = environments.take(spec.logical_id, lambda: self._start_worker(spec),
                                             patience=timeout - waited, lane=lane)
            waited += more
        timeout -= waited  # the time it waited for an environment counts (a cold start's init does not)
        fault_spec = None if fault is None else {"delay_seconds": fault.delay_seconds, "when": fault.when,
                                                 "error_type": fault.error_type}
        kept: _Worker | None = None
        try:
            worker.conn.send(("invoke", str(uuid.uuid4()), json.dumps(event), timeout, fault_spec))
            if not worker.conn.poll(timeout):
                log.warning("%s: killed at its timeout (%.2f s), with its process %s", spec.name, self.timeout_of(spec),
                            worker.pid)
                worker.kill()
                raise self._timed_out(spec, worker.pid)
            reply = worker.conn.recv()
            kept = worker
        except (EOFError, OSError):
            worker.kill()
            raise FunctionError("Runtime.ExitError", "Runtime exited without providing a reason") from None
        finally:
            environments.give_back(kept)
        if reply[0] == "result":
            return json.loads(reply[1])
        _, error_type, message, stack = reply
        raise FunctionError(error_type, message, stack)

    def _start_worker(self, spec: FunctionSpec) -> _Worker:
        assert self.workers is not None  # nosec B101  # type narrowing: only with workers
        if self._closed:
            raise FunctionError("Runtime.ExitError", "the local cloud is stopping")
        setup = WorkerSetup(
            logical_id=spec.logical_id, function_name=spec.name, handler=spec.handler, code_uri=str(spec.code_uri),
            layer_path=str(LAYER_PATH), environment=self.workers.environment(spec), memory=spec.memory,
            replacement=self.replacements.get(spec.logical_id), profile_dir=self.workers.profile_dir,
            invoked_function_arn=self._arn(spec), log_level=logging.getLevelName(logging.getLogger("local")
                                                                                  .getEffectiveLevel()),
            iam=self.workers.iam())
        worker = _Worker(self._fork_server(), setup, self._environments[spec.logical_id].generation)
        worker.wait_ready(INIT_TIMEOUT_SECONDS + self.timeout_of(spec))
        log.info("%s: cold start in process %s (init %.0f ms)", spec.name, worker.pid,
                 (worker.init_seconds or 0) * 1000)
        return worker

    def _fork_server(self) -> Any:
        with self._load_lock:
            if self._context is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(list(PRELOAD))
                self._context = context
            return self._context

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
        except Throttled:
            raise  # the Invoke API's own error, not the function's
        except FunctionError as err:
            return json.dumps(err.payload()).encode(), "Unhandled"
        return json.dumps(result).encode(), None

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._callers.shutdown(wait=False, cancel_futures=True)
        for environments in self._environments.values():
            for worker in environments.drain():
                worker.kill()

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
            try:
                body, error = self.invoke_payload(name, params.get("body") or b"{}")
            except Throttled as throttled:  # the Invoke API's own error, not the function's
                return AWSResponse(params.get("url", ""), 429, {}, None), {
                    "Error": {"Code": throttled.error_type, "Message": throttled.message},
                    "ResponseMetadata": {"HTTPStatusCode": 429}}
            parsed: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}
            if error:
                parsed["FunctionError"] = error
            return AWSResponse(params.get("url", ""), 200, {}, None), parsed

        boto3._get_default_session().events.register("before-call.lambda.Invoke", before_invoke)

