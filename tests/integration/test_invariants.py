"""The invariant fuzzer: random interleavings of everything tenants, operators, the model and Step
Functions do, with the product's promises checked after every step.

A hypothesis ``RuleBasedStateMachine`` drives the real handlers (the agents and workspaces
functions behind the real authorizer, the run worker's handler, the operator's tier change, the
period reset) against DynamoDB Local, with three fakes of real interfaces: the orchestrator
(tests/fuzzing.FakeOrchestrator plays agent_run.asl.json, and the machine picks which pending task
runs next, delivers one twice, or crashes it before or after its work), the model (answers, tool
calls, delegations, 429/529, timeouts and stalls that Anthropic bills, crashes mid-call) and the
clock (minutes, hours, midnight, the month's end). After every step each invariant of
tests/fuzzing.py is checked for every workspace; at the end the orchestrator is drained, every run
that has not ended must wait for a cause, and a cancel must end every run.

``make test`` runs a few examples (the ``invariants`` profile); ``make fuzz`` runs it for
FUZZ_MINUTES (default 30) and prints how many examples and steps it ran.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from agenthq import services as services_module
from agenthq.accounts import LoginRequest, SignupRequest, login, signup
from agenthq.admin.workspaces import TierChange, change_tier
from agenthq.approvals import expiry
from agenthq.authorizer import authorize, principal_from_headers
from agenthq.context import Scope
from agenthq.errors import Unauthorized
from agenthq.live.standing import Holder, scopes_held
from agenthq.observability import logger
from agenthq.operators import Operator
from agenthq.runs import pausing
from agenthq.services import Services
from agenthq.settings import Settings
from agenthq.store import global_scope, tenant_scope
from agenthq.store.items import Approval
from agenthq.usage import counters
from agenthq.usage import quota as quota_module
from agenthq.usage.api import _exported_runs
from agenthq.usage.report import run_id_bounds
from local.bootstrap import ensure_table
from local.events import rest_proxy_event
from local.mcp_demo import McpDemo
from local.template import load_template
from tests.fuzzing import (
    BEHAVIOURS,
    MCP,
    MCP_CALLS,
    TERMINAL,
    Behaviour,
    FakeOrchestrator,
    InMemoryGatewayKeys,
    InMemoryKeyStore,
    ScriptedModel,
    SessionBooks,
    WorkspaceBooks,
    a_decided_wait_resumes_its_run_exactly_once,
    a_run_starts_only_within_the_concurrency_limit,
    a_run_that_has_not_ended_waits_for_a_cause,
    a_run_tree_spends_within_its_root_budget,
    a_run_waiting_for_approval_holds_its_slot,
    a_session_counts_the_usage_of_its_done_turns,
    a_session_cursor_is_dense_and_is_its_runs_events,
    a_session_runs_one_turn_at_a_time_in_launch_order,
    an_ended_run_holds_no_reservation,
    approval_waits_are_not_agent_time,
    approvals_of_workspace,
    each_approval_is_decided_once_and_resumes_its_run_once,
    lambda_context,
    ledger_counters_and_export_agree,
    mcp_calls_stay_within_the_run_limit_and_are_metered_once,
    metering_is_never_below_billing,
    module_path,
    no_slot_is_held_by_an_ended_run,
    run_events,
    the_month_stays_within_its_tokens_and_budget,
)
from tests.support import PASSWORD, unique_email

pytestmark = pytest.mark.slow

FUZZ_MINUTES = float(os.environ.get("FUZZ_MINUTES") or 0)
settings.register_profile("invariants", max_examples=int(os.environ.get("INVARIANT_EXAMPLES") or 4),
                          stateful_step_count=40, deadline=None, database=None, derandomize=False,
                          suppress_health_check=list(HealthCheck), print_blob=True)
settings.register_profile("invariants-long", parent=settings.get_profile("invariants"), max_examples=20,
                          stateful_step_count=60)

TABLE = "agenthq-local"  # the local cloud's table: one table per process (pynamodb binds its models to one)
OPERATOR = Operator(arn="arn:aws:iam::123456789012:user/fuzzer", caller="AIDAFUZZER")
#: Tier settings the operator moves workspaces between; "tight" is an enterprise contract small enough
#: that a few runs meet every limit.
TIERS: dict[str, TierChange] = {
    "free": TierChange(tier="free"), "starter": TierChange(tier="starter"), "pro": TierChange(tier="pro"),
    "tight": TierChange(tier="enterprise", limit_overrides={
        "concurrent_runs": 2, "budget_usd_per_month": "0.08", "tokens_per_month": 20_000,
        "pending_approvals": 1, "mcp_calls_per_run": 2}),
}
#: How the model answers the calls of a delivery: mostly work (tools, delegations, MCP calls, long
#: answers), sometimes faults.
ANSWERS = st.lists(st.builds(Behaviour, kind=st.sampled_from([*BEHAVIOURS, "tool", "delegate", "tool", MCP, MCP]),
                             long=st.booleans(), target=st.integers(0, len(MCP_CALLS) - 1)), max_size=4)
#: A model call reserves about $0.05 (its prompt and 2,048 tokens of output): the reviewer's budget fits one.
AGENTS = (("lead", "coordinator", "0.30"), ("reviewer", "architect", "0.08"), ("ops", "sre", "1.00"))
#: The ops agent's tools: the demo MCP server's (each runs without asking but ``fail``: MCP tools ask by
#: default); its calculator asks too, and an approval nobody decides is applied as approved.
CLERK_MCP = ("echo", "fail", "huge", "slow")
CLERK = {"tools": ["calculator", "delegate", *(f"mcp__demo__{t}" for t in CLERK_MCP)],
         "tool_policies": {"calculator": "ask", **{f"mcp__demo__{t}": "allow" for t in CLERK_MCP if t != "fail"}},
         "on_approval_timeout": "approve", "approval_timeout_seconds": 3_600}


# --------------------------------------------------------------------------- the world


class RecordedEvents:
    """The real ``OperatorEvents`` interface, kept in memory."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.published.append((detail_type, detail))


@dataclass
class Stats:
    examples: int = 0
    steps: int = 0
    deliveries: int = 0
    runs: int = 0
    model_calls: int = 0
    messages: int = 0  # session messages accepted (each a run)
    decisions: int = 0  # approvals decided through the API
    expired: int = 0  # approvals the approval schedule expired
    ends: Counter[str] = field(default_factory=Counter)  # how runs stood before the teardown's cancel


@dataclass
class World:
    """What lives as long as the test module: the settings, the functions' handlers, a clock the
    machine moves, and the fakes (rebuilt for each example by ``fresh``)."""

    settings: Settings
    handlers: dict[str, Any]
    mcp_url: str
    now: float = field(default_factory=time.time)
    services: Services | None = None
    orchestrator: FakeOrchestrator | None = None
    model: ScriptedModel | None = None
    agent_names: dict[str, list[str]] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)

    def fresh(self) -> Services:
        self.now = time.time()
        self.orchestrator = FakeOrchestrator(self.handlers["run_steps"], lambda: self.now)
        self.model = ScriptedModel(lambda: datetime.fromtimestamp(self.now, UTC),
                                   lambda wid: self.agent_names.get(wid, []))
        self.services = Services(self.settings, lambda: self.now, orchestrator=self.orchestrator, model=self.model,
                                 gateway_keys=InMemoryGatewayKeys(), operator_events=RecordedEvents())
        self.services.__dict__["key_store"] = InMemoryKeyStore()  # as the constructor places fakes
        services_module.set_services(self.services)
        return self.services


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"fuzzed_{name}", module_path(name))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


@pytest.fixture(scope="module")
def mcp_demo() -> Iterator[McpDemo]:
    server = McpDemo().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def world(dynamodb_endpoint: str, mcp_demo: McpDemo) -> Iterator[World]:
    environment = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local",
                   "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local", "TABLE_NAME": TABLE,
                   "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint, "POWERTOOLS_METRICS_DISABLED": "true",
                   "POWERTOOLS_TRACE_DISABLED": "true"}
    previous = services_module._services
    with pytest.MonkeyPatch.context() as patch:
        level = logger.getEffectiveLevel()
        logger.setLevel("WARNING")  # thousands of steps would log at INFO
        for name, value in environment.items():
            patch.setenv(name, value)
        ensure_table(boto3.client("dynamodb", region_name="us-east-1", endpoint_url=dynamodb_endpoint),
                     load_template(), TABLE)
        # MCP calls go to the demo server on loopback (as the local cloud allows); the slow tool outlasts
        # the call's timeout, the huge one its result bound.
        config = Settings.model_validate({"TABLE_NAME": TABLE, "MODEL_MAX_TOKENS": 2048,
                                          "OUTBOUND_ALLOW_LOOPBACK": True, "MCP_TIMEOUT_SECONDS": 2,
                                          "MCP_MAX_RESULT_CHARS": 20_000})
        handlers = {name: _load(name) for name in ("agents", "workspaces", "run_steps", "mcp_servers")}
        try:
            yield World(config, handlers, mcp_demo.url)
        finally:
            services_module.set_services(previous)
            logger.setLevel(level)


# --------------------------------------------------------------------------- a tenant


@dataclass
class Principal:
    """Someone who calls the API: their headers, and whether their access was taken away."""

    name: str
    headers: dict[str, str]
    revoked: bool = False
    granted: Any = None  # the principal as the authorizer saw it at first (what a WebSocket connection keeps)


@dataclass
class Tenant:
    workspace_id: str
    owner: Principal
    member: Principal
    member_id: str
    key: Principal
    key_id: str
    agents: list[str]  # ids, in AGENTS order
    tier: str = "free"
    runs: list[str] = field(default_factory=list)
    sessions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # id → its turns (run id, input) as launched
    approvals: dict[str, str] = field(default_factory=dict)  # id → status at the last check
    pending_approvals: int = 0  # at the last check
    asking: set[str] = field(default_factory=set)  # runs waiting for an approval at the last check
    waited: dict[str, float] = field(default_factory=dict)  # run id → seconds the clock moved while it waited for one
    mcp_calls: dict[str, int] = field(default_factory=dict)  # run id → MCP calls made at the last check
    mcp_server_id: str = ""
    ended_events: dict[str, list[Any]] = field(default_factory=dict)  # an ended run's events, as last read
    held: set[str] = field(default_factory=set)  # runs holding a slot at the last check
    committed: dict[str, tuple[int, int]] = field(default_factory=dict)  # MONTH# → (tokens, µ$) at the last check


# --------------------------------------------------------------------------- the machine


class Invariants(RuleBasedStateMachine):
    world: World  # set by the test

    def __init__(self) -> None:
        super().__init__()
        world = self.world
        self.services = world.fresh()
        self.orchestrator, self.model = world.orchestrator, world.model
        assert self.orchestrator is not None and self.model is not None
        self.months = {counters.month(self.services.now())}
        self.crossed_month = False
        self.attempts = 0  # messages sent (each with an Idempotency-Key of its own)
        self.tenants = [self._tenant(), self._tenant()]
        world.stats.examples += 1

    # ------------------------------------------------------------------ setting up

    def _tenant(self) -> Tenant:
        services = self.services
        owner_email, member_email = unique_email("fuzz-owner"), unique_email("fuzz-member")
        source_ip = f"10.9.{len(self.world.agent_names) % 250}.1"  # a client of its own (signup and login throttles)
        made = signup(services, SignupRequest(email=owner_email, password=PASSWORD, workspace_name="Fuzz Works"),
                      source_ip)
        member_id = signup(services, SignupRequest(email=member_email, password=PASSWORD,
                                                   workspace_name="Elsewhere"), source_ip)["user"]["id"]
        wid = made["workspace"]["id"]
        owner = Principal("owner", {"Authorization": f"Bearer {made['access_token']}"})
        status, invited = self.rest("POST", f"/workspaces/{wid}/members", owner,
                                    {"email": member_email, "role": "member"})
        assert status == 201, invited
        tokens = login(services, LoginRequest(email=member_email, password=PASSWORD, workspace_id=wid), source_ip)
        status, key = self.rest("POST", f"/workspaces/{wid}/api-keys", owner,
                                {"name": "ci", "scopes": ["runs:read", "runs:write"]})
        assert status == 201, key
        status, server = self.rest("POST", f"/workspaces/{wid}/mcp-servers", owner,
                                   {"name": "demo", "url": self.world.mcp_url})
        assert status == 201, server
        for _ in range(5):  # listing its tools timed out on a loaded machine: a refresh tries again
            if server["status"]["state"] == "ok":
                break
            status, server = self.rest("POST", f"/workspaces/{wid}/mcp-servers/{server['id']}/refresh", owner)
        assert server["status"]["state"] == "ok", server
        agents = []
        for name, personality, budget in AGENTS:
            tools = CLERK if name == "ops" else {"tools": ["delegate", "calculator"]}
            status, agent = self.rest("POST", f"/workspaces/{wid}/agents", owner,
                                      {"name": name, "personality": personality, "budget_usd": budget,
                                       "max_steps": 6, **tools})
            assert status == 201, agent
            agents.append(agent["id"])
        self.world.agent_names[wid] = [name for name, _, _ in AGENTS]
        member = Principal("member", {"Authorization": f"Bearer {tokens.access_token}"})
        api_key = Principal("key", {"x-api-key": key["key"]})
        for principal in (owner, member, api_key):
            principal.granted = principal_from_headers(services, principal.headers)[0]
        return Tenant(wid, owner, member, member_id, api_key, key["id"], agents, mcp_server_id=server["id"])

    def rest(self, method: str, path: str, principal: Principal, body: Any = None) -> tuple[int, Any]:
        """A request as API Gateway makes it: the real authorizer, then the function, with the
        authorizer's context. Returns the status and the JSON body."""
        function = ("workspaces" if "/members" in path or "/api-keys" in path else
                    "mcp_servers" if "/mcp-servers" in path else "agents")
        path, _, query = path.partition("?")
        event = rest_proxy_event(method, path, headers=principal.headers, body=body, query=query)
        arn = f"arn:aws:execute-api:us-east-1:123456789012:api/v1/{method}{path}"
        try:
            allowed = authorize(self.services, {"type": "REQUEST", "methodArn": arn, **event})
        except Unauthorized:
            return 401, None
        event["requestContext"]["authorizer"] = {**allowed["context"], "principalId": allowed["principalId"]}
        response = self.world.handlers[function](event, lambda_context(30))
        status = int(response["statusCode"])
        assert status < 500, f"{method} {path} as {principal.name}: {status} {response.get('body')}"
        payload = json.loads(response["body"]) if response.get("body") else None
        if status >= 400:
            assert set(payload["error"]) >= {"code", "message", "request_id"}, payload
        return status, payload

    def tenant(self, index: int) -> Tenant:
        return self.tenants[index % len(self.tenants)]

    def run_of(self, tenant: Tenant, index: int) -> str | None:
        return tenant.runs[index % len(tenant.runs)] if tenant.runs else None

    # ------------------------------------------------------------------ what tenants do

    @initialize(launches=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 2)), min_size=1, max_size=4),
                tier=st.sampled_from(sorted(TIERS)), conversation=st.sampled_from([None, 0, 2, 2]))
    def begin(self, launches: list[tuple[int, int]], tier: str, conversation: int | None) -> None:
        """The first tenant's tier as the operator set it, a few runs launched, and mostly a
        conversation begun (with the lead, or with ops, who asks before its calculator)."""
        self.change_tier(0, tier)
        for w, agent in launches:
            self.launch(w, agent, "owner", False)
        if conversation is not None:
            self.create_session(0, conversation, "owner")
            self.send_messages(0, 0, "member", "enqueue", 2, False)

    @rule(w=st.integers(0, 1), agent=st.integers(0, 2), times=st.integers(1, 3))
    def launch_several(self, w: int, agent: int, times: int) -> None:
        for _ in range(times):
            self.launch(w, agent, "key", False)

    @rule(w=st.integers(0, 1), agent=st.integers(0, 2), who=st.sampled_from(["owner", "member", "key"]),
          idempotency=st.booleans())
    def launch(self, w: int, agent: int, who: str, idempotency: bool) -> None:
        tenant = self.tenant(w)
        principal = getattr(tenant, who)
        headers = {"Idempotency-Key": f"fuzz-{len(tenant.runs)}"} if idempotency else {}
        saved = principal.headers
        principal.headers = {**saved, **headers}
        try:
            status, run = self.rest("POST", f"/workspaces/{tenant.workspace_id}/agents/{tenant.agents[agent]}/runs",
                                    principal, {"input": "Plan the rollout and check the numbers."})
        finally:
            principal.headers = saved
        if principal.revoked:
            assert status in (401, 403, 404), f"a {who} whose access ended launched a run: {status}"
        elif status == 202 and run["id"] not in tenant.runs:
            tenant.runs.append(run["id"])
            self.world.stats.runs += 1
        else:  # refused at a limit; or the same Idempotency-Key sent with another agent before (409)
            assert status in ((202, 429, 409) if idempotency else (202, 429)), (status, run)

    @precondition(lambda self: any(t.runs for t in self.tenants))
    @rule(w=st.integers(0, 1), r=st.integers(0, 30), who=st.sampled_from(["owner", "member", "key"]))
    def cancel(self, w: int, r: int, who: str) -> None:
        tenant = self.tenant(w)
        run_id = self.run_of(tenant, r)
        if run_id is not None:
            principal = getattr(tenant, who)
            status, _ = self.rest("POST", f"/workspaces/{tenant.workspace_id}/runs/{run_id}/cancel", principal)
            assert status in ((401, 403, 404) if principal.revoked else (202, 409)), status

    @precondition(lambda self: any(t.runs for t in self.tenants))
    @rule(w=st.integers(0, 1), r=st.integers(0, 30))
    def resume(self, w: int, r: int) -> None:
        tenant = self.tenant(w)
        run_id = self.run_of(tenant, r)
        if run_id is not None:
            status, _ = self.rest("POST", f"/workspaces/{tenant.workspace_id}/runs/{run_id}/resume", tenant.owner)
            assert status in (202, 409), status

    @precondition(lambda self: any(t.runs for t in self.tenants))
    @rule(w=st.integers(0, 1), r=st.integers(0, 30), who=st.sampled_from(["owner", "member", "key", "stranger"]))
    def read_run(self, w: int, r: int, who: str) -> None:
        """No principal without access is served: a removed member, a revoked key, another tenant."""
        tenant = self.tenant(w)
        run_id = self.run_of(tenant, r)
        if run_id is None:
            return
        principal = self.tenant(w + 1).owner if who == "stranger" else getattr(tenant, who)
        status, body = self.rest("GET", f"/workspaces/{tenant.workspace_id}/runs/{run_id}", principal)
        if principal.revoked or who == "stranger":
            assert status in (401, 403, 404), f"{who} without access read run {run_id}: {status} {body}"
        else:
            assert status == 200 and body["id"] == run_id, (status, body)
        # The live layer's own check (what a WebSocket connection opened by this principal is held to).
        holder = Holder.of(principal.granted)
        reads = Scope.runs_read in scopes_held([holder]).get(holder, frozenset())
        assert reads == (not principal.revoked), f"the live layer says {who} (revoked: {principal.revoked}) reads: {reads}"

    @rule(w=st.integers(0, 1))
    def remove_member(self, w: int) -> None:
        tenant = self.tenant(w)
        if not tenant.member.revoked:
            status, _ = self.rest("DELETE", f"/workspaces/{tenant.workspace_id}/members/{tenant.member_id}",
                                  tenant.owner)
            assert status == 204, status
            tenant.member.revoked = True

    @rule(w=st.integers(0, 1))
    def revoke_key(self, w: int) -> None:
        tenant = self.tenant(w)
        if not tenant.key.revoked:
            status, _ = self.rest("DELETE", f"/workspaces/{tenant.workspace_id}/api-keys/{tenant.key_id}",
                                  tenant.owner)
            assert status == 204, status
            tenant.key.revoked = True

    # ------------------------------------------------------------------ sessions and approvals

    def session_of(self, tenant: Tenant, index: int) -> str | None:
        return sorted(tenant.sessions)[index % len(tenant.sessions)] if tenant.sessions else None

    @rule(w=st.integers(0, 1), agent=st.sampled_from([0, 2]), who=st.sampled_from(["owner", "member", "key"]))
    def create_session(self, w: int, agent: int, who: str) -> None:
        """A conversation with the lead or ops (who asks before its calculator)."""
        tenant = self.tenant(w)
        principal = getattr(tenant, who)
        status, session = self.rest("POST", f"/workspaces/{tenant.workspace_id}/agents/{tenant.agents[agent]}/sessions",
                                    principal, {"title": f"Fuzz {len(tenant.sessions)}"})
        if principal.revoked:
            assert status in (401, 403, 404), f"a {who} whose access ended created a session: {status}"
        else:
            assert status == 201 and session["status"] == "idle" and session["turns"] == 0, (status, session)
            tenant.sessions[session["id"]] = []

    @precondition(lambda self: any(t.sessions for t in self.tenants))
    @rule(w=st.integers(0, 1), s=st.integers(0, 9), who=st.sampled_from(["owner", "member", "key"]),
          on_busy=st.sampled_from(["enqueue", "enqueue", "reject"]), times=st.integers(1, 3), replay=st.booleans())
    def send_messages(self, w: int, s: int, who: str, on_busy: str, times: int, replay: bool) -> None:
        """Messages to a session, one after the other: ``enqueue`` waits its turn, ``reject`` is a 409
        ``session_busy`` while a turn is in flight; ``replay`` sends the last one again with its
        Idempotency-Key (the same run, no new turn)."""
        tenant = self.tenant(w)
        session_id = self.session_of(tenant, s)
        if session_id is None:
            return
        principal = getattr(tenant, who)
        turns = tenant.sessions[session_id]
        for _ in range(times):
            text = f"Message {self.world.stats.messages} to {session_id[-6:]}: plan the next step."
            self.attempts += 1
            key = f"msg-{session_id}-{self.attempts}"
            status, run = self._message(tenant, principal, session_id, text, on_busy, key)
            if principal.revoked:
                assert status in (401, 403, 404), f"a {who} whose access ended sent a message: {status}"
                return
            if status == 409:
                assert on_busy == "reject" and run["error"]["code"] == "session_busy", run
                assert any(r.status not in TERMINAL for r in self.books(tenant).runs if r.session_id == session_id)
                continue
            if status == 429:
                continue  # refused at a limit: no turn
            assert status == 202 and run["session_id"] == session_id, (status, run)
            assert run["id"] not in tenant.runs, f"a new message answered with an old run: {run['id']}"
            turns.append((run["id"], text))
            tenant.runs.append(run["id"])
            self.world.stats.runs += 1
            self.world.stats.messages += 1
            if replay:
                again_status, again = self._message(tenant, principal, session_id, text, on_busy, key)
                assert again_status == 202 and again["id"] == run["id"], (again_status, again)

    def _message(self, tenant: Tenant, principal: Principal, session_id: str, text: str, on_busy: str,
                 key: str) -> tuple[int, Any]:
        saved = principal.headers
        principal.headers = {**saved, "Idempotency-Key": key}
        try:
            return self.rest("POST", f"/workspaces/{tenant.workspace_id}/sessions/{session_id}/messages", principal,
                             {"input": text, "on_busy": on_busy})
        finally:
            principal.headers = saved

    @precondition(lambda self: any(t.runs for t in self.tenants))
    @rule(w=st.integers(0, 1), a=st.integers(0, 9), decision=st.sampled_from(["approve", "deny"]),
          who=st.sampled_from(["owner", "member", "key", "stranger"]), twice=st.booleans(), every=st.booleans())
    def decide(self, w: int, a: int, decision: str, who: str, twice: bool, every: bool = False) -> None:
        """A person decides a pending approval (listed as the API lists them; with ``every``, each of
        them): once; a second decision, a stranger's or one whose access ended changes nothing."""
        for _ in range(10 if every else 1):
            if not self._decide_one(w, a, decision, who, twice):
                return

    def _decide_one(self, w: int, a: int, decision: str, who: str, twice: bool) -> bool:
        tenant = self.tenant(w)
        status, listed = self.rest("GET", f"/workspaces/{tenant.workspace_id}/approvals?status=pending", tenant.owner)
        assert status == 200, listed
        assert all(item["workspace_id"] == tenant.workspace_id and item["status"] == "pending"
                   for item in listed["items"]), listed
        if not listed["items"]:
            return False
        approval = listed["items"][a % len(listed["items"])]
        principal = self.tenant(w + 1).owner if who == "stranger" else getattr(tenant, who)
        path = f"/workspaces/{tenant.workspace_id}/approvals/{approval['id']}"
        status, decided = self.rest("POST", path, principal, {"decision": decision, "reason": "fuzz"})
        if principal.revoked or who == "stranger":
            assert status in (401, 403, 404), f"{who} without access decided {approval['id']}: {status} {decided}"
            return False
        assert status == 200 and decided["status"] == ("approved" if decision == "approve" else "denied"), decided
        self.world.stats.decisions += 1
        if twice:
            status, again = self.rest("POST", path, principal, {"decision": "deny" if decision == "approve"
                                                                 else "approve"})
            assert status == 409 and again["error"]["code"] == "conflict", (status, again)
        return True

    @rule()
    def approval_schedule(self) -> None:
        """The approval schedule's minute: every due approval of this example's workspaces expires (as
        ``expiry.expire_due`` does for the whole table, whose other tests' approvals are left alone)."""
        bound = self.services.now().strftime("%Y-%m-%dT%H:%M:%S") + "~"
        ours = {t.workspace_id for t in self.tenants}
        with global_scope():
            due = [m for m in Approval.gsi1.query(Approval.DUE, Approval.gsi1sk < bound) if m.workspace_id in ours]
        for marker in due:
            with tenant_scope(marker.workspace_id):
                self.world.stats.expired += int(expiry.expire(self.services, marker.workspace_id, marker.id))

    @rule(w=st.integers(0, 1), kind=st.sampled_from(["session", "transcript", "events", "approval", "mcp-server"]),
          who=st.sampled_from(["owner", "member", "key", "stranger"]))
    def read_conversation(self, w: int, kind: str, who: str) -> None:
        """Sessions, their transcripts and events, approvals and MCP servers: served to the workspace's
        own principals, never to a stranger or one whose access ended; lists hold only the workspace's own."""
        tenant = self.tenant(w)
        wid = tenant.workspace_id
        principal = self.tenant(w + 1).owner if who == "stranger" else getattr(tenant, who)
        paths = {"session": "/sessions", "transcript": "/sessions", "events": "/sessions", "approval": "/approvals",
                 "mcp-server": "/mcp-servers"}
        status, listed = self.rest("GET", f"/workspaces/{wid}{paths[kind]}", principal)
        denied = principal.revoked or who == "stranger"
        if who == "key" and kind == "mcp-server":  # the key's scopes are runs:read and runs:write
            assert status in (401, 403), f"a key without agents:read listed MCP servers: {status} {listed}"
            return
        if denied:
            assert status in (401, 403, 404), f"{who} without access listed {kind}s of {wid}: {status} {listed}"
        else:
            assert status == 200 and all(i["workspace_id"] == wid for i in listed["items"]), (status, listed)
        session_id = self.session_of(tenant, 0)
        one = {"session": f"/sessions/{session_id}", "transcript": f"/sessions/{session_id}/messages",
               "events": f"/sessions/{session_id}/events", "mcp-server": f"/mcp-servers/{tenant.mcp_server_id}",
               "approval": f"/approvals/{next(iter(tenant.approvals), '0' * 26)}"}[kind]
        if "None" in one or one.endswith("0" * 26):
            return
        status, body = self.rest("GET", f"/workspaces/{wid}{one}", principal)
        if denied:
            assert status in (401, 403, 404), f"{who} without access read {one} of {wid}: {status} {body}"
        else:
            assert status == 200, (status, body)

    # ------------------------------------------------------------------ what the operator does

    @rule(w=st.integers(0, 1), tier=st.sampled_from(sorted(TIERS)))
    def change_tier(self, w: int, tier: str) -> None:
        tenant = self.tenant(w)
        change_tier(self.services, OPERATOR, tenant.workspace_id, TIERS[tier])
        tenant.tier = tier

    @rule()
    def period_reset(self) -> None:
        """The daily schedule: paused runs whose limit has room again resume (those of this example)."""
        for tenant in self.tenants:
            pausing.resume_paused(self.services, tenant.workspace_id)

    # ------------------------------------------------------------------ the model and Step Functions

    @precondition(lambda self: bool(self.orchestrator and self.orchestrator.pending()))
    @rule(i=st.integers(0, 40), how=st.sampled_from(["once", "once", "once", "twice", "crash-before",
                                                     "crash-after", "short-slice"]), answers=ANSWERS)
    def deliver(self, i: int, how: str, answers: list[Behaviour]) -> None:
        """Step Functions runs one pending task (the model answers its calls as ``answers`` say)."""
        assert self.orchestrator is not None and self.model is not None
        pending = self.orchestrator.pending()
        if not pending:
            return
        self.model.script = list(answers)
        self.orchestrator.deliver(pending[i % len(pending)], twice=how == "twice",
                                  crash=how.removeprefix("crash-") if how.startswith("crash") else None,
                                  seconds=0.0 if how == "short-slice" else 900.0)
        self.world.stats.deliveries += 1

    @precondition(lambda self: bool(self.orchestrator and self.orchestrator.pending()))
    @rule(i=st.integers(0, 40), answers=ANSWERS)
    def deliver_one(self, i: int, answers: list[Behaviour]) -> None:
        """The common case, drawn more often: one pending task runs once."""
        self.deliver(i, "once", answers)

    @precondition(lambda self: bool(self.orchestrator and self.orchestrator.pending()))
    @rule(rounds=st.integers(1, 4), answers=ANSWERS, one_step=st.booleans())
    def advance(self, rounds: int, answers: list[Behaviour], one_step: bool) -> None:
        """Every pending task runs, ``rounds`` times over (the model answers as ``answers`` say, then
        plainly); with ``one_step`` each slice hands back after its first step, so runs stay running."""
        assert self.orchestrator is not None and self.model is not None
        self.model.script = list(answers)
        for _ in range(rounds):
            for execution in self.orchestrator.pending():
                if execution.deliverable:
                    self.orchestrator.deliver(execution, seconds=0.0 if one_step else 900.0)
                    self.world.stats.deliveries += 1

    @rule(by=st.sampled_from(["a minute", "an hour", "a day", "midnight", "month end"]))
    def time_passes(self, by: str) -> None:
        at = self.services.now()
        if by == "month end":
            if self.crossed_month:
                return
            self.crossed_month = True
            target = counters.next_month(at) - timedelta(seconds=20)
        elif by == "midnight":
            target = counters.next_day(at) - timedelta(seconds=10)
        else:
            target = at + {"a minute": timedelta(minutes=1), "an hour": timedelta(hours=1),
                           "a day": timedelta(days=1)}[by]
        if target > at:
            for tenant in self.tenants:  # runs that wait for a person do not spend agent time meanwhile
                for run_id in tenant.asking:
                    tenant.waited[run_id] = tenant.waited.get(run_id, 0.0) + (target - at).total_seconds()
            self.world.now = target.timestamp()
        self.months.add(counters.month(self.services.now()))
        assert self.orchestrator is not None
        self.orchestrator.time_passed()

    # ------------------------------------------------------------------ the promises

    def books(self, tenant: Tenant) -> WorkspaceBooks:
        return WorkspaceBooks.read(tenant.workspace_id, self.months)

    def limits(self, tenant: Tenant) -> Any:
        return quota_module.workspace_limits(tenant.workspace_id)

    def export(self, tenant: Tenant) -> list[Any]:
        first = datetime.fromtimestamp(time.time(), UTC).date() - timedelta(days=1)
        last = self.services.now().date() + timedelta(days=1)
        with tenant_scope(tenant.workspace_id):
            return list(_exported_runs(tenant.workspace_id, *run_id_bounds(first, last)))

    @invariant()
    def promises_hold(self) -> None:
        self.world.stats.steps += 1
        assert self.model is not None
        for tenant in self.tenants:
            books = self.books(tenant)
            limits = self.limits(tenant)
            a_run_starts_only_within_the_concurrency_limit(books, tenant.held, limits.concurrent_runs)
            no_slot_is_held_by_an_ended_run(books)
            an_ended_run_holds_no_reservation(books)
            the_month_stays_within_its_tokens_and_budget(books, limits, tenant.committed)
            a_run_tree_spends_within_its_root_budget(books)
            ledger_counters_and_export_agree(books, self.export(tenant), all_ended=False)
            metering_is_never_below_billing(books, self.model.billed)
            self.conversations_hold(tenant, books, limits)
            tenant.held = books.slot_holders
            tenant.committed = {m: (int(q.committed_tokens), int(q.committed_micro_usd))
                                for m, q in books.quotas.items()}

    def conversations_hold(self, tenant: Tenant, books: WorkspaceBooks, limits: Any) -> None:
        """The promises of sessions, approvals and MCP tool calls (DESIGN §9)."""
        sessions = SessionBooks.read_all(tenant.workspace_id)
        assert set(sessions) == set(tenant.sessions), (sorted(sessions), sorted(tenant.sessions))
        events = {}  # each run's events (an ended run's, read once: it has no more)
        for run in books.runs:
            events[run.id] = tenant.ended_events.get(run.id) or run_events(tenant.workspace_id, run.id)
            if run.status in TERMINAL:
                tenant.ended_events[run.id] = events[run.id]
        a_session_runs_one_turn_at_a_time_in_launch_order(books, sessions, tenant.sessions)
        a_session_cursor_is_dense_and_is_its_runs_events(books, sessions, events)
        a_session_counts_the_usage_of_its_done_turns(books, sessions)
        approvals, pending = approvals_of_workspace(tenant.workspace_id)
        each_approval_is_decided_once_and_resumes_its_run_once(books, approvals, pending, limits.pending_approvals,
                                                               tenant.approvals, tenant.pending_approvals, events)
        a_run_waiting_for_approval_holds_its_slot(books)
        approval_waits_are_not_agent_time(books, tenant.waited)
        tenant.mcp_calls = mcp_calls_stay_within_the_run_limit_and_are_metered_once(
            books, limits.mcp_calls_per_run, tenant.mcp_calls, events)
        tenant.approvals = {a.id: a.status for a in approvals}
        tenant.pending_approvals = sum(1 for a in approvals if a.status == "pending")
        tenant.asking = {r.id for r in books.runs if r.status == "waiting" and r.waiting_for == "approval"}

    def drain(self, most: int = 400) -> None:
        """Deliver every pending task (plain answers from the model) until none is left."""
        assert self.orchestrator is not None and self.model is not None
        self.model.script = []
        for _ in range(most):
            pending = self.orchestrator.pending()
            if not pending:
                return
            self.orchestrator.deliver(pending[0])
        raise AssertionError(f"the runs did not settle in {most} deliveries")

    def teardown(self) -> None:
        if not getattr(self, "tenants", None):
            return
        assert self.model is not None
        self.world.stats.model_calls += self.model.calls
        self.drain()
        # The daily schedule comes round, as it does within a day: a run paused in a month now over (its
        # limit has room in the new one) resumes then, not before (a paused run's cause is checked below).
        self.period_reset()
        self.drain()
        for tenant in self.tenants:
            books = self.books(tenant)
            limits = self.limits(tenant)

            def room(hold: dict[str, Any], wid: str = tenant.workspace_id, limits: Any = limits) -> bool:
                return quota_module.has_room(wid, quota_module.Hold(**(hold or {"tokens": 0, "micro_usd": 0})),
                                             limits, self.services.now())

            assert self.orchestrator is not None
            approvals, _ = approvals_of_workspace(tenant.workspace_id)
            asking = frozenset(a.run_id for a in approvals if a.status == "pending")
            turns_before = {run_id: [earlier for earlier, _ in turns[:number]] for turns in tenant.sessions.values()
                            for number, (run_id, _) in enumerate(turns) if number}
            a_run_that_has_not_ended_waits_for_a_cause(books, self.orchestrator, room, asking, turns_before)
            a_decided_wait_resumes_its_run_exactly_once(books, approvals)
            self.world.stats.ends.update(f"{r.status}{'/child' if r.parent_run_id else ''}"
                                         f"{'/' + r.error['reason'] if r.error else ''}" for r in books.runs)
        # A cancel ends every run, wherever it waits.
        for tenant in self.tenants:
            for run_id in tenant.runs:
                self.rest("POST", f"/workspaces/{tenant.workspace_id}/runs/{run_id}/cancel", tenant.owner)
        self.drain()
        assert self.model is not None
        for tenant in self.tenants:
            books = self.books(tenant)
            left = [(r.id, r.status) for r in books.runs if r.status not in TERMINAL]
            assert not left, f"runs that a cancel did not end: {left}"
            no_slot_is_held_by_an_ended_run(books)
            ledger_counters_and_export_agree(books, self.export(tenant), all_ended=True)
            metering_is_never_below_billing(books, self.model.billed)
            assert not books.reservations, f"reservations left after every run ended: {books.reservations}"
            # A cancel cancels the run's approvals; every session is idle again, its last event session.idle.
            approvals, pending = approvals_of_workspace(tenant.workspace_id)
            assert not [a.id for a in approvals if a.status == "pending"] and not pending, (
                [(a.id, a.status) for a in approvals], pending)
            self.conversations_hold(tenant, books, self.limits(tenant))
            sessions = SessionBooks.read_all(tenant.workspace_id)
            busy = [(sid, s.session.done_turns, s.session.launched) for sid, s in sessions.items()
                    if int(s.session.done_turns or 0) != int(s.session.launched or 0)]
            assert not busy, f"sessions not idle once every run ended: {busy}"




@pytest.mark.timeout(int(FUZZ_MINUTES * 60) + 900)  # hypothesis shrinks a failure for up to 5 minutes
def test_the_promises_hold_under_random_interleavings(world: World) -> None:
    """Hypothesis explores interleavings of launches, delegations, cancels, pauses and resumes,
    tier changes, member removals, key revocations, model faults, crashed and redelivered steps
    and time; every invariant of tests/fuzzing.py holds after each step, and at the end every
    run has ended or waits for a cause."""
    Invariants.world = world
    profile = settings.get_profile("invariants-long" if FUZZ_MINUTES else "invariants")
    deadline = time.monotonic() + FUZZ_MINUTES * 60
    rounds = 0
    try:
        while True:  # make fuzz: rounds of new random examples until FUZZ_MINUTES have passed
            run_state_machine_as_test(Invariants, settings=profile)
            rounds += 1
            if time.monotonic() >= deadline:
                break
    finally:
        stats = world.stats
        print(f"\ninvariant fuzzer: {stats.examples} examples, {stats.steps} steps, {stats.deliveries} deliveries "
              f"of run steps, {stats.runs} runs launched ({stats.messages} session messages), {stats.model_calls} "
              f"model calls, {stats.decisions} approvals decided and {stats.expired} expired, in {rounds} round(s) of "
              f"{profile.max_examples} examples; runs ended: {dict(stats.ends.most_common())}")



@pytest.mark.parametrize("ending", ["deadline", "cancel"])
def test_a_run_that_ends_before_its_reserved_model_call_gives_the_reservation_back(world: World, ending: str) -> None:
    """Found by the fuzzer: Start reserves the first model call with its commit; when the slice hands
    back there and the run then ends before that call (its deadline passed, or a cancel), the
    reservation was kept for ever — the month's room shrank by money never spent."""
    Invariants.world = world
    machine = Invariants()
    machine.launch(0, 0, "owner", False)
    machine.deliver(0, "short-slice", [])  # Start commits run.started with step 1's reservation, and hands back
    tenant = machine.tenants[0]
    assert len(machine.books(tenant).reservations) == 1
    if ending == "deadline":
        machine.time_passes("a day")
    else:
        machine.cancel(0, 0, "owner")
    machine.deliver(0, "once", [])  # Think: the run ends instead of calling the model
    books = machine.books(tenant)
    assert [r.status for r in books.runs] == ["timed_out" if ending == "deadline" else "cancelled"]
    assert books.reservations == []
    an_ended_run_holds_no_reservation(books)
    month = next(iter(books.quotas.values()))
    assert int(month.committed_micro_usd) == int(month.used_micro_usd) == 0
    machine.teardown()

