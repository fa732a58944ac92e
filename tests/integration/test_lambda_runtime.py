"""Lambda's execution model in the local cloud: each function in worker processes of its own, with its
own environment; warm environments reused, at most the function's concurrency at once; a handler killed
at its timeout, so nothing it would have done afterwards happens."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from agenthq.store.items import UserEmail
from local.lambda_runtime import FunctionError, InvocationFault
from tests.support import PASSWORD, assert_error, table_items, unique_email, until

PROBE = "tests.handlers:whereabouts"


def test_each_function_runs_in_a_process_of_its_own_with_its_own_environment(cloud):
    runtime = cloud.runtime
    with runtime.handler_replaced("HealthFunction", PROBE), runtime.handler_replaced("AuthFunction", PROBE):
        health = runtime.invoke("HealthFunction", {})
        auth = runtime.invoke("AuthFunction", {})
    assert len({health["pid"], auth["pid"], os.getpid()}) == 3
    assert health["function_name"] == runtime.specs["HealthFunction"].name
    assert 0 < health["remaining_ms"] <= runtime.specs["HealthFunction"].timeout * 1000
    # Lambda's variables, the function's own variables from template.yaml, the local endpoints
    for seen, logical_id in ((health["environment"], "HealthFunction"), (auth["environment"], "AuthFunction")):
        assert seen["AWS_LAMBDA_FUNCTION_NAME"] == runtime.specs[logical_id].name
        assert seen["TABLE_NAME"] == cloud.config.stack.table_name
        assert seen["AWS_ENDPOINT_URL_DYNAMODB"] == cloud.dynamodb_endpoint
        assert seen["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        # the template's empty AWS_ENDPOINT_URL_SFN (for sam local's env file) does not hide moto's endpoint
        assert "AWS_ENDPOINT_URL_SFN" not in seen
    # and this process's own clients (in-process handlers, the stream mapping) keep DynamoDB Local
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == cloud.environment["AWS_ENDPOINT_URL_DYNAMODB"] \
        == cloud.dynamodb_endpoint
    # a variable only the auth function declares, pointed at the local WebSocket API
    assert auth["environment"]["LIVE_CONNECTIONS_URL"] == cloud.websocket.connections_url
    assert "LIVE_CONNECTIONS_URL" not in health["environment"]
    # nothing of the test's own process leaks in
    assert "PYTEST_CURRENT_TEST" not in health["environment"]


def test_a_warm_environment_is_reused_and_concurrent_invocations_get_environments_of_their_own(cloud):
    runtime = cloud.runtime
    limit = cloud.config.lambda_concurrency
    with runtime.handler_replaced("HealthFunction", PROBE):
        first = runtime.invoke("HealthFunction", {})
        second = runtime.invoke("HealthFunction", {})
        assert second["pid"] == first["pid"] and second["served"] == first["served"] + 1  # warm, not a new one

        with ThreadPoolExecutor(limit + 2) as pool:  # more at once than the function may run
            answers = list(pool.map(lambda _: runtime.invoke("HealthFunction", {"hold_seconds": 0.5}),
                                    range(limit + 2)))
    pids = {a["pid"] for a in answers}
    assert 1 < len(pids) <= limit, pids
    # never more than `limit` at the same moment: the others waited for a free environment
    moments = sorted([(a["started"], 1) for a in answers] + [(a["ended"], -1) for a in answers])
    running = most = 0
    for _, change in moments:
        running += change
        most = max(most, running)
    assert 1 < most <= limit


def test_one_callers_burst_does_not_hold_up_another_callers_invocation(cloud):
    """On Lambda no invocation waits for an environment; here at most `limit` run at once and the others
    wait, in turns by caller (the WebSocket front passes each connection as a lane): an invocation of
    another caller runs at the next free environment, not after the whole of one caller's backlog."""
    runtime = cloud.runtime
    limit = cloud.config.lambda_concurrency
    with runtime.handler_replaced("HealthFunction", PROBE), ThreadPoolExecutor(3 * limit + 1) as pool:
        burst = [pool.submit(runtime.invoke, "HealthFunction", {"hold_seconds": 0.4}, lane="flooding connection")
                 for _ in range(3 * limit)]
        until(lambda: len(runtime._environments["HealthFunction"].queue) == 2 * limit, "the burst waiting")
        other = runtime.invoke("HealthFunction", {"hold_seconds": 0.4}, lane="another connection")
        flooded = [f.result(60) for f in burst]
    # first come first served would have run all 3 × limit of the burst first; in turns, at least the
    # burst's last `limit` start after it (the turn it got is the burst's second)
    after = [a for a in flooded if a["started"] > other["started"]]
    assert len(after) >= limit, (len(after), limit)
    # and nothing ran beyond the function's environments, nor did any invocation go unserved
    moments = sorted([(a["started"], 1) for a in [*flooded, other]] + [(a["ended"], -1) for a in [*flooded, other]])
    running = most = 0
    for _, change in moments:
        running += change
        most = max(most, running)
    assert most <= limit


def test_an_environment_that_died_while_idle_is_replaced_by_a_new_one(cloud):
    runtime = cloud.runtime
    with runtime.handler_replaced("HealthFunction", PROBE):
        first = runtime.invoke("HealthFunction", {})
        os.kill(first["pid"], signal.SIGKILL)
        until(lambda: not _alive(first["pid"]), "the environment's end")
        second = runtime.invoke("HealthFunction", {})
    assert second["pid"] != first["pid"] and second["served"] == 1


def test_an_environment_dead_before_its_process_is_reported_dead_is_not_handed_an_invocation(cloud):
    """The fork server reports a child's end only once it has reaped it; the pipe ends at once. An
    invocation in between went to the dead environment (Runtime.ExitError): it must get another."""
    runtime = cloud.runtime
    with runtime.handler_replaced("HealthFunction", PROBE):
        first = runtime.invoke("HealthFunction", {})
        [idle] = [worker for worker in runtime._environments["HealthFunction"].idle if worker.pid == first["pid"]]
        os.kill(first["pid"], signal.SIGKILL)
        until(lambda: not _alive(first["pid"]), "the environment's end")
        idle.process.is_alive = lambda: True  # the fork server has not reported it yet
        second = runtime.invoke("HealthFunction", {})
    assert second["pid"] != first["pid"] and second["served"] == 1


def test_a_handler_error_is_reported_as_lambda_reports_it_and_the_environment_serves_on(cloud):
    runtime = cloud.runtime
    with runtime.handler_replaced("HealthFunction", "tests.handlers:fails"):
        with pytest.raises(FunctionError) as raised:
            runtime.invoke("HealthFunction", {})
        assert (raised.value.error_type, raised.value.message) == ("ValueError", "as planned")
        assert any("raise ValueError" in line for line in raised.value.stack)
        started = runtime.cold_starts("HealthFunction")
        with pytest.raises(FunctionError):
            runtime.invoke("HealthFunction", {})
        assert runtime.cold_starts("HealthFunction") == started  # the same environment answered again


@contextmanager
def _integration_timeout(cloud, seconds: float):
    kept = cloud.rest.integration_timeout
    cloud.rest.integration_timeout = seconds
    try:
        yield
    finally:
        cloud.rest.integration_timeout = kept


@pytest.mark.parametrize(("function_timeout", "gateway_timeout", "status"), [
    (2.0, 1.0, 504),  # API Gateway gives up first (its 29 s integration timeout): 504, the function goes on ...
    (1.5, 29, 502),  # the function's own timeout is shorter: Lambda's timeout error, which API Gateway makes a 502
], ids=["gateway-timeout", "function-timeout"])
def test_a_signup_past_its_timeout_is_killed_before_it_creates_anything(cloud, api, function_timeout,
                                                                          gateway_timeout, status):
    """... and is killed at its own timeout, before the delayed handler would have written the user."""
    email = unique_email("late")
    hold = 4.0  # the handler starts its real work only after this, past its timeout
    fault = InvocationFault(function="AuthFunction", when="none", delay_seconds=hold,
                            match=lambda event: email in str(event.get("body")))
    killed_before = len(cloud.runtime.timed_out)
    cloud.runtime.faults.append(fault)
    try:
        with cloud.runtime.timeout_changed("AuthFunction", function_timeout), \
                _integration_timeout(cloud, gateway_timeout):
            started = time.monotonic()
            response = api.post("/auth/signup", json={"email": email, "password": PASSWORD,
                                                      "workspace_name": "Too Slow Ltd"})
            answered = time.monotonic() - started
            assert fault.fired == 1
            assert_error(response, status, "internal_error")
            assert answered < min(function_timeout, gateway_timeout) + 1.5
            # its execution environment is killed at the function's timeout, the process with it
            killed = until(lambda: [t for t in cloud.runtime.timed_out[killed_before:]
                                     if t.function == "AuthFunction"], "the environment's end")
    finally:
        cloud.runtime.faults.remove(fault)
    assert killed[0].pid is not None and not _alive(killed[0].pid)
    # Past the moment the handler would have written (had it been left running), nothing of the signup
    # exists: no e-mail item, no login; the address is free for a new signup (not a 409).
    time.sleep(max(0.0, started + hold + 2.0 - time.monotonic()))
    assert table_items(cloud, pk=UserEmail.key(email)[0]) == []
    assert_error(api.post("/auth/login", json={"email": email, "password": PASSWORD}), 401)
    again = api.post("/auth/signup", json={"email": email, "password": PASSWORD, "workspace_name": "Second Try"})
    assert again.status_code == 201, again.text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().split()[2] != "Z"  # a zombie is dead, only not yet reaped


def test_reserved_concurrency_holds_as_on_lambda_the_one_past_it_is_throttled(cloud):
    from dataclasses import replace

    from local.lambda_runtime import LambdaRuntime, Throttled

    # The live functions have a reservation of their own (so they cannot starve the run worker), and it
    # is read from the template.
    reserved = {k: cloud.runtime.specs[k].reserved_concurrency
                for k in ("LiveFunction", "LiveAuthorizerFunction", "BroadcasterFunction")}
    assert all(n is not None and n > 0 for n in reserved.values()), reserved
    assert cloud.runtime.specs["RunStepsFunction"].reserved_concurrency is None

    spec = replace(cloud.runtime.specs["HealthFunction"], reserved_concurrency=2)
    runtime = LambdaRuntime({"HealthFunction": spec})  # in this process: the reservation holds here too
    with runtime.handler_replaced("HealthFunction", PROBE), ThreadPoolExecutor(2) as pool:
        held = [pool.submit(runtime.invoke, "HealthFunction", {"hold_seconds": 1.5}) for _ in range(2)]
        until(lambda: runtime._reservations["HealthFunction"].in_flight == 2, "two invocations under way")
        with pytest.raises(Throttled) as throttled:
            runtime.invoke("HealthFunction", {})
        assert throttled.value.error_type == "TooManyRequestsException"
        assert all("pid" in f.result(30) for f in held)
        assert "pid" in runtime.invoke("HealthFunction", {}), "a place is free again"
    assert runtime.throttles("HealthFunction") == 1
