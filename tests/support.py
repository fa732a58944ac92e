"""Every helper tests share: HTTP clients of the local cloud, signed-up
tenants, runs launched and watched, a fixed clock, and fakes installed through
``Services(settings, **fakes)``. Test modules import from here, never from
each other."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import requests
from botocore.credentials import Credentials
from botocore.exceptions import EndpointConnectionError

from agenthq import ids
from agenthq.adapters.stepfunctions import StepFunctionsOrchestrator
from agenthq.tools.registry import ToolContext, ToolRegistry, ToolResult
from agenthq_cli.signing import SigV4, sign
from local.template import ROOT

if TYPE_CHECKING:
    from local.cloud import LocalCloud

PASSWORD = "correct-horse-battery-staple-42"


def client_for(cloud: LocalCloud, source_ip: str | None = None) -> LocalApi:
    """An HTTP client for the local REST API (base URL includes the stage).

    Each client connects from its own loopback address (all of 127.0.0.0/8 is
    this machine), so per-source-IP protections such as login throttling see
    each test as a different client, as they would see different users."""
    source_ip = source_ip or f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    transport = httpx.HTTPTransport(local_address=source_ip)
    return LocalApi(base_url=cloud.rest_url, timeout=30, transport=transport, operator=operator_auth(cloud))


def operator_auth(cloud: LocalCloud) -> SigV4:
    """Signs requests as the local cloud's operator (the operator routes, /v1/admin/…)."""
    assert cloud.operator is not None
    return SigV4(Credentials(cloud.operator.access_key_id, cloud.operator.secret_access_key),
                 cloud.config.stack.region)


class OperatorSigning(requests.auth.AuthBase):
    """``operator_auth``'s SigV4 for a ``requests`` request (what schemathesis sends)."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.signer = operator_auth(cloud)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        content = body.encode() if isinstance(body, str) else bytes(body)  # type: ignore[arg-type]
        headers = {name: request.headers[name] for name in ("content-type",) if name in request.headers}
        signed = sign(httpx.Request(str(request.method), str(request.url), headers=headers, content=content),
                      self.signer.credentials, self.signer.region)
        for name in ("x-amz-date", "x-amz-security-token", "authorization"):
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
        return request


@dataclass(frozen=True)
class FixedClock:
    """A ``Clock`` that always tells ``at``."""

    at: datetime

    def now(self) -> datetime:
        return self.at


class DevServer:
    """``make dev``'s program (or ``make dev`` itself) in a process group of its own, as a
    newcomer runs it in a terminal: the banner is read for the URLs, Ctrl-C stops it."""

    def __init__(self, command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        from local.template import ROOT

        self.command = command
        self.cwd = cwd or ROOT
        self.extra_env = env or {}
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.rest_url = ""
        self.console_url = ""  # printed once the web console exists (the console branch)
        self.ws_url = ""
        self.dynamodb_url = ""
        self.operator_key = ("", "")  # the local operator's access key id and secret, as printed

    def start(self, timeout: float = 90) -> float:
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "ANTHROPIC_"))}
        self.process = subprocess.Popen(self.command, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env | self.extra_env, start_new_session=True)
        assert self.process.stdout is not None
        while time.monotonic() - started < timeout:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if m := re.search(r"REST API\s+(http://\S+)", line):
                self.rest_url = m.group(1)
            if m := re.search(r"Web console\s+(http://\S+)", line):
                self.console_url = m.group(1)
            if m := re.search(r"WebSocket API\s+(ws://\S+)", line):
                self.ws_url = m.group(1)
            if m := re.search(r"DynamoDB Local\s+(http://\S+)", line):
                self.dynamodb_url = m.group(1)
            if m := re.search(r"AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)", line):
                self.operator_key = (m.group(1), m.group(2))
            if "Press Ctrl-C" in line:
                return time.monotonic() - started
        raise AssertionError("the local cloud did not come up:\n" + "".join(self.output))

    @property
    def operator(self) -> SigV4:
        """Signs as the operator with the credentials the banner printed."""
        assert all(self.operator_key), "make dev prints the operator's local credentials:\n" + "".join(self.output)
        return SigV4(Credentials(*self.operator_key), "us-east-1")

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C: SIGINT to the whole foreground group (``make`` and the local cloud under it)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)
        out, _ = self.process.communicate(timeout=timeout)
        self.output.append(out)
        return self.process.returncode

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def doc_block(doc: str, name: str) -> str:
    """The fenced code block a document marks ``<!-- name -->`` … ``<!-- /name -->`` (``doc``: a path
    under the checkout): what tests run word for word, so the documents cannot drift from the code."""
    from local.template import ROOT

    text = (ROOT / doc).read_text()
    block = re.search(rf"<!-- {re.escape(name)} -->\s*```\w*\n(.*?)```\s*<!-- /{re.escape(name)} -->", text, re.S)
    assert block, f"{doc} lost its {name} block"
    return block.group(1)


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{ids.new_id().lower()}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Tenant:
    """A signed-up workspace with its owner's tokens (and, once made, an API key)."""

    api: httpx.Client
    email: str
    user_id: str
    workspace_id: str
    access_token: str
    refresh_token: str
    api_key: str = ""
    api_key_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)

    @property
    def key_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}

    def path(self, suffix: str = "") -> str:
        return f"/workspaces/{self.workspace_id}{suffix}"

    def get(self, suffix: str = "", **kw: Any) -> httpx.Response:
        return self.api.get(self.path(suffix), headers=self.headers, **kw)

    def post(self, suffix: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.api.post(self.path(suffix), headers={**self.headers, **kw.pop("headers", {})}, json=json, **kw)


class LocalApi(httpx.Client):
    """An HTTP client for a local cloud's REST API that can also act as its operator."""

    def __init__(self, *, operator: httpx.Auth, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.operator = operator


def set_tier(api: httpx.Client, workspace_id: str, tier: str, operator: httpx.Auth | None = None,
             **change: Any) -> dict[str, Any]:
    """The operator sets a workspace's tier (a signed PATCH /admin/workspaces/{wid})."""
    operator = operator or getattr(api, "operator", None)
    assert operator is not None, "an operator's credentials are needed to change a tier"
    changed = api.patch(f"/admin/workspaces/{workspace_id}", json={"tier": tier, **change}, auth=operator)
    assert changed.status_code == 200, changed.text
    return changed.json()


def wait_for_offboarding(api: LocalApi, workspace_id: str, timeout: float = 120) -> dict[str, Any]:
    """Watch the workspace's offboarding as the operator does (GET /admin/workspaces/{wid})
    until it finished; its job (status, started_at, items_deleted, finished_at)."""
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = api.get(f"/admin/workspaces/{workspace_id}", auth=api.operator)
        assert response.status_code == 200, response.text
        seen = response.json()
        assert seen["status"] in ("offboarding", "offboarded"), seen
        if seen["status"] == "offboarded":
            return dict(seen["offboarding"])
        assert seen["offboarding"]["status"] in ("running", "finishing"), seen
        time.sleep(0.2)
    raise AssertionError(f"workspace {workspace_id} still offboarding after {timeout} s: {seen}")


def workspace_leftovers(cloud: LocalCloud, workspace_id: str) -> list[dict[str, Any]]:
    """Every item of the table that is the workspace's or points into it (a test-only Scan):
    its id in a key or in an attribute. Refresh tokens are left out: hashed, useless
    without their deleted session, removed by their TTL (decisions.md)."""
    return [item for item in table_items(cloud) if not item["pk"].startswith("REFRESH#")
            and any(workspace_id in str(value) for value in item.values())]


def signup(api: httpx.Client, tag: str = "owner", workspace_name: str = "Acme Robotics",
           tier: str | None = None, operator: httpx.Auth | None = None) -> Tenant:
    """Sign up a new workspace. ``tier`` moves it off the free plan (whose 5 requests
    per second would throttle a test that talks fast): the operator's change, signed
    with ``operator`` (by default the client's, see ``LocalApi``)."""
    email = unique_email(tag)
    response = api.post("/auth/signup", json={"email": email, "password": PASSWORD, "workspace_name": workspace_name})
    assert response.status_code == 201, response.text
    body = response.json()
    tenant = Tenant(api=api, email=email, user_id=body["user"]["id"], workspace_id=body["workspace"]["id"],
                    access_token=body["access_token"], refresh_token=body["refresh_token"])
    if tier:
        set_tier(api, tenant.workspace_id, tier, operator)
    return tenant


def with_api_key(tenant: Tenant, scopes: tuple[str, ...] = ("runs:read", "runs:write", "agents:read",
                                                            "agents:write", "usage:read", "workspace:read")) -> Tenant:
    response = tenant.post("/api-keys", json={"name": "ci", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    tenant.api_key = response.json()["key"]
    tenant.api_key_id = response.json()["id"]
    return tenant


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "request_id"} <= set(body["error"]), body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


# --------------------------------------------------------------------------- runs


def create_agent(tenant: Tenant, name: str, personality: str, **extra: Any) -> dict[str, Any]:
    response = tenant.post("/agents", json={"name": name, "personality": personality, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def launch(tenant: Tenant, agent_id: str, text: str, key: str | None = None,
           headers: dict[str, str] | None = None) -> httpx.Response:
    extra = {"Idempotency-Key": key} if key else {}
    return tenant.api.post(tenant.path(f"/agents/{agent_id}/runs"), json={"input": text},
                           headers={**(headers or tenant.headers), **extra})


def wait_for(tenant: Tenant, run_id: str, statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled", "timed_out"),
             timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = tenant.get(f"/runs/{run_id}").json()
        if run["status"] in statuses:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {run.get('status')} after {timeout} s")


def _every_event(tenant: Tenant, path: str) -> list[dict[str, Any]]:
    """Every event of an event cursor (``…/events``), in its order, read page by page."""
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page = tenant.get(path, params={"after": after}).json()
        items += page["items"]
        if page["next_after"] is None:
            return items
        after = page["next_after"]


def events_of(tenant: Tenant, run_id: str) -> list[dict[str, Any]]:
    return _every_event(tenant, f"/runs/{run_id}/events")


def assert_dense(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def session_events_of(tenant: Tenant, session_id: str) -> list[dict[str, Any]]:
    """Every event of a session, in its order, read page by page."""
    return _every_event(tenant, f"/sessions/{session_id}/events")


# --------------------------------------------------------------------------- the agenthq command


def agenthq_cli(cloud: LocalCloud, home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`agenthq` as a user runs it against the local cloud: a separate process with this worktree's CLI,
    its home and configuration under ``home``. Call it with the command's arguments, ``stdin=`` for what
    it reads, and extra environment variables as keywords."""
    def run(*args: str, stdin: str | None = None, **env_extra: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
               "AGENTHQ_CONFIG_DIR": str(home / "config"), "PYTHONPATH": str(ROOT / "cli"),
               "AGENTHQ_API_URL": cloud.rest_url, "AGENTHQ_WS_URL": cloud.ws_url, **env_extra}
        return subprocess.run([sys.executable, "-m", "agenthq_cli", *args], env=env, capture_output=True,
                              text=True, timeout=180, input=stdin)
    return run


# --------------------------------------------------------------------------- fakes


class ObservedTools(ToolRegistry):
    """The real registry's tools; ``before(call_number, ctx)`` runs before each call."""

    def __init__(self, real: ToolRegistry, before: Callable[[int, ToolContext], None]) -> None:
        super().__init__()
        for name in real.names():
            tool = real.get(name)
            assert tool is not None
            self.register(tool)
        self.before = before
        self.calls: list[str] = []

    def execute(self, name: str, input: Any, ctx: ToolContext, allowed: Any) -> ToolResult:
        self.calls.append(name)
        self.before(len(self.calls), ctx)
        return super().execute(name, input, ctx, allowed)


@contextmanager
def services_with(settings: dict[str, Any] | None = None, **fakes: Any) -> Iterator[None]:
    """Meanwhile the local cloud's functions run in this process (``in_process``: the fakes exist only
    here), with the process's services rebuilt with ``fakes`` (``Services(settings, **fakes)``) and the
    ``settings`` changed; then both restored."""
    from agenthq.services import Services, get_services, set_services
    from local.lambda_runtime import in_process

    real = get_services()
    with in_process():
        set_services(Services(real.settings.model_copy(update=settings or {}), real.clock, **fakes))
        try:
            yield
        finally:
            set_services(real)


@dataclass(frozen=True)
class AddedMetric:
    name: str
    value: float
    thread: int  # the thread that added it (the local cloud's functions run in this process's threads)


@contextmanager
def metrics_added() -> Iterator[list[AddedMetric]]:
    """Meanwhile the local cloud's functions run in this process (``in_process``) and every application
    metric they add is recorded (and still added): what they would publish."""
    from agenthq import observability
    from local.lambda_runtime import in_process

    added: list[AddedMetric] = []
    metrics = observability.metrics
    real = metrics.add_metric

    def add_metric(name: str, unit: Any, value: float, **kwargs: Any) -> None:
        added.append(AddedMetric(name, value, threading.get_ident()))
        real(name=name, unit=unit, value=value, **kwargs)

    metrics.add_metric = add_metric  # type: ignore[method-assign]
    try:
        with in_process():
            yield added
    finally:
        del metrics.add_metric  # the class's method again
        metrics.clear_metrics()


def total(added: list[AddedMetric], name: str, thread: int | None = None) -> float:
    return sum(m.value for m in added if m.name == name and (thread is None or m.thread == thread))


def table_items(cloud: LocalCloud, **conditions: Any) -> list[dict[str, Any]]:
    """Every item of the local cloud's table (all pages: a Scan page stops at
    1 MB) whose attributes equal ``conditions``. Tests only: no request path scans."""
    import boto3

    table = boto3.resource("dynamodb", region_name=cloud.config.stack.region).Table(cloud.config.stack.table_name)
    items: list[dict[str, Any]] = []
    start: dict[str, Any] = {}
    while True:
        page = table.scan(ConsistentRead=True, **start)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return [i for i in items if all(i.get(k) == v for k, v in conditions.items())]
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


class InjectedFault(Exception):
    """What a :class:`StepFault` raises: the run worker's invocation fails, and Step Functions retries it."""


@dataclass
class StepFault:
    """A fault in one step of a run's slice (the run worker runs several steps
    in one invocation, so an invocation-level fault cannot aim at one):
    ``when="before"`` fails the invocation as the step begins, ``"after"`` once
    the step has done its work (a crash after its commit), ``"none"`` only
    holds the step for ``delay_seconds`` first. Applies to ``times`` steps
    named in ``steps`` whose event ``{step, turn, run_id, ...}`` matches."""

    steps: tuple[str, ...]
    match: Callable[[dict[str, Any]], bool] = lambda event: True
    times: int = 1
    when: str = "before"
    delay_seconds: float = 0.0
    fired: int = 0


@contextmanager
def step_faults(*faults: StepFault) -> Iterator[tuple[StepFault, ...]]:
    """Meanwhile the run engine's steps go through ``faults`` (the functions run in this process, where
    the faulty steps are: ``in_process``)."""
    from agenthq.runs import engine
    from local.lambda_runtime import in_process

    originals = dict(engine.STEPS)
    lock = threading.Lock()

    def faulty(name: str, step: Callable[..., str]) -> Callable[..., str]:
        def run(work: Any, event: dict[str, Any]) -> str:
            with lock:
                fault = next((f for f in faults if name in f.steps and f.fired < f.times and f.match(event)), None)
                if fault is not None:
                    fault.fired += 1
            if fault is None:
                return step(work, event)
            time.sleep(fault.delay_seconds)
            if fault.when == "before":
                raise InjectedFault(f"injected before {name} {event.get('turn')}")
            answer = step(work, event)
            if fault.when == "after":
                raise InjectedFault(f"injected after {name} {event.get('turn')}")
            return answer

        return run

    engine.STEPS.update({name: faulty(name, step) for name, step in originals.items()})
    try:
        with in_process():
            yield faults
    finally:
        engine.STEPS.update(originals)


class AnswerHeld:
    """The real model, except that answers to requests whose first message holds
    ``marker`` are held ``seconds`` after the model gave them (``held`` is set
    then): what a slow answer looks like to the step that waits for it."""

    def __init__(self, real: Any, marker: str, seconds: float) -> None:
        self.real, self.marker, self.seconds = real, marker, seconds
        self.held = threading.Event()

    def create_message(self, request: Any) -> Any:
        response = self.real.create_message(request)
        if self.marker in str(request.messages[0]):
            self.held.set()
            time.sleep(self.seconds)
        return response


@contextmanager
def tools_replaced_by(before: Callable[[int, ToolContext], None]) -> Iterator[ObservedTools]:
    """Runs use ObservedTools(before) instead of the real registry, meanwhile."""
    from agenthq.services import get_services

    fake = ObservedTools(get_services().tools, before)
    with services_with(tools=fake):
        yield fake


class UnreachableStepFunctions(StepFunctionsOrchestrator):
    """The real orchestrator, except that StartExecution fails as when Step
    Functions is unreachable or refuses (throttled, a service error)."""

    def __init__(self) -> None:
        from agenthq.services import get_services

        real = get_services().orchestrator
        assert isinstance(real, StepFunctionsOrchestrator)
        super().__init__(real.client, real.state_machine_arn)
        self.refused: list[str] = []

    def start(self, name: str, payload: dict[str, Any]) -> str:
        self.refused.append(name)
        raise EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com/")


# --------------------------------------------------------------------------- live status (WebSocket API)


class LiveClient:
    """A WebSocket client of the local cloud's live status API that reads every frame on a thread
    (``frames`` fills as they arrive; ``reading=False`` stops reading, as a stuck client would)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, query: str = "") -> None:
        import queue

        from websockets.sync.client import connect

        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.reading = True
        self.closed: Any = None  # the close frame's code, once closed
        self.ws = connect(url + (f"?{query}" if query else ""), additional_headers=headers or {}, proxy=None, legacy=True,
                          open_timeout=30, max_size=2 ** 20)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                while not self.reading:
                    time.sleep(0.05)
                self.frames.put(json.loads(self.ws.recv()))
        except ConnectionClosed as closed:
            self.closed = closed.rcvd.code if closed.rcvd else 1006
        except Exception:  # noqa: BLE001 - a test inspects `closed`
            self.closed = 1006

    def send(self, frame: dict[str, Any] | str) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def next(self, timeout: float = 30, type_: str | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.frames.get(timeout=max(0.01, deadline - time.monotonic()))
            if type_ is None or frame.get("type") == type_:
                return frame

    def unread(self, settle: float = 1) -> list[dict[str, Any]]:
        """The frames received and not read yet, once ``settle`` seconds have let late ones arrive."""
        time.sleep(settle)
        frames: list[dict[str, Any]] = []
        while not self.frames.empty():
            frames.append(self.frames.get())
        return frames

    def run_events(self, run_id: str, until_seq: int | None = None, timeout: float = 90,
                   terminal: bool = True, after: int | None = 0) -> list[dict[str, Any]]:
        """``run.event`` frames of ``run_id`` as received (duplicates included), until ``until_seq``,
        or until the run's last event (``run.succeeded`` …) and every seq after ``after`` before it:
        a record the broadcaster retries may arrive after later ones, as a client that holds early
        seqs (``shown_in_order``, the CLI's watcher) expects. ``after=None``: a workspace
        subscription, which gets a run's status changes only."""
        got: list[dict[str, Any]] = []
        last: int | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.next(timeout=deadline - time.monotonic())
            if frame.get("type") != "run.event" or frame.get("run_id") != run_id:
                continue
            got.append(frame)
            if until_seq is not None and frame["seq"] >= until_seq:
                return got
            if terminal and until_seq is None and frame["event"]["type"] in TERMINAL_EVENTS:
                last = frame["seq"]
            if last is not None and (after is None or {f["seq"] for f in got} >= set(range(after + 1, last + 1))):
                return got
        raise AssertionError(f"timed out with {[f['seq'] for f in got]}")

    def close(self) -> None:
        self.ws.close()


TERMINAL_EVENTS = ("run.succeeded", "run.failed", "run.cancelled", "run.timed_out")


def shown_in_order(frames: list[dict[str, Any]], after: int = 0) -> list[int]:
    """The seqs a client shows from these frames: each once, in seq order — it drops a seq it already
    has and holds one that comes early until the seqs before it arrive (as the CLI's watcher does)."""
    shown: list[int] = []
    held: set[int] = set()
    expected = after + 1
    for frame in frames:
        if frame["seq"] >= expected:
            held.add(frame["seq"])
        while expected in held:
            held.discard(expected)
            shown.append(expected)
            expected += 1
    return shown


# --------------------------------------------------------------------------- the web console in a real browser

CHROMIUM_INSTALL = "apt-get install -y chromium chromium-driver"
ARTIFACTS = ROOT / ".artifacts"


def chromium_paths() -> tuple[str, str] | None:
    """The Chromium binary and its chromedriver (Debian's packages), or None if either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def headless_chromium(browser: str, driver: str) -> Iterator[Any]:
    """A Selenium WebDriver for headless Chromium (its console messages kept for ``ConsolePage.logs``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """What ``condition()`` returns once it is true, asked every 0.1 s; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not after {timeout} s")


def served(request: Callable[[], httpx.Response], tries: int = 5) -> httpx.Response:
    """``request()``, sent again after ``Retry-After`` while it is throttled (429), as the docs tell a client
    to: a page open on the free tier's 5 requests a second takes a share of them."""
    for _ in range(tries - 1):
        response = request()
        if response.status_code != 429:
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")))
    return request()


class ConsolePage:
    """The web console as a person uses it: fields filled in, buttons clicked, and what the page shows
    read back (visible text, and the ARIA values a screen reader announces). Every wait is a
    wait-until on the page, never a sleep."""

    def __init__(self, driver: Any, url: str, screenshots: Path) -> None:
        self.driver = driver
        self.url = url
        self.screenshots = screenshots
        self.logs: list[dict[str, Any]] = []

    def until(self, condition: Callable[[], Any], timeout: float = 30, message: str = "") -> Any:
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.05,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
        try:
            return wait.until(lambda _: condition())
        except Exception:
            self.screenshot("timed-out")
            raise AssertionError(f"timed out after {timeout} s waiting for: {message or condition}") from None

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def heading(self) -> str:
        return str(self.find("main h1").text)

    def screenshot(self, name: str) -> Path:
        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / f"{len(list(self.screenshots.glob('*.png'))) + 1:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def open(self) -> None:
        self.driver.get(self.url)
        self.until(lambda: self.find("#sign-in").is_displayed(), message="the sign-in form")

    def fill(self, css: str, text: str) -> None:
        element = self.find(css)
        element.clear()
        element.send_keys(text)

    def sign_in(self, email: str, password: str) -> None:
        self.fill("#sign-in input[name=email]", email)
        self.fill("#sign-in input[name=password]", password)
        self.find("#sign-in button[type=submit]").click()
        self.until(lambda: self.heading() == "Agents and runs", message="the workspace's agents and runs")

    def operator_sign_in(self, access_key_id: str, secret_access_key: str, session_token: str = "") -> None:
        self.fill("#operator-sign-in input[name=access-key-id]", access_key_id)
        self.fill("#operator-sign-in input[name=secret-access-key]", secret_access_key)
        self.fill("#operator-sign-in input[name=session-token]", session_token)
        self.find("#operator-sign-in button[type=submit]").click()

    def go(self, link_text: str, heading: str | None = None) -> None:
        """Follow a link of the console's navigation."""
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, "#nav").find_element(By.LINK_TEXT, link_text).click()
        self.until(lambda: self.heading() == (heading or link_text), message=f"the {link_text} page")

    def choose(self, css: str, visible_text: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.find(css)).select_by_visible_text(visible_text)

    def gauge(self, limit: str) -> dict[str, str]:
        """A usage gauge as a screen reader announces it (the meter's value, maximum and words) and as
        it reads on the page."""
        self.until(lambda: self.find(f".gauge[data-limit='{limit}']"), message=f"the {limit} gauge")

        def read() -> dict[str, str]:
            gauge = self.find(f".gauge[data-limit='{limit}']")
            meter = gauge.find_element("css selector", "[role=meter]")
            return {"now": meter.get_attribute("aria-valuenow"), "max": meter.get_attribute("aria-valuemax"),
                    "words": meter.get_attribute("aria-valuetext"),
                    "label": gauge.find_element("css selector", ".gauge-label").text,
                    "shown": gauge.find_element("css selector", ".gauge-value").text}

        return dict(self.fresh(read))

    def run_events(self) -> list[tuple[int, str]]:
        """The run page's events as listed: the seq and type each line shows."""
        rows = self.driver.execute_script(
            "return [...document.querySelectorAll('#run-events li')]"
            ".map(li => [li.querySelector('.seq').textContent, li.querySelector('.type').textContent]);")
        return [(int(seq.lstrip("#")), kind) for seq, kind in rows]

    def text(self, css: str) -> str:
        return str(self.fresh(lambda: self.find(css).text))

    def fresh(self, read: Callable[[], Any], tries: int = 20) -> Any:
        """``read()`` again when what it found was replaced by the page's live re-rendering before it was
        read (Selenium's stale element): what the page shows now, as a person would read it."""
        from selenium.common.exceptions import StaleElementReferenceException

        for _ in range(tries - 1):
            try:
                return read()
            except StaleElementReferenceException:
                continue
        return read()

    def browser_logs(self) -> list[dict[str, Any]]:
        self.logs += self.driver.get_log("browser")
        return self.logs

    def policy_violations(self) -> list[str]:
        """What the browser reported against the page's Content-Security-Policy (Trusted Types included)."""
        return [entry["message"] for entry in self.browser_logs()
                if entry.get("source") == "security" or "Content Security Policy" in entry["message"]
                or "requires 'Trusted" in entry["message"]]

    def unlabelled_controls(self) -> list[str]:
        """Form controls a screen reader could not name (no label, no aria-label), and buttons without text."""
        return list(self.driver.execute_script(
            "return [...document.querySelectorAll('input, select, textarea')]"
            ".filter(e => e.type !== 'hidden' && !e.labels.length && !e.getAttribute('aria-label'))"
            ".map(e => e.outerHTML.slice(0, 80))"
            ".concat([...document.querySelectorAll('button')].filter(b => !b.textContent.trim())"
            ".map(b => b.outerHTML.slice(0, 80)));"))

    def press_tab_until(self, css: str, most: int = 20, backwards: bool = False) -> None:
        """Move the focus with the Tab key (Shift+Tab ``backwards``), as a keyboard user does, until it is
        on ``css``."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        for _ in range(most):
            if self.driver.execute_script("return document.activeElement.matches(arguments[0]);", css):
                return
            keys = ActionChains(self.driver)
            if backwards:
                keys.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
            else:
                keys.send_keys(Keys.TAB).perform()
        raise AssertionError(f"{most} presses of Tab never reached {css}")

    def type_keys(self, *keys: str) -> None:
        """Type into whatever has the focus."""
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(*keys).perform()
