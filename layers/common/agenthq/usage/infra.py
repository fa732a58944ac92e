"""The modelled AWS cost of a run's steps, metered as they run.

Each Step Functions task is one ``run_steps`` invocation (a slice of the run's
steps), and AWS bills it as: its state transitions (the Task state and the
Choice state after it: 2; the run's end adds its Succeed or Fail state), one
Lambda request, its duration × memory (GB-s, at its architecture's price:
``LAMBDA_ARCHITECTURE``, template.yaml's ``Architectures``), and the DynamoDB request
units its calls consumed (pynamodb asks for ``ReturnConsumedCapacity=TOTAL``
on every call; ``store`` hands what each call consumed to :func:`consumed`).
Prices come from one file, ``agenthq/aws_prices.json`` (the benchmark reads the
same one).

An invocation meters into a :class:`StepMeter` (a context variable set by
:func:`metering`); each commit of the run takes what accrued since the last one
(:func:`take`, in micro-dollars, rounded up) and adds it to the run's
``infra_micro_usd``; the run's end writes the total as its ``infra`` ledger
entry and into the workspace's counters. Work after an invocation's last
commit (a few ms: answering the state machine) is not metered. A run launched over
the API starts with the launch request's share (:func:`launch_micro_usd`) on it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).resolve().parent.parent / "aws_prices.json"
TRANSITIONS_PER_STEP = 2  # the Task state, and the Choice state it hands to
END_TRANSITIONS = 1  # the run's Succeed (or Fail) state
READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})


@lru_cache(maxsize=1)
def prices() -> dict[str, float]:
    """USD per unit, by name (``stepfunctions_standard_state_transition``, …)."""
    data = json.loads(PRICES_FILE.read_text())
    return {name: float(entry["usd"]) for name, entry in data["prices"].items()}


def gb_second_price(architecture: str) -> float:
    """USD per GB-s of a Lambda function of that architecture (``arm64`` or ``x86_64``)."""
    return prices()["lambda_arm64_gb_second" if architecture == "arm64" else "lambda_x86_gb_second"]


@dataclass
class StepMeter:
    memory_mb: int
    architecture: str = "arm64"
    since: float = field(default_factory=time.monotonic)
    read_units: float = 0.0
    write_units: float = 0.0
    invocation_counted: bool = False
    carried_micro_usd: int = 0  # taken by a commit that then failed
    lock: threading.Lock = field(default_factory=threading.Lock)  # tools run in threads of the invocation


_meter: ContextVar[StepMeter | None] = ContextVar("agenthq_step_meter", default=None)


@contextmanager
def metering(memory_mb: int, architecture: str = "arm64") -> Iterator[StepMeter]:
    """Meter this invocation of a run step (a function of ``memory_mb`` on ``architecture``)."""
    meter = StepMeter(memory_mb=memory_mb, architecture=architecture)
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


def consumed(operation: str, capacity: Any) -> None:
    """A DynamoDB call's ``ConsumedCapacity`` (one entry or a list, per table)."""
    meter = _meter.get()
    if meter is None or not capacity:
        return
    entries = capacity if isinstance(capacity, list) else [capacity]
    units = sum(float(entry.get("CapacityUnits") or 0) for entry in entries if isinstance(entry, dict))
    with meter.lock:
        if operation in READS:
            meter.read_units += units
        else:
            meter.write_units += units


def take() -> int:
    """Micro-dollars of infrastructure the current invocation accrued since the
    last take (0 outside a metered invocation), rounded up."""
    meter = _meter.get()
    if meter is None:
        return 0
    price = prices()
    with meter.lock:
        now = time.monotonic()
        gb_seconds = (now - meter.since) * meter.memory_mb / 1024
        usd = (gb_seconds * gb_second_price(meter.architecture)
               + meter.read_units * price["dynamodb_on_demand_read_request_unit"]
               + meter.write_units * price["dynamodb_on_demand_write_request_unit"])
        if not meter.invocation_counted:
            usd += (TRANSITIONS_PER_STEP * price["stepfunctions_standard_state_transition"]
                    + price["lambda_request"])
            meter.invocation_counted = True
        meter.since, meter.read_units, meter.write_units = now, 0.0, 0.0
        carried, meter.carried_micro_usd = meter.carried_micro_usd, 0
    return math.ceil(usd * 1_000_000) + carried


# The launch request's share of a run: what AWS bills for the request that launched it — API Gateway, the
# launch function and the authorizer (a Lambda request each, and their GB-s), the launch transaction's DynamoDB
# units. It is metered onto a run when the run is created (agenthq.runs.launch), so the ledger is not below the bill; the
# benchmark prices the launch with the same figure, and prints what it measured beside it (bench/runs.py).
LAUNCH_LAMBDA_REQUESTS = 2  # the launch function and the authorizer
LAUNCH_GB_SECONDS = 0.1  # both functions' billed time: 200 ms at 512 MB (measured: 50-100 ms in all)
LAUNCH_WRITE_UNITS = 24  # the launch transaction: run, body, event, ledger, counters, quota, slots (measured: 21)
LAUNCH_READ_UNITS = 8  # the authorizer's and the launch's reads (measured: 6-7)


def launch_usd(architecture: str) -> float:
    """USD of the launch request's share of a run (functions of ``architecture``)."""
    price = prices()
    return (price["apigateway_rest_request"] + LAUNCH_LAMBDA_REQUESTS * price["lambda_request"]
            + LAUNCH_GB_SECONDS * gb_second_price(architecture)
            + LAUNCH_WRITE_UNITS * price["dynamodb_on_demand_write_request_unit"]
            + LAUNCH_READ_UNITS * price["dynamodb_on_demand_read_request_unit"])


def launch_micro_usd(architecture: str) -> int:
    """:func:`launch_usd` in micro-dollars, rounded up."""
    return math.ceil(launch_usd(architecture) * 1_000_000)


def end_of_run() -> int:
    """Micro-dollars of the run's last state transition (its Succeed or Fail state), rounded up."""
    return math.ceil(END_TRANSITIONS * prices()["stepfunctions_standard_state_transition"] * 1_000_000)


def give_back(micro_usd: int) -> None:
    """A commit that took ``micro_usd`` failed: the next take carries it."""
    meter = _meter.get()
    if meter is not None and micro_usd > 0:
        with meter.lock:
            meter.carried_micro_usd += micro_usd
