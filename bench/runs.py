"""One agent run of five steps on the local cloud, and what orchestrating it costs.

A *step* is one model call. The run is an SRE agent's, whose input holds four
``/tool current_time {}`` directives: the offline model (latency 0) calls the
tool in each of four turns and answers in the fifth, so the state machine runs
Start, Think ×5, Act ×4 and Finish — eleven run_steps invocations. Printed:

- **state transitions per step**, counted in the execution's history as Step
  Functions bills Standard workflows ("a state transition each time a step of
  your workflow is executed ... including retries"): every ``*StateEntered``
  event (Task, Choice, Succeed, ...) plus one per retried task attempt;
- **DynamoDB requests and request units per step** of the run_steps function:
  write requests, items written, write request units (WRU) and read request
  units (RRU), computed from the items' sizes by AWS's rules (see
  :class:`Recorder`: DynamoDB Local's own ConsumedCapacity is right for single
  requests but not for transactions);
- **orchestration wall time per step** (the run's ``created_at`` → ``finished_at``
  ÷ steps) as a ratio to one raw DynamoDB GetItem round trip in the same run;
- the run's **modelled AWS cost** from the list prices in ``layers/common/agenthq/aws_prices.json``,
  and that cost as a ratio to LangSmith Deployment's price per agent run.

The counts come from one *accounting* run, during which the bench reads every
item before and after each write to size it (reads it does not count, but that
slow the run); the times, Lambda durations and polls from further *timed* runs
without those reads (their median run). Both sides of the time ratio are
measured warm: DynamoDB Local is a JVM that compiles its hot paths as they are
used, so the baseline GetItem is timed after 300 warm-up calls and the timed
runs after ``warmup_runs`` untimed ones (a fresh DynamoDB Local runs its first
transactions about half again as slowly). All of it is the local cloud's: moto's
ASL interpreter, DynamoDB Local and in-process handlers sharing this machine's
cores. AWS's latencies differ; the counts and request units are what AWS would
bill for the same requests.
"""

from __future__ import annotations

import contextvars
import json
import math
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3

from bench.common import ROOT, median_seconds, ms, print_rows, print_table
from bench.handlers import raw_getitem

PRICES_FILE = ROOT / "layers" / "common" / "agenthq" / "aws_prices.json"
STEPS = 5
LONG_STEPS = 20  # the same bounds hold for a longer run: transitions per run, not per step
#: Seconds per model call the run's AWS cost is priced at: the offline model's 0 s, and Claude's seconds (DESIGN §5
#: prices the tiers at 5 s). Lambda bills the run worker for the wait.
LATENCIES = (0.0, 2.0, 5.0, 15.0)
DESIGN_LATENCY = 5.0
BOUND_AT_DESIGN_LATENCY = 0.00035  # USD, a 5-step run at 5 s per call: 1/14 of LangSmith Deployment's $0.005


def run_input(steps: int, latency: float = 0.0) -> str:
    """An SRE agent's task that takes ``steps`` model calls: a clock reading in each turn but the last; with
    ``latency``, each call takes that long (the offline model's ``/latency`` directive)."""
    pace = [f"/latency {latency:g}"] if latency else []
    return "\n".join(["Incident drill: read the clock at each stage.", *pace, *["/tool current_time {}"] * (steps - 1)])


RUN_INPUT = run_input(STEPS)
RUN_STEPS = "RunStepsFunction"
TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
KB = 1024

# What the current thread is running: "RunStepsFunction:think", "AgentsFunction:GET", ...
_invocation: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_invocation", default=None)


# --------------------------------------------------------------------------- item sizes (AWS's rules)


def item_size(item: dict[str, Any] | None) -> int:
    """Bytes of an item in DynamoDB's wire format, as DynamoDB sizes it: attribute
    names plus values; numbers 1 byte per two significant digits + 1; lists and
    maps 3 bytes + 1 byte per element (docs: "DynamoDB item sizes and formats")."""
    if not item:
        return 0
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(_number_size(n) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in data.items())
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in data)
    raise ValueError(f"unknown attribute type {kind}")


def _number_size(text: str) -> int:
    mantissa = text.lower().lstrip("+-").split("e")[0]
    digits = mantissa.replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def write_units(size: int) -> int:
    return math.ceil(size / KB) if size else 0


def read_units(size: int) -> int:
    return max(1, math.ceil(size / (4 * KB)))


# --------------------------------------------------------------------------- recording


@dataclass
class Call:
    """One DynamoDB request PynamoDB made, and what it is billed."""

    label: str
    operation: str
    items_written: int = 0
    wru_table: int = 0
    wru_index: int = 0
    wru_by_item: Counter = field(default_factory=Counter)  # item type → WRU (table + index)
    writes_by_item: Counter = field(default_factory=Counter)  # item type → items written
    largest_by_item: dict[str, int] = field(default_factory=dict)  # item type → largest size written (bytes)
    rru: float = 0.0
    rru_reported: bool = False  # RRU taken from DynamoDB Local's ConsumedCapacity (see _read_units)
    reported: float = 0.0  # DynamoDB Local's ConsumedCapacity.CapacityUnits
    failed: bool = False

    @property
    def wru(self) -> int:
        return self.wru_table + self.wru_index


@dataclass
class Invocation:
    label: str
    seconds: float
    memory_mb: int
    architecture: str = "x86_64"


@dataclass
class _Table:
    keys: tuple[str, ...]
    indexes: list[tuple[tuple[str, ...], str, tuple[str, ...]]]  # (key attributes, projection type, non-key attributes)


class Recorder:
    """Attributes every DynamoDB request PynamoDB makes, and every handler
    invocation, to the function that made it (the run step for run_steps, the
    HTTP method for the HTTP functions), while ``active``.

    With ``sizing``, each write's items are read (consistently, with a client of
    the bench's own) before and after it, and the write is charged as AWS bills
    it: per item ``ceil(max(size before, size after) / 1 KB)`` WRU, twice that
    inside a transaction; plus, per global secondary index the item is (or was)
    in, one write of the index entry (two when the index key changed), charged
    as a standard write (a transaction's changes reach GSIs after it commits).
    DynamoDB Local's own ConsumedCapacity is not used for writes: for
    TransactWriteItems it reports 4 WRU for a one-item 100-byte transaction
    (AWS: 2) and does not add up the items of a transaction."""

    def __init__(self, cloud: Any, sizing: bool) -> None:
        self.cloud = cloud
        self.sizing = sizing
        self.active = False
        self.calls: list[Call] = []
        self.invocations: list[Invocation] = []
        # The bench's reads are the operator's, not the function's it measures: credentials of
        # their own, which the local IAM enforcement does not take for the function's role.
        self._client = boto3.client("dynamodb", region_name=cloud.config.stack.region,
                                    aws_access_key_id="bench", aws_secret_access_key="bench")  # nosec B106  # dummy, local
        self._tables: dict[str, _Table] = {}
        self._restore: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ install

    def __enter__(self) -> Recorder:
        import pynamodb.connection.base as pynamodb_base

        connection = pynamodb_base.Connection
        dispatch = connection.dispatch
        recorder = self

        def recording_dispatch(conn: Any, operation_name: str, operation_kwargs: dict) -> dict:
            label = _invocation.get()
            if label is None or not recorder.active:
                return dispatch(conn, operation_name, operation_kwargs)
            return recorder._record(lambda: dispatch(conn, operation_name, operation_kwargs),
                                    label, operation_name, operation_kwargs)

        connection.dispatch = recording_dispatch
        self._restore.append(lambda: setattr(connection, "dispatch", dispatch))

        runtime = self.cloud.runtime
        for logical_id, spec in runtime.specs.items():
            module = runtime.module(logical_id)
            name = spec.handler.rsplit(".", 1)[1]
            original = getattr(module, name)
            setattr(module, name, self._timed(logical_id, spec.memory, spec.architecture, original))
            self._restore.append(lambda m=module, n=name, o=original: setattr(m, n, o))
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False
        while self._restore:
            self._restore.pop()()

    def _timed(self, logical_id: str, memory_mb: int, architecture: str, handler: Callable) -> Callable:
        def timed_handler(event: Any, context: Any) -> Any:
            label = _label(logical_id, event)
            token = _invocation.set(label)
            started = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                if self.active:
                    self.invocations.append(Invocation(label, time.perf_counter() - started, memory_mb, architecture))
                _invocation.reset(token)

        return timed_handler

    # ------------------------------------------------------------------ one request

    def _record(self, send: Callable[[], dict], label: str, operation: str, kwargs: dict) -> dict:
        call = Call(label, operation)
        targets = list(self._write_targets(operation, kwargs)) if self.sizing and operation in WRITES else []
        call.items_written = len(targets)
        before = [self._get(table, key) for _, table, key, _ in targets]
        try:
            data = send()
        except Exception:
            call.failed = True
            self.calls.append(call)
            raise
        call.reported = _capacity_units(data.get("ConsumedCapacity"))
        if targets:
            for (kind, table, key, transactional), old in zip(targets, before, strict=True):
                new = old if kind == "ConditionCheck" else None if kind == "Delete" else self._get(table, key)
                self._charge_write(call, table, old, new, transactional)
        elif operation in READS:
            call.rru, call.rru_reported = self._read_units(operation, kwargs, data, call.reported)
        self.calls.append(call)
        return data

    def _write_targets(self, operation: str, kwargs: dict) -> Iterator[tuple[str, str, dict, bool]]:
        """(kind, table, key, transactional) of every item a write request writes."""
        if operation == "TransactWriteItems":
            for entry in kwargs["TransactItems"]:
                (kind, body), = entry.items()
                yield kind, body["TableName"], body.get("Key") or self._key_of(body["TableName"], body["Item"]), True
        elif operation == "BatchWriteItem":
            for table, requests in kwargs["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        yield "Put", table, self._key_of(table, request["PutRequest"]["Item"]), False
                    else:
                        yield "Delete", table, request["DeleteRequest"]["Key"], False
        else:
            kind = {"PutItem": "Put", "UpdateItem": "Update", "DeleteItem": "Delete"}[operation]
            table = kwargs["TableName"]
            yield kind, table, kwargs.get("Key") or self._key_of(table, kwargs["Item"]), False

    def _charge_write(self, call: Call, table: str, old: dict | None, new: dict | None, transactional: bool) -> None:
        schema = self._table(table)
        kind = ((new or old or {}).get("type") or {}).get("S", "?")
        size = max(item_size(old), item_size(new), 1)
        units = write_units(size) * (2 if transactional else 1)
        call.wru_table += units
        call.wru_by_item[kind] += units
        call.writes_by_item[kind] += 1
        call.largest_by_item[kind] = max(size, call.largest_by_item.get(kind, 0))
        for index_keys, projection, non_key in schema.indexes:
            was, now = (_index_entry(item, schema.keys, index_keys, projection, non_key) for item in (old, new))
            if was is None and now is None:
                continue
            if was is not None and now is not None:
                if all(was[k] == now[k] for k in index_keys):
                    index_units = write_units(max(item_size(was), item_size(now))) if was != now else 0
                else:  # the entry moves: a delete and a put
                    index_units = write_units(item_size(was)) + write_units(item_size(now))
            else:
                index_units = write_units(item_size(was or now))
            call.wru_index += index_units
            call.wru_by_item[kind] += index_units

    def _read_units(self, operation: str, kwargs: dict, data: dict, reported: float) -> tuple[float, bool]:
        """RRU of a read, by AWS's rules: strongly consistent 1 per 4 KB (per item
        for GetItem/BatchGetItem, of the items' total for Query/Scan), eventually
        consistent half, transactional twice; at least one unit a request (or a
        key). Queries whose response does not carry every item read (COUNT, a
        projection, items filtered out) take DynamoDB Local's figure, which
        follows the same rules for single requests (at least the minimum charge)."""
        if operation == "GetItem":
            return _consistency(kwargs) * read_units(item_size(data.get("Item"))), False
        if operation == "BatchGetItem":
            total = 0.0
            for table, request in kwargs["RequestItems"].items():
                found = data.get("Responses", {}).get(table, [])
                missing = max(0, len(request["Keys"]) - len(found))
                total += _consistency(request) * (sum(read_units(item_size(i)) for i in found) + missing)
            return total, False
        if operation == "TransactGetItems":
            return 2.0 * sum(read_units(item_size(r.get("Item"))) for r in data.get("Responses", [])), False
        factor = _consistency(kwargs)
        # Every item read is in the response unless it was counted only, projected, or filtered out.
        complete = (kwargs.get("Select") != "COUNT" and "ProjectionExpression" not in kwargs
                    and "AttributesToGet" not in kwargs and data.get("ScannedCount") == data.get("Count"))
        if not complete:
            return max(reported, factor), True
        return factor * read_units(sum(item_size(i) for i in data.get("Items", []))), False

    # ------------------------------------------------------------------ the table, read with the bench's own client

    def _table(self, name: str) -> _Table:
        if name not in self._tables:
            description = self._client.describe_table(TableName=name)["Table"]
            keys = tuple(k["AttributeName"] for k in description["KeySchema"])
            indexes = [(tuple(k["AttributeName"] for k in index["KeySchema"]), index["Projection"]["ProjectionType"],
                        tuple(index["Projection"].get("NonKeyAttributes", ())))
                       for index in description.get("GlobalSecondaryIndexes", [])]
            self._tables[name] = _Table(keys, indexes)
        return self._tables[name]

    def _key_of(self, table: str, item: dict) -> dict:
        return {k: item[k] for k in self._table(table).keys}

    def _get(self, table: str, key: dict) -> dict | None:
        return self._client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")


def _label(logical_id: str, event: Any) -> str:
    if logical_id == RUN_STEPS and isinstance(event, dict):
        return f"{RUN_STEPS}:{event.get('step')}"
    if isinstance(event, dict) and "httpMethod" in event:
        return f"{logical_id}:{event['httpMethod']}"
    return logical_id


def _capacity_units(consumed: Any) -> float:
    if isinstance(consumed, dict):
        consumed = [consumed]
    return sum(float(c.get("CapacityUnits", 0)) for c in consumed or [])


def _consistency(kwargs: dict) -> float:
    return 1.0 if kwargs.get("ConsistentRead") else 0.5


def _index_entry(item: dict | None, table_keys: tuple[str, ...], index_keys: tuple[str, ...], projection: str,
                 non_key: tuple[str, ...]) -> dict | None:
    if item is None or not all(k in item for k in index_keys):
        return None  # a sparse index: the item is not in it
    if projection == "ALL":
        return item
    names = set(table_keys) | set(index_keys) | (set(non_key) if projection == "INCLUDE" else set())
    return {k: v for k, v in item.items() if k in names}


# --------------------------------------------------------------------------- one run


@dataclass
class MeasuredRun:
    run: dict[str, Any]
    polls: int
    client_seconds: float
    history: list[dict[str, Any]]
    calls: list[Call]
    invocations: list[Invocation]

    @property
    def wall_seconds(self) -> float:
        return (_at(self.run["finished_at"]) - _at(self.run["created_at"])).total_seconds()

    def run_steps_calls(self) -> list[Call]:
        return [c for c in self.calls if c.label.startswith(RUN_STEPS)]

    def run_steps_invocations(self) -> list[Invocation]:
        return [i for i in self.invocations if i.label.startswith(RUN_STEPS)]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def measured_run(cloud: Any, tenant: Any, agent_id: str, sizing: bool, poll_interval: float,
                 steps: int = STEPS, latency: float = 0.0) -> MeasuredRun:
    """Launch the 5-step run over HTTP, poll its status until it ends, wait for
    its execution to end, and return what was recorded meanwhile."""
    from agenthq.adapters.stepfunctions import StepFunctionsOrchestrator

    sfn = cloud.client("stepfunctions")
    orchestrator = StepFunctionsOrchestrator(sfn, cloud.environment["STATE_MACHINE_ARN"])
    with Recorder(cloud, sizing) as recorder:
        recorder.active = True
        started = time.perf_counter()
        launched = tenant.api.post(tenant.path(f"/agents/{agent_id}/runs"),
                                   json={"input": run_input(steps, latency)}, headers=tenant.headers)
        if launched.status_code != 202:
            raise RuntimeError(f"launch failed: {launched.status_code} {launched.text}")
        patience = 120 + steps * latency
        run_id, polls, deadline = launched.json()["id"], 0, time.monotonic() + patience
        while True:
            time.sleep(poll_interval)
            run = tenant.get(f"/runs/{run_id}").json()
            polls += 1
            if run["status"] in TERMINAL:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} still {run['status']} after {patience:g} s")
        client_seconds = time.perf_counter() - started
        arn = orchestrator.execution_arn(run_id)
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":  # Finish returning, Done
            time.sleep(0.02)
        recorder.active = False
    if run["status"] != "succeeded" or run["steps"] != steps:
        raise RuntimeError(f"expected a succeeded run of {steps} steps, got {run['status']} with {run['steps']}")
    return MeasuredRun(run, polls, client_seconds, _history(sfn, arn), recorder.calls, recorder.invocations)


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events, token = [], None
    while True:
        page = sfn.get_execution_history(executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def state_transitions(history: list[dict[str, Any]]) -> tuple[Counter, int]:
    """(states entered by type, retried task attempts): what Step Functions bills."""
    entered = Counter(e["type"].removesuffix("StateEntered") for e in history if e["type"].endswith("StateEntered"))
    retries, attempts = 0, 0
    for event in history:
        if event["type"] == "TaskStateEntered":
            attempts = 0
        elif event["type"] in ("TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"):
            attempts += 1
            retries += attempts > 1
    return entered, retries


# --------------------------------------------------------------------------- the benchmark


def load_prices() -> dict[str, float]:
    data = json.loads(PRICES_FILE.read_text())
    return {name: float(entry["usd"]) for name, entry in data["prices"].items()}


def run(cloud: Any, runs: int = 3, getitem_samples: int = 100, poll_interval: float = 0.25,
        warmup_runs: int = 10, paced: tuple[float, ...] = (2.0, 5.0),
        long_paced: tuple[float, ...] = (2.0,)) -> dict[str, Any]:
    """Measure the 5-step run (one accounting run, ``warmup_runs`` untimed ones, then ``runs`` timed
    runs) and the 20-step run, and print the tables. The runs' cost at each of :data:`LATENCIES` is
    measured on a run whose model calls take that long for the latencies in ``paced`` (5 steps) and
    ``long_paced`` (20 steps), and modelled for the others (:func:`by_latency`)."""
    from tests.support import client_for, signup

    if cloud.model_server is None:
        raise RuntimeError("the runs benchmark needs the offline model server (no ANTHROPIC_API_KEY)")
    prices = load_prices()
    latency, cloud.model_server.latency_seconds = cloud.model_server.latency_seconds, 0.0
    try:
        with client_for(cloud) as api:
            tenant = signup(api, tag="bench-runs", tier="pro")
            created = tenant.post("/agents", json={"name": "bench-sre", "personality": "sre"})
            if created.status_code != 201:
                raise RuntimeError(f"could not create the agent: {created.text}")
            agent_id = created.json()["id"]
            accounting = measured_run(cloud, tenant, agent_id, sizing=True, poll_interval=poll_interval)
            for _ in range(warmup_runs):  # as warm as the GetItem baseline is (the module's docstring)
                measured_run(cloud, tenant, agent_id, sizing=False, poll_interval=poll_interval)
            timed = [measured_run(cloud, tenant, agent_id, sizing=False, poll_interval=poll_interval)
                     for _ in range(max(1, runs))]
            long_run = measured_run(cloud, tenant, agent_id, sizing=True, poll_interval=poll_interval,
                                    steps=LONG_STEPS)
            long_timed = measured_run(cloud, tenant, agent_id, sizing=False, poll_interval=poll_interval,
                                      steps=LONG_STEPS)
            paced_runs = {pace: measured_run(cloud, tenant, agent_id, sizing=False, poll_interval=poll_interval,
                                             latency=pace) for pace in paced}
            long_paced_runs = {pace: measured_run(cloud, tenant, agent_id, sizing=False, poll_interval=poll_interval,
                                                  steps=LONG_STEPS, latency=pace) for pace in long_paced}
    finally:
        cloud.model_server.latency_seconds = latency
    getitem = median_seconds(raw_getitem(cloud), getitem_samples, warmup=max(getitem_samples, 300))
    figures = report(accounting, timed, getitem, prices, poll_interval)
    median_run = sorted(timed, key=lambda r: r.wall_seconds)[(len(timed) - 1) // 2]
    figures["by_latency"] = by_latency({STEPS: (accounting, median_run, paced_runs),
                                        LONG_STEPS: (long_run, long_timed, long_paced_runs)}, prices)
    figures["bounds"] = bounds(accounting, figures, long_run, prices)
    return figures


def run_cost(counts: MeasuredRun, timing: MeasuredRun, prices: dict[str, float],
             extra_wait_seconds: float = 0.0) -> dict[str, float]:
    """What AWS bills for a run: its state transitions (in ``timing``'s execution), its run_steps
    invocations (their wall time, billed per ms, + ``extra_wait_seconds`` of waiting on the model not
    measured, × the function's memory at its architecture's price), their DynamoDB units (in ``counts``, an
    accounting run) and the launch request's share (the figure the engine meters, agenthq.usage.infra)."""
    from agenthq.usage import infra

    entered, retries = state_transitions(timing.history)
    transitions = sum(entered.values()) + retries
    workers = timing.run_steps_invocations()
    memory, architecture = workers[0].memory_mb, workers[0].architecture
    billed = sum(math.ceil(i.seconds * 1000) / 1000 for i in workers) + extra_wait_seconds
    gb_seconds = billed * memory / 1024
    calls = counts.run_steps_calls()
    wru = sum(c.wru for c in calls if c.operation in WRITES)
    rru = sum(c.rru for c in calls if c.operation in READS)
    parts = {
        "transitions": transitions * prices["stepfunctions_standard_state_transition"],
        "lambda": len(workers) * prices["lambda_request"] + gb_seconds * infra.gb_second_price(architecture),
        "dynamodb": wru * prices["dynamodb_on_demand_write_request_unit"]
        + rru * prices["dynamodb_on_demand_read_request_unit"],
        "launch": infra.launch_usd(architecture),
    }
    return {**parts, "usd": sum(parts.values()), "gb_seconds": gb_seconds, "billed_seconds": billed,
            "memory_mb": memory, "transitions_count": transitions, "invocations": len(workers)}


def by_latency(measured: dict[int, tuple[MeasuredRun, MeasuredRun, dict[float, MeasuredRun]]],
               prices: dict[str, float]) -> dict[int, dict[float, dict[str, float]]]:
    """Each run's modelled AWS cost at each of :data:`LATENCIES` seconds per model call. A latency with a
    paced run is measured on it (its worker's wall time includes the waits); the others are the run at 0 s
    plus ``steps × latency`` of waiting in the worker: the same transitions and invocations, since a slice
    goes on while a model call fits in what is left of the worker's 900 s (decisions.py), and 20 calls of
    15 s do."""
    figures: dict[int, dict[float, dict[str, float]]] = {}
    for steps, (counts, timing, paced) in measured.items():
        figures[steps] = {}
        for latency in LATENCIES:
            if latency in paced or not latency:
                cost = run_cost(counts, paced.get(latency, timing), prices)
                cost["measured"] = 1.0
            else:
                cost = run_cost(counts, timing, prices, extra_wait_seconds=steps * latency)
                cost["measured"] = 0.0
            figures[steps][latency] = cost
    rows = []
    for latency in LATENCIES:
        cells = []
        for steps in measured:
            cost = figures[steps][latency]
            how = "measured" if cost["measured"] else "modelled"
            cells.append(f"{steps} steps: ${cost['usd']:.7f} (${cost['usd'] / steps:.7f}/step, "
                         f"{cost['gb_seconds']:.2f} GB-s, {how})")
        rows.append((f"{latency:g} s per model call", "", "   ".join(cells)))
    some = figures[STEPS][DESIGN_LATENCY]
    print_rows(f"Modelled AWS cost of a run by model latency (run_steps: {some['memory_mb']:.0f} MB, its wall time "
               "billed, waits included; the launch's share as metered)", rows)
    print("  measured: a run whose model calls took that long (the offline model's /latency); modelled: the run at "
          "0 s + steps × latency of waiting.")
    return figures


def bounds(accounting: MeasuredRun, figures: dict[str, Any], long_run: MeasuredRun,
           prices: dict[str, float]) -> dict[int, dict[str, float]]:
    """The shape of a run against the cheaper-runs bounds (issue 11), for the 5-step and a 20-step run."""
    shapes: dict[int, dict[str, float]] = {}
    for steps, measured in ((STEPS, accounting), (LONG_STEPS, long_run)):
        entered, retries = state_transitions(measured.history)
        calls = measured.run_steps_calls()
        writes = [c for c in calls if c.operation in WRITES]
        reads = [c for c in calls if c.operation in READS]
        wru, rru = sum(c.wru for c in writes), sum(c.rru for c in reads)
        transitions = sum(entered.values()) + retries
        cost = _cost(measured, measured, transitions, wru, rru, prices)
        shapes[steps] = {"transitions": transitions, "invocations": len(measured.run_steps_invocations()),
                         "writes_per_step": len(writes) / steps, "reads_per_step": len(reads) / steps,
                         "run_usd": sum(usd for name, (usd, _) in cost.items() if name in RUN_PARTS)}
    shapes[STEPS]["run_usd"] = figures["run_usd"]
    rows = []
    for label, key, bound, fmt in (("state transitions in the run", "transitions", 6, "{:.0f}"),
                                   ("run_steps invocations", "invocations", 2, "{:.0f}"),
                                   ("DynamoDB write requests per step", "writes_per_step", 2, "{:.2f}"),  # the call mark rides on the reservation (275)
                                   ("DynamoDB read requests per step", "reads_per_step", 3, "{:.2f}"),
                                   ("modelled AWS cost of the run", "run_usd", 0.00025, "${:.7f}")):
        values = "   ".join(f"{n} steps: {fmt.format(shapes[n][key])}" for n in (STEPS, LONG_STEPS))
        rows.append((label, values, f"bound {fmt.format(bound)}"))
    rows.append((f"orchestration wall time per step ÷ GetItem ({STEPS} steps)", f"{figures['wall_per_step_ratio']:.1f}x",
                 "bound 30x"))
    at = figures["by_latency"]
    design = at[STEPS][DESIGN_LATENCY]["usd"]
    rows.append((f"modelled AWS cost at {DESIGN_LATENCY:g} s per model call", f"{STEPS} steps: ${design:.7f}",
                 f"bound ${BOUND_AT_DESIGN_LATENCY:.5f}"))
    for latency in LATENCIES:
        short, long = at[STEPS][latency]["usd"] / STEPS, at[LONG_STEPS][latency]["usd"] / LONG_STEPS
        rows.append((f"cost per step at {latency:g} s per call", f"{STEPS} steps: ${short:.7f}   "
                     f"{LONG_STEPS} steps: ${long:.7f}", f"bound: {LONG_STEPS} steps ≤ {STEPS} steps"))
    print_rows("The run's shape against its bounds", rows)
    return shapes


#: What the run costs AWS, as opposed to what its client chooses to spend reading its status.
RUN_PARTS = ("Step Functions", "Lambda run_steps", "DynamoDB run_steps", "the launch request")


def report(accounting: MeasuredRun, timed: list[MeasuredRun], getitem: float, prices: dict[str, float],
           poll_interval: float) -> dict[str, Any]:
    median_run = sorted(timed, key=lambda r: r.wall_seconds)[(len(timed) - 1) // 2]
    entered, retries = state_transitions(median_run.history)
    transitions = sum(entered.values()) + retries
    tasks = len(accounting.run_steps_invocations())

    calls = accounting.run_steps_calls()
    writes = [c for c in calls if c.operation in WRITES]
    reads = [c for c in calls if c.operation in READS]
    write_requests, items_written = len(writes), sum(c.items_written for c in writes)
    wru_table, wru_index = sum(c.wru_table for c in writes), sum(c.wru_index for c in writes)
    wru = wru_table + wru_index
    rru = sum(c.rru for c in reads)
    failed = sum(c.failed for c in calls)
    reported_writes = sum(c.reported for c in writes)

    print(f"\nAgent runs: one run of {STEPS} steps (model calls) — an SRE agent, {STEPS - 1} /tool current_time turns "
          f"and an answer; offline model, latency 0; {tasks} run_steps invocations")
    print("  Figures are the local cloud's (moto's interpreter, DynamoDB Local, in-process handlers on this "
          "machine), not AWS's;\n  counts and request units are what AWS would bill for the same requests.")

    by_type = " + ".join(f"{n} {t}" for t, n in sorted(entered.items(), key=lambda kv: -kv[1]))
    print_rows(f"Per step ({STEPS} steps)", [
        ("Step Functions state transitions", f"{transitions / STEPS:.2f}",
         f"{transitions} = states entered ({by_type}) + {retries} retries"),
        ("DynamoDB write requests (run_steps)", f"{write_requests / STEPS:.2f}",
         f"{write_requests} requests ({_operations(writes)}) writing {items_written} items"),
        ("DynamoDB write request units", f"{wru / STEPS:.2f}",
         f"{wru} WRU = {wru_table} table + {wru_index} GSI (DynamoDB Local reported {reported_writes:g})"),
        ("DynamoDB read requests (run_steps)", f"{len(reads) / STEPS:.2f}", f"{len(reads)} requests ({_operations(reads)})"),
        ("DynamoDB read request units", f"{rru / STEPS:.2f}",
         f"{rru:g} RRU ({sum(c.rru_reported for c in reads)} COUNT or filtered queries as DynamoDB Local reported them)"),
    ])
    if failed:
        print(f"  ! {failed} DynamoDB requests failed (conflicts, retried by the code); not charged above")

    print_rows("DynamoDB by run step (accounting run)", _by_step(accounting))
    print_rows("DynamoDB WRU by item written (run_steps)", _by_item(writes, wru))

    walls = [r.wall_seconds for r in timed]
    wall = statistics.median(walls)
    handler = sum(i.seconds for i in median_run.run_steps_invocations())
    client = median_run.client_seconds
    print_table(f"Orchestration wall time per step (median of {len(timed)} timed runs ÷ one raw GetItem)", [
        ("raw DynamoDB GetItem (baseline)", 1.0, ms(getitem)),
        ("run created → finished, per step", wall / STEPS / getitem,
         f"{ms(wall / STEPS)}  (runs: {', '.join(f'{w:.2f} s' for w in walls)})"),
        ("  of which in run_steps handlers", handler / STEPS / getitem,
         f"{ms(handler / STEPS)}  ({tasks} invocations, {ms(handler / tasks)} each)"),
        ("launch → client saw it end, per step", client / STEPS / getitem,
         f"{ms(client / STEPS)}  (polling every {poll_interval:g} s)"),
    ])

    cost = _cost(accounting, median_run, transitions, wru, rru, prices)
    run_usd = sum(usd for name, (usd, _) in cost.items() if name in RUN_PARTS)
    langsmith = prices["langsmith_deployment_agent_run"]
    rows = [(name, f"${usd:.7f}", detail) for name, (usd, detail) in cost.items() if name in RUN_PARTS]
    rows.append(("the run", f"${run_usd:.7f}",
                 f"= {run_usd / langsmith:.3f} × LangSmith Deployment's ${langsmith} per agent run "
                 f"({langsmith / run_usd:.0f} runs for one of theirs)"))
    rows += [(name, f"${usd:.7f}", detail) for name, (usd, detail) in cost.items() if name not in RUN_PARTS]
    print_rows("Modelled AWS cost of the run (us-east-1 list prices, layers/common/agenthq/aws_prices.json)", rows)
    print("  The status polls are the client's choice (live status over the WebSocket API costs none of them);\n"
          "  they are billed to the workspace as API calls, and not part of the run's cost.")
    print("  Not modelled: the model's tokens, CloudWatch Logs, X-Ray, Secrets Manager calls, data transfer, "
          "storage, cold starts,\n  the stream → broadcaster Lambda; free tiers ignored.")

    return {
        "steps": STEPS,
        "transitions": transitions,
        "transitions_per_step": transitions / STEPS,
        "write_requests_per_step": write_requests / STEPS,
        "items_written_per_step": items_written / STEPS,
        "wru_per_step": wru / STEPS,
        "rru_per_step": rru / STEPS,
        "getitem_seconds": getitem,
        "wall_seconds_per_step": wall / STEPS,
        "wall_per_step_ratio": wall / STEPS / getitem,
        "polls": median_run.polls,
        "cost_usd": {name: usd for name, (usd, _) in cost.items()},
        "run_usd": run_usd,
        "total_usd": run_usd,
        "langsmith_ratio": run_usd / langsmith,
    }


def _operations(calls: list[Call]) -> str:
    return ", ".join(f"{n} {op}" for op, n in Counter(c.operation for c in calls).most_common())


def _by_step(run: MeasuredRun) -> list[tuple[str, str, str]]:
    invocations = Counter(i.label for i in run.run_steps_invocations())
    per: dict[str, list[Call]] = defaultdict(list)
    for call in run.run_steps_calls():
        per[call.label].append(call)
    rows = []
    for label, count in invocations.items():
        calls = per[label]
        writes = [c for c in calls if c.operation in WRITES]
        wru = sum(c.wru for c in writes)
        rows.append((f"{label.split(':', 1)[1]} ×{count}", f"{wru / count:.1f} WRU",
                     f"per invocation: {len(writes) / count:.1f} write requests, "
                     f"{sum(c.items_written for c in writes) / count:.1f} items, "
                     f"{sum(c.rru for c in calls if c.operation in READS) / count:.1f} RRU in "
                     f"{sum(c.operation in READS for c in calls) / count:.1f} reads"))
    return rows


def _by_item(writes: list[Call], wru: int) -> list[tuple[str, str, str]]:
    totals: Counter = Counter()
    count: Counter = Counter()
    largest: dict[str, int] = {}
    for call in writes:
        totals.update(call.wru_by_item)
        count.update(call.writes_by_item)
        for kind, size in call.largest_by_item.items():
            largest[kind] = max(size, largest.get(kind, 0))
    return [(kind, f"{units} WRU", f"{100 * units / wru:2.0f}%  {count[kind]} writes, {units / count[kind]:.1f} WRU "
                                   f"each, up to {largest[kind]:,} bytes")
            for kind, units in totals.most_common()]


def _cost(accounting: MeasuredRun, timed: MeasuredRun, transitions: int, wru: int, rru: float,
          prices: dict[str, float]) -> dict[str, tuple[float, str]]:
    """Each part of the run's cost: (USD, how it was worked out)."""
    from agenthq.usage import infra

    request = prices["lambda_request"]

    def lambda_cost(invocations: list[Invocation]) -> tuple[float, float]:
        usd = gb_seconds = 0.0
        for i in invocations:
            gbs = math.ceil(i.seconds * 1000) / 1000 * i.memory_mb / 1024
            gb_seconds += gbs
            usd += gbs * infra.gb_second_price(i.architecture) + request
        return usd, gb_seconds

    steps = timed.run_steps_invocations()
    steps_usd, steps_gbs = lambda_cost(steps)
    memory, architecture = steps[0].memory_mb, steps[0].architecture
    billed_ms = sum(math.ceil(i.seconds * 1000) for i in steps)

    # The HTTP side: the launch and the status polls (their functions + the authorizer), Lambda time from the
    # timed run, DynamoDB units per invocation from the accounting run. The authorizer's share of each request
    # is its average; the launch is the POST, the polls the GETs.
    w, r = prices["dynamodb_on_demand_write_request_unit"], prices["dynamodb_on_demand_read_request_unit"]
    units: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for call in accounting.calls:
        if not call.label.startswith(RUN_STEPS):
            units[call.label][0] += call.wru
            units[call.label][1] += call.rru
    made = Counter(i.label for i in accounting.invocations)
    requests = 1 + timed.polls

    def http_cost(invocations: list[Invocation], share: float) -> tuple[float, float, float]:
        """(USD, WRU, RRU) of ``invocations`` (× ``share`` for the authorizer's)."""
        usd = wru_sum = rru_sum = 0.0
        for label in {i.label for i in invocations}:
            group = [i for i in invocations if i.label == label]
            factor = 1.0 if ":" in label else share  # the authorizer's invocations serve every request
            lambda_usd, _ = lambda_cost(group)
            per_wru, per_rru = (u / made[label] if made[label] else 0.0 for u in units[label])
            usd += factor * (lambda_usd + len(group) * (per_wru * w + per_rru * r))
            wru_sum += factor * len(group) * per_wru
            rru_sum += factor * len(group) * per_rru
        return usd, wru_sum, rru_sum

    http = [i for i in timed.invocations if not i.label.startswith(RUN_STEPS)]
    authorizer = [i for i in http if ":" not in i.label]
    launch_usd, launch_wru, launch_rru = http_cost([i for i in http if i.label.endswith(":POST")] + authorizer,
                                                   1 / requests)
    polls_usd, polls_wru, polls_rru = http_cost([i for i in http if i.label.endswith(":GET")] + authorizer,
                                                timed.polls / requests)
    gateway = prices["apigateway_rest_request"]
    return {
        "Step Functions": (transitions * prices["stepfunctions_standard_state_transition"],
                           f"{transitions} state transitions"),
        "Lambda run_steps": (steps_usd, f"{len(steps)} requests, {billed_ms} ms billed × {memory} MB "
                                        f"= {steps_gbs:.3f} GB-s ({architecture})"),
        "DynamoDB run_steps": (wru * w + rru * r, f"{wru} WRU + {rru:g} RRU on demand"),
        # One figure with the ledger: the share the engine meters onto the run at its launch. What this run's
        # launch measured is beside it (it must not be more).
        "the launch request": (infra.launch_usd(architecture),
                               f"the share metered onto the run (API Gateway, {infra.LAUNCH_LAMBDA_REQUESTS} Lambda "
                               f"requests, {infra.LAUNCH_GB_SECONDS:g} GB-s, {infra.LAUNCH_WRITE_UNITS} WRU + "
                               f"{infra.LAUNCH_READ_UNITS} RRU); measured ${gateway + launch_usd:.7f}: "
                               f"{launch_wru:g} WRU + {launch_rru:.1f} RRU"),
        "the client's status polls": (timed.polls * gateway + polls_usd,
                                      f"{timed.polls} GETs (API Gateway, functions, authorizer; "
                                      f"{polls_wru:g} WRU + {polls_rru:.1f} RRU)"),
    }
