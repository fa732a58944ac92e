"""The local runtime's execution environments: invocations wait for one of ``limit`` in turns, and each
environment freed goes to the first in line at once (only that one is woken: under a burst, waking every
waiting thread for each freed environment took the interpreter from the rest of the local cloud;
bench/live_flood.py measures it)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from local.lambda_runtime import FunctionError, _Environments
from tests.support import until


class _Environment:
    generation = 0


def _take(environments: _Environments, patience: float, lane: object = None) -> tuple[_Environment, float]:
    return environments.take("Probe", _Environment, patience=patience, lane=lane)  # type: ignore[arg-type,return-value]


def test_environments_freed_together_each_go_to_the_next_in_line_at_once():
    environments = _Environments(2)
    held = [_take(environments, 1)[0] for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_take, environments, 30)
        until(lambda: len(environments.queue) == 1, "the first waiting")
        second = pool.submit(_take, environments, 30)
        until(lambda: len(environments.queue) == 2, "the second waiting")
        began = time.monotonic()
        for environment in held:
            environments.give_back(environment)  # type: ignore[arg-type]
        (got_first, _), (got_second, _) = first.result(5), second.result(5)
    assert {id(got_first), id(got_second)} == {id(e) for e in held}  # warm ones, no cold start
    assert time.monotonic() - began < 5 and environments.cold_starts == 2


def test_an_invocation_that_gives_up_waiting_hands_its_turn_on():
    environments = _Environments(1)
    held, _ = _take(environments, 1)
    with ThreadPoolExecutor(2) as pool:
        impatient = pool.submit(_take, environments, 0.3, "a")
        until(lambda: len(environments.queue) == 1, "the impatient one waiting")
        patient = pool.submit(_take, environments, 30, "b")
        with pytest.raises(FunctionError) as raised:
            impatient.result(5)
        assert raised.value.error_type == "Sandbox.Timedout"
        assert environments.queue and not patient.done()  # still waits: the environment is held
        environments.give_back(held)  # type: ignore[arg-type]
        got, _ = patient.result(5)
    assert got is held


def test_waiting_invocations_are_served_in_turns_by_lane():
    environments = _Environments(1)
    held, _ = _take(environments, 1)
    order: list[str] = []
    lock = threading.Lock()

    def invocation(lane: str, name: str) -> None:
        environment, _ = _take(environments, 30, lane)
        with lock:
            order.append(name)
        environments.give_back(environment)  # type: ignore[arg-type]

    with ThreadPoolExecutor(5) as pool:
        futures = []
        for lane, name in [("flood", "flood-1"), ("flood", "flood-2"), ("flood", "flood-3"), ("other", "other")]:
            futures.append(pool.submit(invocation, lane, name))
            until(lambda n=len(futures): len(environments.queue) == n, f"{name} waiting")
        environments.give_back(held)  # type: ignore[arg-type]
        for future in futures:
            future.result(5)
    assert order == ["flood-1", "other", "flood-2", "flood-3"]
