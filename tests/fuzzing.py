"""What the invariant fuzzer (tests/integration/test_invariants.py) drives the product with: an
in-memory orchestrator that plays the agent-run state machine as Step Functions would, a scripted
model, and an in-memory key store — each a fake of the real interface it stands in for, installed
through ``Services(settings, **fakes)`` — and the invariants themselves, one small function each,
named after the promise it checks.

The fakes record what the real services would have done (executions, task tokens, what Anthropic
would have billed), so an invariant can compare the product's books with the world's.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from agenthq import pricing
from agenthq.adapters.model import ModelRequest, ModelResponse, ModelUnavailable, UnansweredCall
from agenthq.adapters.stepfunctions import Execution
from agenthq.security.tokens import KeyStore, generate_signing_key, public_jwks
from agenthq.usage.vector import TokenUsage
from local.lambda_worker import LambdaContext
from local.template import ROOT

ASL = json.loads((ROOT / "statemachines" / "agent_run.asl.json").read_text())
STATES: dict[str, dict[str, Any]] = ASL["States"]
WAITING_STATES = frozenset(name for name, state in STATES.items()
                           if str(state.get("Resource", "")).endswith(".waitForTaskToken"))


class InjectedCrash(Exception):
    """The run worker's process dies here (an out-of-memory kill, a Lambda timeout): Step Functions
    sees a failed task and retries it."""


# --------------------------------------------------------------------------- the orchestrator


@dataclass
class FakeExecution:
    """One execution of the agent-run state machine: where it is, and what its current task holds."""

    name: str
    payload: dict[str, Any]
    started_at: float
    state: str = "Start"
    loop: dict[str, Any] = field(default_factory=lambda: {"next": None, "turn": 0})
    error: dict[str, Any] | None = None
    status: str = "RUNNING"
    attempt: int = 0  # a new one each time a task is (re)tried: its task token changes with it
    retries: Counter[int] = field(default_factory=Counter)  # per retrier of the current state
    token: str | None = None  # the current waiting task's token, once its Lambda was invoked
    invoked: bool = False
    entered_at: float = 0.0
    stopped_at: float | None = None
    tasks: int = 0

    @property
    def waiting(self) -> bool:
        """Invoked and waiting for its task token (a child, a resume, a slot)."""
        return self.status == "RUNNING" and self.state in WAITING_STATES and self.invoked

    @property
    def deliverable(self) -> bool:
        return self.status == "RUNNING" and not self.waiting


class FakeOrchestrator:
    """The real ``Orchestrator`` interface, played in memory: executions of agent_run.asl.json as
    Step Functions runs them (Route's choices, each task's Retry and Catch, waitForTaskToken
    states and their timeouts), except that the test decides which pending task is delivered next,
    delivers one twice, or crashes it (``deliver``). ``invoke`` is the run worker's handler."""

    def __init__(self, invoke: Callable[[dict[str, Any], Any], Any], clock: Callable[[], float]) -> None:
        self.invoke = invoke
        self.clock = clock
        self.executions: dict[str, FakeExecution] = {}
        self.tokens: dict[str, str] = {}  # task token → execution name (every token ever issued)
        self.delivered = 0

    # ------------------------------------------------------------------ the Orchestrator interface

    def ping(self) -> None:
        return None

    def start(self, name: str, payload: dict[str, Any]) -> str:
        if name not in self.executions:  # StartExecution is idempotent by name
            self.executions[name] = FakeExecution(name=name, payload=dict(payload), started_at=self.clock(),
                                                  entered_at=self.clock())
        return f"arn:aws:states:us-east-1:123456789012:execution:agent-run:{name}"

    def send_next(self, task_token: str, next_step: str) -> bool:
        execution = self.executions.get(self.tokens.get(task_token, ""))
        if execution is None or execution.status != "RUNNING" or execution.token != task_token:
            return False  # TaskDoesNotExist / InvalidToken / TaskTimedOut
        execution.loop = {**execution.loop, "next": next_step}  # ResultPath $.loop.next
        self._route(execution)
        return True

    def describe(self, name: str) -> Execution | None:
        found = self.executions.get(name)
        if found is None:
            return None
        at = datetime.fromtimestamp(found.started_at, UTC)
        stopped = datetime.fromtimestamp(found.stopped_at, UTC) if found.stopped_at is not None else None
        return Execution(name=name, status=found.status, started_at=at, stopped_at=stopped, input=found.payload,
                         output=None)

    def stop(self, name: str, cause: str) -> None:
        found = self.executions.get(name)
        if found is not None and found.status == "RUNNING":
            found.status, found.stopped_at, found.token = "ABORTED", self.clock(), None

    # ------------------------------------------------------------------ what the test drives

    def pending(self) -> list[FakeExecution]:
        """Executions with a task to deliver, oldest first."""
        return [e for e in self.executions.values() if e.deliverable]

    def deliver(self, execution: FakeExecution, *, twice: bool = False, crash: str | None = None,
                seconds: float = 900.0) -> None:
        """Run the execution's current task: once, or twice with the same input (at-least-once
        delivery: the state machine takes the second's answer). ``crash``: the first invocation's
        worker dies ``before`` it begins or ``after`` its work is done (its answer is lost)."""
        state = execution.state
        event = self._task_event(execution)
        attempt = execution.attempt
        outcome: tuple[str, Any] = ("ok", None)
        for round_ in range(2 if twice else 1):
            self.delivered += 1
            execution.tasks += 1
            try:
                if crash == "before" and round_ == 0:
                    raise InjectedCrash("the worker died as the task began")
                outcome = ("ok", self.invoke(event, lambda_context(seconds)))
                if crash == "after" and round_ == 0:
                    raise InjectedCrash("the worker died before answering the state machine")
            except Exception as exc:  # a failed task, as Step Functions sees a Lambda error
                outcome = ("error", exc)
        if execution.attempt != attempt or execution.state != state or execution.status != "RUNNING":
            return  # its task token was answered while it ran: the state machine moved on
        if outcome[0] == "error":
            self._fail_task(execution, type(outcome[1]).__name__, str(outcome[1]))
        elif state in WAITING_STATES:
            execution.invoked = True  # waits for its token
        else:
            execution.loop = dict(outcome[1]) if state in ("Start", "Think", "Act") else execution.loop
            if state == "Finish":
                self._enter(execution, "Done")
            elif state == "RecordFailure":
                self._enter(execution, "Failed")
            else:
                self._route(execution)

    def time_passed(self) -> None:
        """Waiting tasks past their TimeoutSeconds fail with States.Timeout (and are retried, then caught)."""
        for execution in list(self.executions.values()):
            timeout = STATES.get(execution.state, {}).get("TimeoutSeconds")
            if execution.waiting and timeout is not None and self.clock() - execution.entered_at > timeout:
                self._fail_task(execution, "States.Timeout", "the task timed out")

    # ------------------------------------------------------------------ the state machine

    def _task_event(self, execution: FakeExecution) -> dict[str, Any]:
        parameters = STATES[execution.state]["Parameters"]["Payload"]
        values = {"$.workspace_id": execution.payload["workspace_id"], "$.run_id": execution.payload["run_id"],
                  "$.loop.turn": execution.loop.get("turn", 0), "$.error": execution.error}
        event: dict[str, Any] = {}
        for key, value in parameters.items():
            if not key.endswith(".$"):
                event[key] = value
            elif value == "$$.Task.Token":
                execution.token = f"token-{execution.name}-{execution.state}-{execution.attempt}"
                self.tokens[execution.token] = execution.name
                event[key[:-2]] = execution.token
            else:
                event[key[:-2]] = values[value]
        return event

    def _route(self, execution: FakeExecution) -> None:
        choices = {c["StringEquals"]: c["Next"] for c in STATES["Route"]["Choices"]}
        self._enter(execution, choices.get(execution.loop.get("next"), STATES["Route"]["Default"]))

    def _enter(self, execution: FakeExecution, state: str) -> None:
        execution.state, execution.invoked, execution.token = state, False, None
        execution.attempt += 1
        execution.retries = Counter()
        execution.entered_at = self.clock()
        kind = STATES[state]["Type"]
        if kind in ("Succeed", "Fail"):
            execution.status = "SUCCEEDED" if kind == "Succeed" else "FAILED"
            execution.stopped_at = self.clock()

    def _fail_task(self, execution: FakeExecution, error: str, message: str) -> None:
        state = STATES[execution.state]
        for index, retrier in enumerate(state.get("Retry", [])):
            if error in retrier["ErrorEquals"] or ("States.ALL" in retrier["ErrorEquals"] and error != "States.Runtime"):
                if execution.retries[index] < retrier.get("MaxAttempts", 3):
                    execution.retries[index] += 1
                    execution.attempt += 1
                    execution.invoked, execution.token = False, None
                    execution.entered_at = self.clock()
                    return
                break  # the first retrier that matches decides
        for catcher in state.get("Catch", []):
            if error in catcher["ErrorEquals"] or "States.ALL" in catcher["ErrorEquals"]:
                execution.error = {"Error": error, "Cause": json.dumps({"errorMessage": message, "errorType": error})}
                self._enter(execution, catcher["Next"])
                return
        self._enter(execution, "Failed")


def lambda_context(seconds: float) -> LambdaContext:
    return LambdaContext(function_name="RunStepsFunction", memory_limit_in_mb=1024, aws_request_id="fuzz",
                         invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:RunStepsFunction",
                         deadline=time.monotonic() + seconds)


# --------------------------------------------------------------------------- the model


ANSWER, TOOL, DELEGATE, THROTTLED, OVERLOADED, TIMEOUT, STALL, CRASH, MCP = (
    "answer", "tool", "delegate", "throttled", "overloaded", "timeout", "stall", "crash", "mcp")
BEHAVIOURS = (ANSWER, TOOL, DELEGATE, THROTTLED, OVERLOADED, TIMEOUT, STALL, CRASH)
#: What an MCP call of the model asks of the demo MCP server (local/mcp_demo.py), by ``Behaviour.target``:
#: an answer, a tool that fails, one whose result is past the bound, one slower than the call's timeout.
MCP_CALLS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("echo", {"text": "hello"}), ("fail", {}), ("huge", {"chars": 40_000}), ("slow", {"seconds": 4}),
    ("echo", {"text": "again"}))


@dataclass(frozen=True)
class Behaviour:
    """What the model does with one request: ``kind``, the answer's length (``long``: all of
    ``max_tokens``), and for a delegation the agent it names (an index into the workspace's agents),
    for an MCP call the tool it calls (an index into ``MCP_CALLS``)."""

    kind: str = ANSWER
    long: bool = False
    target: int = 0


@dataclass(frozen=True)
class Billed:
    """One answer Anthropic gave (and so billed), whether or not the caller got it."""

    workspace_id: str
    model: str
    usage: TokenUsage
    at: datetime

    @property
    def cost_usd(self) -> Decimal:
        return self.usage.cost_usd(self.model, self.at.date())


class ScriptedModel:
    """The real ``ModelClient`` interface, answering as ``script`` says (then plain answers): text,
    a tool call, a delegation, or the failures the real adapter raises after its retries — 429, 529,
    a timeout (Anthropic answered every attempt, the caller got none), a stall (the first attempt's
    answer came too late, the retry's in time), each attempt that may be billed reported as the
    adapter reports it (``UnansweredCall``) — or a crash of the worker mid-call. ``billed`` is what
    Anthropic would bill: every answer it gave."""

    def __init__(self, clock: Callable[[], datetime], agent_names: Callable[[str], list[str]],
                 attempts: int = 4) -> None:
        self.clock = clock
        self.agent_names = agent_names
        self.attempts = attempts
        self.script: list[Behaviour] = []
        self.billed: list[Billed] = []
        self.calls = 0

    def create_message(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        behaviour = self.script.pop(0) if self.script else Behaviour()
        workspace_id = request.metadata_user_id or ""
        usage = self._usage(request, behaviour)
        if behaviour.kind == CRASH:
            raise InjectedCrash("the worker died waiting for the model")
        if behaviour.kind in (THROTTLED, OVERLOADED):
            status = 429 if behaviour.kind == THROTTLED else 529
            raise ModelUnavailable(f"status {status} after {self.attempts} attempts", status=status,
                                   attempts=self.attempts)
        if behaviour.kind == TIMEOUT:  # every attempt was sent, answered and billed; none arrived in time
            unanswered: list[UnansweredCall] = []
            for attempt in range(1, self.attempts + 1):
                unanswered.append(self._unanswered(workspace_id, request, usage))
                if attempt < self.attempts:  # as the adapter does: a retry only once the caller said yes
                    self._before_retry(request, unanswered[-1:])  # may raise (no hold for it): no retry
            raise ModelUnavailable(f"model request timed out after {self.attempts} attempts", attempts=self.attempts,
                                   unanswered=tuple(unanswered))
        # A stall: the first attempt's answer came after the client gave up on it (billed); the retry's in time.
        late = (self._unanswered(workspace_id, request, usage),) if behaviour.kind == STALL else ()
        if late:
            self._before_retry(request, list(late))
        content = self._content(request, behaviour, workspace_id)
        self._bill(workspace_id, request, usage)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
        return ModelResponse(id=f"msg_{self.calls:06d}_{id(self):x}", model=request.model, content=content,
                             stop_reason=stop, usage=usage, attempts=1 + len(late), unanswered=late)

    @staticmethod
    def _before_retry(request: ModelRequest, unanswered: list[UnansweredCall]) -> None:
        if request.before_retry is not None:
            request.before_retry(tuple(unanswered))

    def _unanswered(self, workspace_id: str, request: ModelRequest, usage: TokenUsage) -> UnansweredCall:
        """An attempt the API answered (and bills) whose answer the caller never got, as the adapter reports it."""
        self._bill(workspace_id, request, usage)
        return UnansweredCall(f"unanswered_{len(self.billed):06d}_{id(self):x}", "model request timed out (60s)")

    def _bill(self, workspace_id: str, request: ModelRequest, usage: TokenUsage) -> None:
        self.billed.append(Billed(workspace_id, request.model, usage, self.clock()))

    @staticmethod
    def _usage(request: ModelRequest, behaviour: Behaviour) -> TokenUsage:
        prompt = json.dumps({"system": request.system, "messages": request.messages, "tools": request.tools},
                            ensure_ascii=False, separators=(",", ":")).encode()
        output = request.max_tokens if behaviour.long else min(request.max_tokens, 40)
        return TokenUsage(input_tokens=max(1, len(prompt) // 4), output_tokens=output)

    def _content(self, request: ModelRequest, behaviour: Behaviour, workspace_id: str) -> list[dict[str, Any]]:
        offered = {t["name"] for t in request.tools}
        use_id = f"toolu_{self.calls:06d}_{id(self):x}"
        if behaviour.kind == TOOL and "calculator" in offered:
            return [{"type": "text", "text": "Let me compute."},
                    {"type": "tool_use", "id": use_id, "name": "calculator", "input": {"expression": "6*7"}}]
        if behaviour.kind == DELEGATE and "delegate" in offered:
            names = self.agent_names(workspace_id) or ["nobody"]
            target = names[behaviour.target % len(names)]
            return [{"type": "tool_use", "id": use_id, "name": "delegate",
                     "input": {"agent": target, "input": "Please handle this part."}}]
        mcp = sorted(name for name in offered if name.startswith("mcp__"))
        if behaviour.kind == MCP and mcp:
            tool, arguments = MCP_CALLS[behaviour.target % len(MCP_CALLS)]
            server = mcp[0].split("__")[1]
            return [{"type": "tool_use", "id": use_id, "name": f"mcp__{server}__{tool}", "input": arguments}]
        return [{"type": "text", "text": "Done: 42."}]


# --------------------------------------------------------------------------- the key store


class InMemoryKeyStore(KeyStore):
    """The real ``KeyStore``, with its signing keys in memory instead of SSM."""

    def __init__(self) -> None:
        super().__init__(ssm=None, signing_parameter="", public_parameter="")
        self._keys = [generate_signing_key()]

    def signing_keys(self) -> list[dict[str, str]]:
        return list(self._keys)

    def public_keys(self, refresh: bool = False) -> dict[str, Any]:
        return public_jwks(self._keys)


class InMemoryGatewayKeys:
    """The real ``GatewayKeys`` interface in memory: keys and the usage plan each is in."""

    def __init__(self) -> None:
        self.plan_of: dict[str, str] = {}

    def create_key(self, workspace_id: str, value: str, tier: str) -> str:
        return self.ensure_key(workspace_id, value, tier)

    def ensure_key(self, workspace_id: str, value: str, tier: str) -> str:
        self.plan_of.setdefault(f"key-{workspace_id}", self.tier_plan(tier))
        return f"key-{workspace_id}"

    def delete_key(self, key_id: str) -> None:
        self.plan_of.pop(key_id, None)

    def tier_plan(self, tier: str) -> str:
        return f"plan-{tier}"

    def move_key(self, key_id: str, from_plan: str, to_plan: str) -> None:
        self.plan_of[key_id] = to_plan

    def ensure_workspace_plan(self, workspace_id: str, tier: str, rate: float, burst: int, quota: int) -> str:
        return f"plan-{workspace_id}"

    def delete_plan(self, plan_id: str) -> None:
        return None


def micro(usd: Decimal) -> int:
    """Dollars as micro-dollars, rounded up (what metering must be at least)."""
    return math.ceil(usd / pricing.MICRO_DOLLAR)


def module_path(name: str) -> Path:
    return ROOT / "functions" / name / "app.py"


# --------------------------------------------------------------------------- the invariants
#
# Each takes what the table holds now (read with the store's models, as the product reads it) and
# raises AssertionError naming the promise it breaks. The fuzzer checks every one after every step.

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


@dataclass
class WorkspaceBooks:
    """One workspace as the table holds it, read consistently once per check."""

    workspace_id: str
    runs: list[Any]
    bodies: dict[str, Any]
    slots: Any | None
    queued: list[Any]
    quotas: dict[str, Any]  # MONTH#… → Quota
    reservations: list[Any]
    ledger: dict[str, list[Any]]  # run id → its entries
    month_counters: dict[str, Any]  # MONTH#… → Usage
    day_counters: dict[str, Any]  # DAY#… → Usage

    @classmethod
    def read(cls, workspace_id: str, months: set[str]) -> WorkspaceBooks:
        """``months``: the MONTH# periods whose quotas to read (those the test's clock has seen)."""
        from agenthq.store.base import ws_pk
        from agenthq.store.items import (
            LedgerEntry,
            QueuedRun,
            Quota,
            Reservation,
            Run,
            RunBody,
            RunSlots,
            UsageCounter,
        )
        from agenthq.usage.vector import Usage

        runs = list(Run.query(ws_pk(workspace_id), Run.sk.startswith("RUN#"), consistent_read=True))
        bodies, reservations, ledger = {}, [], {}
        for run in runs:
            partition = Run.partition(workspace_id, run.id)
            bodies[run.id] = RunBody.get(*RunBody.key(workspace_id, run.id), consistent_read=True)
            reservations += list(Reservation.query(partition, Reservation.sk.startswith("RESERVE#"),
                                                   consistent_read=True))
            ledger[run.id] = list(LedgerEntry.query(partition, LedgerEntry.sk.startswith("LEDGER#"),
                                                    consistent_read=True))
        queued = list(QueuedRun.query(QueuedRun.key(workspace_id, "")[0], consistent_read=True))
        quotas = {month: found for month in sorted(months)
                  if (found := Quota.get_or_none(*Quota.key(workspace_id, month))) is not None}
        by_month: dict[str, Usage] = {}
        by_day: dict[str, Usage] = {}
        for shard in UsageCounter.query(ws_pk(workspace_id, "USAGE"), consistent_read=True):
            into = by_month if shard.period.startswith("MONTH#") else by_day
            into[shard.period] = into.get(shard.period, Usage()) + Usage.of(shard)
        return cls(workspace_id, runs, bodies, RunSlots.get_or_none(*RunSlots.key(workspace_id)), queued,
                   quotas, reservations, ledger, by_month, by_day)

    @property
    def slot_holders(self) -> set[str]:
        return {r.id for r in self.runs if r.slot == "own"}


def a_run_starts_only_within_the_concurrency_limit(books: WorkspaceBooks, held_before: set[str],
                                                   concurrent_runs: int) -> None:
    """DESIGN §5: at most the tier's ``concurrent_runs`` runs of a workspace run at once; past it a run
    waits. A run that newly holds a slot must find the holders (itself included) within the limit
    as it is now (runs that held one before a downgrade keep it until they end)."""
    holders = books.slot_holders
    newly = holders - held_before
    assert not newly or len(holders) <= concurrent_runs, (
        f"run(s) {sorted(newly)} took a slot: {len(holders)} runs hold slots, the limit is {concurrent_runs}")


def no_slot_is_held_by_an_ended_run(books: WorkspaceBooks) -> None:
    """A run that ends gives its slot back (to the oldest queued run, or free): no ended run holds
    a slot or a queue place, and the workspace's slot counters count exactly the runs that do."""
    ended_holding = [r.id for r in books.runs if r.status in TERMINAL and r.slot is not None]
    assert not ended_holding, f"ended runs still hold slots: {ended_holding}"
    by_id = {r.id: r for r in books.runs}
    ended_queued = [q.run_id for q in books.queued if q.run_id not in by_id or by_id[q.run_id].status in TERMINAL]
    assert not ended_queued, f"ended runs still wait in the queue: {ended_queued}"
    holding_and_queued = [q.run_id for q in books.queued if by_id[q.run_id].slot is not None]
    assert not holding_and_queued, f"runs that hold a slot also wait in the queue: {holding_and_queued}"
    running = int(books.slots.running or 0) if books.slots else 0
    waiting = int(books.slots.waiting or 0) if books.slots else 0
    pending = int(books.slots.pending or 0) if books.slots else 0
    assert running == len(books.slot_holders), (
        f"the slots count {running} running, {len(books.slot_holders)} runs hold a slot: "
        f"{sorted(books.slot_holders)}")
    assert waiting == len(books.queued), f"the slots count {waiting} waiting, {len(books.queued)} runs are queued"
    launched = [r.id for r in books.runs if not r.parent_run_id and r.status not in TERMINAL]
    assert pending == len(launched), f"the slots count {pending} pending, {len(launched)} launched runs have not ended"


def an_ended_run_holds_no_reservation(books: WorkspaceBooks) -> None:
    """A reservation is held only while its model call may still happen: a run that has ended gives
    every reservation back (else the month's room shrinks by what was never spent)."""
    ended = {r.id for r in books.runs if r.status in TERMINAL}
    held = [(r.pk.rsplit("#", 1)[-1], r.sk, int(r.micro_usd)) for r in books.reservations
            if r.pk.rsplit("#", 1)[-1] in ended]
    assert not held, f"ended runs still hold reservations (run, step, µ$): {held}"


def the_month_stays_within_its_tokens_and_budget(books: WorkspaceBooks, limits: Any,
                                                 committed_before: dict[str, tuple[int, int]]) -> None:
    """DESIGN §5: the month's spend plus what is reserved never passes its budget, nor its tokens
    their limit: reserved = the reservations stored; whatever grew since the last check fits the
    limits as they are now; and what the month's quota counts as used is what its counters metered."""
    from agenthq.usage import quota as quota_module

    for month, found in books.quotas.items():
        held = [r for r in books.reservations if r.period == month]
        used_tokens, used_micro = int(found.used_tokens), int(found.used_micro_usd)
        committed_tokens, committed_micro = int(found.committed_tokens), int(found.committed_micro_usd)
        assert committed_micro == used_micro + sum(int(r.micro_usd) for r in held), (
            f"{month}: committed ${committed_micro}µ ≠ used {used_micro}µ + reservations "
            f"{[int(r.micro_usd) for r in held]}")
        assert committed_tokens == used_tokens + sum(int(r.tokens) for r in held), (
            f"{month}: committed {committed_tokens} tokens ≠ used {used_tokens} + reserved")
        tokens_before, micro_before = committed_before.get(month, (0, 0))
        if committed_micro > micro_before:
            assert committed_micro <= quota_module.budget_micro_usd(limits), (
                f"{month}: spend + reserved grew to {committed_micro}µ$, past the budget "
                f"{quota_module.budget_micro_usd(limits)}µ$")
        if committed_tokens > tokens_before:
            assert committed_tokens <= limits.tokens_per_month, (
                f"{month}: tokens used + reserved grew to {committed_tokens}, past {limits.tokens_per_month}")
        metered = books.month_counters.get(month)
        metered_micro = metered.cost_micro_usd if metered else 0
        metered_tokens = metered.tokens.total if metered else 0
        assert (used_micro, used_tokens) == (metered_micro, metered_tokens), (
            f"{month}: the quota counts {used_micro}µ$ / {used_tokens} tokens used, the month's counters "
            f"metered {metered_micro}µ$ / {metered_tokens} tokens in it")


def a_run_tree_spends_within_its_root_budget(books: WorkspaceBooks) -> None:
    """A run's ``budget_usd`` bounds what it and every run it delegates to (children, grandchildren…)
    spend on the model, together."""
    by_id = {r.id: r for r in books.runs}

    def root_of(run: Any) -> Any:
        while run.parent_run_id and run.parent_run_id in by_id:
            run = by_id[run.parent_run_id]
        return run

    spent: dict[str, int] = {}
    for run in books.runs:
        root = root_of(run)
        spent[root.id] = spent.get(root.id, 0) + sum(int(e.cost_micro_usd or 0) for e in books.ledger[run.id])
    for root_id, micro_usd in spent.items():
        budget = micro(Decimal(books.bodies[root_id].agent["budget_usd"]))
        assert micro_usd <= budget, (
            f"run tree of {root_id} spent {micro_usd}µ$ on the model, its root's budget is {budget}µ$ "
            f"({sum(1 for r in books.runs if root_of(r).id == root_id)} runs)")


def ledger_counters_and_export_agree(books: WorkspaceBooks, export: Any, all_ended: bool) -> None:
    """DESIGN §5: the ledger, the counters and the usage export agree to the micro-dollar: each
    run's totals are the sum of its ledger entries, the workspace's month counters (and day
    counters) the sum of every entry, and the export the sum of the runs (agent-seconds and
    infrastructure cost, written at a run's end, once every run has ended)."""
    from agenthq.usage.vector import Usage

    def comparable(usage: Usage, model_calls: bool = True) -> Usage:
        """A run's record and the export count no model calls (its steps do); before every run has
        ended, neither agent-seconds nor the infrastructure cost (the run's end writes them)."""
        kept = usage.view() | ({} if model_calls else {"model_calls": 0})
        return Usage(**(kept if all_ended else kept | {"agent_seconds": 0, "infra_micro_usd": 0}))

    ledger_total = Usage()
    for run in books.runs:
        entries = sum((Usage.of(e) for e in books.ledger[run.id]), Usage())
        ledger_total += entries
        totals = Usage.of(run) + Usage(runs=1)
        if run.status in TERMINAL or not all_ended:
            assert comparable(totals, False) == comparable(entries, False), (
                f"run {run.id} ({run.status}) totals {totals.view()} ≠ its ledger {entries.view()}")
    months = sum(books.month_counters.values(), Usage())
    days = sum(books.day_counters.values(), Usage())
    assert comparable(months) == comparable(ledger_total), (
        f"month counters {months.view()} ≠ ledger {ledger_total.view()}")
    assert comparable(days) == comparable(ledger_total), f"day counters {days.view()} ≠ ledger {ledger_total.view()}"
    exported = sum((r.usage for r in export), Usage())
    assert comparable(exported, False) == comparable(ledger_total, False), (
        f"export {exported.view()} ≠ ledger {ledger_total.view()}")


def metering_is_never_below_billing(books: WorkspaceBooks, billed: list[Billed]) -> None:
    """Every model call Anthropic answered is metered (a call whose answer never arrived at its
    reserved upper bound): the workspace's metered model cost is at least what it was billed."""
    owed = sum((b.cost_usd for b in billed if b.workspace_id == books.workspace_id), Decimal(0))
    metered = sum(int(e.cost_micro_usd or 0) for entries in books.ledger.values() for e in entries)
    assert metered * pricing.MICRO_DOLLAR >= owed, (
        f"metered {metered}µ$ of model cost, Anthropic billed ${owed} "
        f"({sum(1 for b in billed if b.workspace_id == books.workspace_id)} answers)")


def a_run_that_has_not_ended_waits_for_a_cause(books: WorkspaceBooks, orchestrator: FakeOrchestrator,
                                               month_has_room: Callable[[dict[str, Any]], bool],
                                               asking: frozenset[str] = frozenset(),
                                               turns_before: dict[str, list[str]] | None = None) -> None:
    """Nothing stays queued, waiting or paused for ever: once the orchestrator has nothing left to
    deliver, a run that has not ended is paused at a limit that is still used up, waits for a child
    that is itself held for such a cause, waits for a person to decide an approval still pending
    (``asking``: the runs that have one), is a session's turn waiting for a turn before it
    (``turns_before``: run id → the run ids of the session's earlier turns; it waits for the last of
    them not ended, a cancelled turn between them frees nothing) that is itself held, or is queued behind
    slot holders that are."""
    by_id = {r.id: r for r in books.runs}
    queued = {q.run_id for q in books.queued}
    turns_before = turns_before or {}

    def held(run: Any, seen: frozenset[str] = frozenset()) -> str | None:
        """Why ``run`` legitimately has not ended, or None."""
        if run.id in seen:
            return None
        if run.status == "paused":
            return "paused" if run.task_token and not month_has_room(run.pause_hold or {}) else None
        if run.status == "waiting" and run.waiting_for == "approval":
            return "approval" if run.id in asking and run.task_token else None
        if run.status == "queued" and run.started_at is None and run.id in turns_before:
            going = [r for r in (by_id.get(i) for i in turns_before[run.id]) if r is not None and r.status not in TERMINAL]
            if going:
                return "turn" if held(going[-1], seen | {run.id}) else None
        if run.status == "waiting":
            children = [r for r in books.runs if r.parent_run_id == run.id and r.status not in TERMINAL]
            return "waiting" if any(held(c, seen | {run.id}) for c in children) else None
        if run.status == "queued" and run.id in queued and run.slot is None:
            holders = [by_id[h] for h in books.slot_holders]
            return "queued" if holders and all(held(h, seen | {run.id}) for h in holders) else None
        return None

    stuck = [(r.id, r.status, r.slot, r.pause_reason) for r in books.runs if r.status not in TERMINAL and not held(r)]
    assert not stuck, f"runs neither ended nor held for a cause: {stuck}; executions: " + "; ".join(
        f"{e.name}:{e.state}/{e.status}{' waiting' if e.waiting else ''}"
        for e in orchestrator.executions.values() if e.payload.get("workspace_id") == books.workspace_id)


# --------------------------------------------------------------------------- sessions, approvals, MCP tools


@dataclass
class SessionBooks:
    """One session as the table holds it: the session item, its turns, its transcript and its events."""

    session: Any
    turns: list[Any]  # SessionTurn, in number order
    transcript: list[Any]  # TranscriptEntry, in key order
    events: list[Any]  # SessionEvent, in seq order

    @classmethod
    def read_all(cls, workspace_id: str) -> dict[str, SessionBooks]:
        from agenthq.store.items import AgentSession, SessionEvent, SessionTurn, TranscriptEntry, Workspace

        found = {}
        for session in AgentSession.query(Workspace.key(workspace_id)[0], AgentSession.sk.startswith("CONVERSATION#"),
                                          consistent_read=True):
            partition = AgentSession.partition(workspace_id, session.id)
            found[session.id] = cls(
                session,
                list(SessionTurn.query(partition, SessionTurn.sk.startswith("TURN#"), consistent_read=True)),
                list(TranscriptEntry.query(partition, TranscriptEntry.sk.startswith("MSG#"), consistent_read=True)),
                list(SessionEvent.query(partition, SessionEvent.sk.startswith("EVT#"), consistent_read=True)))
        return found


def run_events(workspace_id: str, run_id: str) -> list[Any]:
    from agenthq.store.items import Run, RunEvent

    return list(RunEvent.query(Run.partition(workspace_id, run_id), RunEvent.sk.startswith("EVT#"),
                               consistent_read=True))


def approvals_of_workspace(workspace_id: str) -> tuple[list[Any], int | None]:
    """The workspace's approvals and its ``PendingApprovals`` count (None: never written)."""
    from agenthq.store.items import Approval, PendingApprovals, Workspace

    approvals = list(Approval.query(Workspace.key(workspace_id)[0], Approval.sk.startswith("APPROVAL#"),
                                    consistent_read=True))
    counter = PendingApprovals.get_or_none(*PendingApprovals.key(workspace_id), consistent_read=True)
    return approvals, (int(counter.pending) if counter is not None else None)


def a_session_runs_one_turn_at_a_time_in_launch_order(books: WorkspaceBooks, sessions: dict[str, SessionBooks],
                                                      launched: dict[str, list[tuple[str, str]]]) -> None:
    """DESIGN §9: a session's runs go one at a time, in the order their launches committed: its turns
    are 1…``launched`` with no gap, each naming the run the API answered for it, in the order the
    messages were sent; a turn's run starts only once every earlier turn's run has ended; ``done_turns``
    counts exactly the first turns whose runs ended; the transcript has each turn's input (as sent)
    and, for each done turn only, its answer."""
    by_id = {r.id: r for r in books.runs}
    for sid, found in sessions.items():
        session = found.session
        count, done = int(session.launched or 0), int(session.done_turns or 0)
        numbers = [int(t.number) for t in found.turns]
        assert numbers == list(range(1, count + 1)), f"session {sid}: turns {numbers}, {count} launched"
        expected = launched.get(sid, [])
        assert [t.run_id for t in found.turns] == [run_id for run_id, _ in expected], (
            f"session {sid}: turns' runs {[t.run_id for t in found.turns]} ≠ the launches, in order, "
            f"{[run_id for run_id, _ in expected]}")
        runs = [by_id[t.run_id] for t in found.turns]
        for number, run in enumerate(runs, start=1):
            assert run.session_id == sid and int(run.session_turn) == number, (
                f"run {run.id} is turn {run.session_turn} of {run.session_id}, session {sid} has it as turn {number}")
            if run.started_at is not None:
                earlier = [(r.id, r.status) for r in runs[:number - 1] if r.status not in TERMINAL]
                assert not earlier, f"session {sid}: turn {number} ({run.id}) started before turns {earlier} ended"
        in_flight = [r.id for r in runs if r.started_at is not None and r.status not in TERMINAL]
        assert len(in_flight) <= 1, f"session {sid} has runs in flight at once: {in_flight}"
        ended_prefix = next((i for i, r in enumerate(runs) if r.status not in TERMINAL), len(runs))
        assert done <= ended_prefix, f"session {sid}: {done} turns done, only the first {ended_prefix} runs ended"
        users = [(e.run_id, e.text) for e in found.transcript if e.role == "user"]
        answers = [e.run_id for e in found.transcript if e.role == "assistant"]
        assert users == expected, f"session {sid}: transcript inputs {users} ≠ the messages sent {expected}"
        assert answers == [t.run_id for t in found.turns[:done]], (
            f"session {sid}: answers in the transcript for {answers}, {done} turns done")
        assert [e.role for e in found.transcript] == [role for number in range(1, count + 1)
                                                      for role in (("user", "assistant") if number <= done
                                                                   else ("user",))], (
            f"session {sid}: the transcript is out of turn order: {[(e.sk, e.role) for e in found.transcript]}")


def a_session_cursor_is_dense_and_is_its_runs_events(books: WorkspaceBooks, sessions: dict[str, SessionBooks],
                                                      events: dict[str, list[Any]]) -> None:
    """DESIGN §9: a session's event cursor is 1…N with no gap or duplicate (N its ``event_seq``), and
    its events are exactly the events of its runs and their delegated children (each once, with its
    run's seq and type) and one ``session.idle`` for each time its last launched turn was done; an
    idle session's last event is ``session.idle``."""
    for sid, found in sessions.items():
        seqs = [int(e.seq) for e in found.events]
        last = int(found.session.event_seq or 0)
        assert seqs == list(range(1, last + 1)), f"session {sid}: event seqs {seqs[:5]}…{seqs[-5:]}, counter {last}"
        copies = [(e.run_id, int(e.run_seq), e.event_type) for e in found.events if int(e.run_seq)]
        assert len(copies) == len(set(copies)), f"session {sid}: an event indexed twice: {Counter(copies).most_common(2)}"
        own = [(r.id, int(e.seq), e.event_type) for r in books.runs if r.session_id == sid
               for e in events[r.id]]
        assert sorted(copies) == sorted(own), (
            f"session {sid}: its cursor ≠ its runs' events: missing {sorted(set(own) - set(copies))[:5]}, "
            f"extra {sorted(set(copies) - set(own))[:5]}")
        idles = [e for e in found.events if not int(e.run_seq)]
        assert all(e.event_type == "session.idle" for e in idles), [e.event_type for e in idles]
        done, count = int(found.session.done_turns or 0), int(found.session.launched or 0)
        assert len(idles) <= done, f"session {sid}: {len(idles)} session.idle events, {done} turns done"
        if count and done == count:
            assert found.events and found.events[-1].event_type == "session.idle", (
                f"session {sid} is idle ({done} turns done); its last event is "
                f"{found.events[-1].event_type if found.events else None}")
            assert int(found.events[-1].data["turns"]) == count, found.events[-1].data


def a_session_counts_the_usage_of_its_done_turns(books: WorkspaceBooks, sessions: dict[str, SessionBooks]) -> None:
    """A session's usage is the sum of its done turns' runs (each counted once, as it was done)."""
    from agenthq.usage.vector import Usage

    by_id = {r.id: r for r in books.runs}
    for sid, found in sessions.items():
        done = int(found.session.done_turns or 0)
        summed = sum((Usage.of(by_id[t.run_id]) + Usage(runs=1) for t in found.turns[:done]), Usage())
        assert Usage.of(found.session) == summed, (
            f"session {sid}: usage {Usage.of(found.session).view()} ≠ its "
            f"{done} done turns' runs {summed.view()}")


DECISIONS = {"approved": "approval.approved", "denied": "approval.denied", "expired": "approval.expired",
             "cancelled": "approval.cancelled"}


def each_approval_is_decided_once_and_resumes_its_run_once(books: WorkspaceBooks, approvals: list[Any],
                                                           pending_counter: int | None, limit: int,
                                                           seen: dict[str, str], pending_before: int,
                                                           run_events: dict[str, list[Any]]) -> None:
    """DESIGN §9: an approval leaves ``pending`` once and never changes after (``seen``: the statuses
    at the last check); its run has its ``approval.requested`` once and exactly one decision event
    when decided (none while pending); the run resumes from an approval wait once per wait, only after
    every approval of that wait was decided; a call has one result at most once decided (none while
    pending): an approved one's is the tool's, a refused one's tells the model it did not run; the workspace's pending count is its pending approvals, within the tier's
    ``pending_approvals`` when it grew."""
    by_run: dict[str, list[Any]] = {}
    for approval in approvals:
        before = seen.get(approval.id)
        assert before in (None, "pending", approval.status), (
            f"approval {approval.id} was {before}, is now {approval.status}: a decision is final")
        by_run.setdefault(approval.run_id, []).append(approval)
    pending = sum(1 for a in approvals if a.status == "pending")
    assert (pending_counter or 0) == pending, f"the pending count is {pending_counter}, {pending} approvals pending"
    if pending > pending_before:
        assert pending <= limit, f"{pending} approvals pending, the tier allows {limit}"
    for run_id, asked in by_run.items():
        events = run_events[run_id]
        kinds = Counter((e.event_type, (e.data or {}).get("approval_id")) for e in events)
        for approval in asked:
            assert kinds[("approval.requested", approval.id)] == 1, (approval.id, kinds)
            decided = sum(kinds[(kind, approval.id)] for kind in DECISIONS.values())
            assert decided == (0 if approval.status == "pending" else 1), (
                f"approval {approval.id} is {approval.status}; its run has {decided} decision events")
            results = [e.data for e in events if e.event_type == "tool.result"
                       and e.data.get("tool_use_id") == approval.tool_use_id]
            assert len(results) <= (0 if approval.status == "pending" else 1), (
                f"approval {approval.id} ({approval.status}): its call has {len(results)} results")
            if approval.applied == "deny":  # the model is told it did not run
                assert all(r["is_error"] and "did not run" in r["content"] for r in results), (approval.id, results)
            elif approval.applied == "approve":
                assert not any("did not run" in str(r["content"]) for r in results), (approval.id, results)
        decided_at: dict[str, int] = {}
        for event in events:
            if event.event_type in DECISIONS.values():
                decided_at[event.data["approval_id"]] = int(event.seq)
        waits = [e for e in events if e.event_type == "run.waiting" and e.data.get("waiting_for") == "approval"]
        resumes = [e for e in events if e.event_type == "run.resumed" and e.data.get("after") == "approval"]
        assert len(resumes) <= len(waits), f"run {run_id} resumed {len(resumes)} times from {len(waits)} approval waits"
        for wait, resume in zip(waits, resumes, strict=False):
            undecided = [a for a in wait.data["approval_ids"] if decided_at.get(a, 1 << 40) > int(resume.seq)]
            assert not undecided, f"run {run_id} resumed (seq {resume.seq}) before approvals {undecided} were decided"


def a_run_waiting_for_approval_holds_its_slot(books: WorkspaceBooks) -> None:
    """DESIGN §9: a run that waits for a person keeps its concurrency slot (a child: its parent's)."""
    loose = [(r.id, r.slot) for r in books.runs if r.status == "waiting" and r.waiting_for == "approval"
             and r.slot != ("parent" if r.parent_run_id else "own")]
    assert not loose, f"runs waiting for an approval without their slot: {loose}"


def approval_waits_are_not_agent_time(books: WorkspaceBooks, waited: dict[str, float]) -> None:
    """DESIGN §9: the time a run waits for a person is not agent time: an ended run's metered
    agent-seconds are at most its time from start to end less the time it was seen waiting
    (``waited``: run id → seconds the clock moved while it waited for an approval)."""
    for run in books.runs:
        if run.status not in TERMINAL or run.started_at is None or not waited.get(run.id):
            continue
        metered = sum(int(e.agent_seconds or 0) for e in books.ledger[run.id])
        wall = (run.finished_at - run.started_at).total_seconds()
        assert metered <= wall - waited[run.id] + 1, (
            f"run {run.id} metered {metered} agent-seconds; it ran {wall:.0f} s of which it waited "
            f"{waited[run.id]:.0f} s for approvals")


#: The demo MCP server's tools whose every call is an error for the model (fails, too large, too slow).
FAILING_MCP_TOOLS = frozenset({"mcp__demo__fail", "mcp__demo__huge", "mcp__demo__slow"})


def mcp_calls_stay_within_the_run_limit_and_are_metered_once(books: WorkspaceBooks, limit: int,
                                                              calls_before: dict[str, int],
                                                              run_events: dict[str, list[Any]]) -> dict[str, int]:
    """A run's MCP tool calls that reach the server (``tool.called`` and a result that is not the limit's
    refusal) never pass the tier's ``mcp_calls_per_run`` as it is when they grow; a tool that fails, answers
    past the result bound or past the call's timeout is an ``is_error`` result; every tool result,
    MCP or not, is metered once (one ledger entry of one tool call under its tool use id). Returns the counts, for the next check."""
    counts = {}
    for run in books.runs:
        events = run_events[run.id]
        results = [e.data for e in events if e.event_type == "tool.result"]
        made = sum(1 for d in results if str(d.get("name", "")).startswith("mcp__")
                   and "the most its plan allows per run" not in str(d.get("content")))
        counts[run.id] = made
        unflagged = [d for d in results if d.get("name") in FAILING_MCP_TOOLS and not d.get("is_error")]
        assert not unflagged, f"run {run.id}: a failing, oversized or slow MCP tool gave a result: {unflagged}"
        if made > calls_before.get(run.id, 0):
            assert made <= limit, f"run {run.id} made {made} MCP calls, the tier allows {limit} per run"
        tools = [e for e in books.ledger[run.id] if e.entry.startswith("tool#")]
        by_use = Counter(e.entry.rsplit("#", 1)[1] for e in tools)
        assert all(n == 1 for n in by_use.values()) and all(int(e.tool_calls or 0) == 1 for e in tools), (
            f"run {run.id}: tool entries {[(e.entry, e.tool_calls) for e in tools]}")
        assert sorted(by_use) == sorted(str(d["tool_use_id"]) for d in results), (
            f"run {run.id}: tool results {[d['tool_use_id'] for d in results]} ≠ metered {sorted(by_use)}")
    return counts


def a_decided_wait_resumes_its_run_exactly_once(books: WorkspaceBooks, approvals: list[Any]) -> None:
    """Once the orchestrator has nothing left to deliver: every approval wait whose approvals were all
    decided by a person or by expiry, of a run not cancelled, was followed by exactly one
    ``run.resumed`` — no run is left waiting on a decision that was made, none resumes twice."""
    status = {a.id: a.status for a in approvals}
    for run in books.runs:
        if run.status == "cancelled":
            continue  # a cancel that came after the decisions ends the wait without a resume
        events = run_events(books.workspace_id, run.id)
        waits = [i for i, e in enumerate(events) if e.event_type == "run.waiting"
                 and e.data.get("waiting_for") == "approval"]
        for n, index in enumerate(waits):
            ids_ = events[index].data["approval_ids"]
            if not all(status.get(a) in ("approved", "denied", "expired") for a in ids_):
                continue
            until = waits[n + 1] if n + 1 < len(waits) else len(events)
            resumed = [e for e in events[index:until] if e.event_type == "run.resumed"
                       and e.data.get("after") == "approval"]
            assert len(resumed) == 1, (
                f"run {run.id} ({run.status}): its wait for {ids_} (all decided) was resumed {len(resumed)} times")
