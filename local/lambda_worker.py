"""One Lambda execution environment: a process that runs one function's handler.

``local.lambda_runtime`` starts it (from a fork server that has already
imported the layer's third-party packages), and talks to it over a pipe:

- the worker sets the environment Lambda would give the function (its
  variables from template.yaml, its role's credentials, Lambda's own
  variables), puts the function's code and the layer on ``sys.path``, turns
  local IAM enforcement on for its own calls (the caller is this function:
  every call signed with its credentials is checked against its role, and
  credentials it gets from STS against the role it assumed), then imports the
  handler's module — the cold start — and says ``ready``;
- then, one at a time: ``invoke`` → the handler's JSON result or its error.

A handler past its timeout is not this process's business: the runtime kills
the whole process, as Lambda ends the execution environment, so nothing the
handler would have done afterwards happens.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import logging
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any


@dataclass
class WorkerSetup:
    """What a worker needs to become its function's execution environment (pickled to it)."""

    logical_id: str
    function_name: str
    handler: str  # module.function
    code_uri: str
    layer_path: str
    environment: dict[str, str]
    memory: int
    invoked_function_arn: str
    log_level: str  # of the ``local`` loggers (DEBUG shows every IAM decision)
    iam: dict[str, Any] | None  # {template, stack, function_access_key, secrets}; None: not enforced
    replacement: str | None = None  # "package.module:function" run instead of the handler (tests)
    profile_dir: str | None = None  # write a cProfile of each invocation here (AGENTHQ_PROFILE_DIR)


@dataclass
class LambdaContext:
    """The context object Lambda passes to a handler (in a worker, and in the runtime's process)."""

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


def main(conn: Any, setup: WorkerSetup) -> None:
    """The worker's life: become the function, load it, then serve invocations until the pipe closes."""
    _name_process(setup.logical_id)
    # Ctrl-C in `make dev` reaches the whole process group; the runtime ends its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(setup.environment)
    for path in (setup.layer_path, setup.code_uri):  # /opt/python, then /var/task first, as on Lambda
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("local").setLevel(setup.log_level)
    started = time.monotonic()
    try:
        if setup.iam is not None:
            _enforce_iam(setup)
        handler = _load_handler(setup)
    except BaseException as exc:  # noqa: BLE001 - reported to the caller as Lambda reports an init error
        conn.send(("init_error", "Runtime.ImportModuleError" if isinstance(exc, ImportError) else "Runtime.Unknown",
                   f"{type(exc).__name__}: {exc}", traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return
    conn.send(("ready", time.monotonic() - started))
    asyncio.set_event_loop(asyncio.new_event_loop())  # Mangum runs the app on the current loop
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the runtime is gone
            return
        _kind, request_id, event_text, remaining, fault = message
        if setup.profile_dir:
            conn.send(_profiled(setup, handler, request_id, event_text, remaining, fault))
        else:
            conn.send(_invoke(setup, handler, request_id, event_text, remaining, fault))


def _profiled(setup: WorkerSetup, *args: Any) -> tuple[Any, ...]:
    """An invocation under cProfile, its statistics in ``<profile_dir>/<function>-<pid>-<time>.prof``."""
    import cProfile

    profile = cProfile.Profile()
    try:
        return profile.runcall(_invoke, setup, *args)
    finally:
        assert setup.profile_dir is not None  # nosec B101  # type narrowing; checked by the caller
        profile.dump_stats(os.path.join(setup.profile_dir, f"{setup.logical_id}-{os.getpid()}-{time.time():.6f}.prof"))


def _invoke(setup: WorkerSetup, handler: Any, request_id: str, event_text: str, remaining: float,
            fault: dict[str, Any] | None) -> tuple[Any, ...]:
    context = LambdaContext(setup.function_name, setup.invoked_function_arn, setup.memory, request_id,
                            deadline=time.monotonic() + remaining)
    try:
        if fault and fault["delay_seconds"]:
            time.sleep(fault["delay_seconds"])
        if fault and fault["when"] == "before":
            return ("error", fault["error_type"], "injected failure before the handler ran", [])
        result = handler(json.loads(event_text), context)
    except Exception as exc:  # noqa: BLE001 - a handler's error is the invocation's answer
        return ("error", type(exc).__name__, str(exc), traceback.format_exception(type(exc), exc, exc.__traceback__))
    if fault and fault["when"] == "after":
        return ("error", fault["error_type"], "injected failure after the handler ran", [])
    try:
        return ("result", json.dumps(result))
    except (TypeError, ValueError) as exc:
        return ("error", "Runtime.MarshalError", f"Unable to marshal response: {exc}", [])


def _load_handler(setup: WorkerSetup) -> Any:
    if setup.replacement is not None:
        module_name, function = setup.replacement.split(":", 1)
        return getattr(importlib.import_module(module_name), function)
    module_name, function = setup.handler.rsplit(".", 1)
    path = os.path.join(setup.code_uri, *module_name.split(".")) + ".py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"Unable to import module '{module_name}': no {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return getattr(module, function)


def _enforce_iam(setup: WorkerSetup) -> None:
    """Check every AWS call this process makes against the function's role (local.iam), as in the
    runtime's own process: the credentials of the Lambda environment are this function's."""
    from local.iam import activate, install_hooks, local_iam
    from local.template import ACCOUNT_ID, LocalStack, Resolver, functions

    install_hooks()  # before any botocore session exists in this process
    assert setup.iam is not None  # nosec B101  # type narrowing; checked by the caller
    template = setup.iam["template"]
    resolver = Resolver(template, LocalStack(**setup.iam["stack"]))
    secrets: dict[str, str] = setup.iam["secrets"]  # name or ARN -> ARN, as Secrets Manager resolves them
    unknown = f"arn:aws:secretsmanager:{resolver.stack.region}:{ACCOUNT_ID}:secret:"  # an ARN no policy names
    activate(local_iam(template, resolver, functions(template, resolver), lambda: setup.logical_id,
                       function_access_key=setup.iam["function_access_key"],
                       secret_arn=lambda secret_id: secrets.get(secret_id) or unknown + secret_id))


def _name_process(name: str) -> None:
    """Show the function's name for this process in ``top`` and ``ps -o comm`` (Linux; 15 characters)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
