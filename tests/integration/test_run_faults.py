"""Runs under faults: model rate limits and overload, a step that crashes and
is retried by Step Functions, and a cancel that arrives mid-step."""

from __future__ import annotations

import time

import pytest

from agenthq.store import tenant_scope
from agenthq.store.items import Run, RunSlots
from tests.support import (
    AnswerHeld,
    StepFault,
    UnreachableStepFunctions,
    assert_dense,
    assert_error,
    create_agent,
    events_of,
    launch,
    services_with,
    set_tier,
    signup,
    step_faults,
    tools_replaced_by,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture()
def tenant(api):
    return signup(api, tier="pro")


def model_calls(events):
    return [e for e in events if e["type"] == "model.called"]


def test_a_429_is_retried_in_the_step_and_counted_once(cloud, tenant):
    agent = create_agent(tenant, "patient", "architect")
    marker = "marker-429-" + tenant.workspace_id
    cloud.model_server.faults.add({"status": 429, "times": 1, "match": marker, "retry_after": 1})
    run = wait_for(tenant, launch(tenant, agent["id"], f"Summarise {marker}.").json()["id"])
    assert run["status"] == "succeeded", run
    events = events_of(tenant, run["id"])
    assert_dense(events)
    (call,) = model_calls(events)  # one model.called event for the step
    assert call["data"]["attempts"] == 2
    assert run["usage"]["input_tokens"] == call["data"]["usage"]["input_tokens"]  # counted once
    assert run["steps"] == 1


def test_overload_until_retries_are_exhausted_fails_the_run_with_a_reason(cloud, tenant):
    agent = create_agent(tenant, "unlucky", "architect")
    marker = "marker-529-" + tenant.workspace_id
    cloud.model_server.faults.add({"status": 529, "times": None, "match": marker})
    try:
        run = wait_for(tenant, launch(tenant, agent["id"], f"Summarise {marker}.").json()["id"], timeout=120)
    finally:
        cloud.model_server.faults.clear()
    assert run["status"] == "failed", run
    assert run["error"]["reason"] == "model_unavailable"
    assert "529" in run["error"]["message"]
    events = events_of(tenant, run["id"])
    assert_dense(events)
    assert [e["type"] for e in events] == ["run.queued", "run.started", "run.failed"]
    assert run["usage"]["input_tokens"] == 0 and run["usage"]["cost_usd"] == "0.000000"


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_step_that_crashes_once_is_retried_without_duplicates(cloud, tenant, when):
    agent = create_agent(tenant, f"crashy-{when}", "sre")
    text = 'Check.\n/tools [{"name": "calculator", "input": {"expression": "6*7"}}, ' \
           '{"name": "current_time", "input": {}}]'
    def match(event):  # this test's workspace (known before the launch: its steps may run before it answers)
        return event.get("workspace_id") == tenant.workspace_id

    with step_faults(StepFault(steps=("act", "think"), match=match, times=1, when=when)) as faults:
        launched = launch(tenant, agent["id"], text).json()
        run = wait_for(tenant, launched["id"])
    assert faults[0].fired == 1, "the fault was injected"
    assert run["status"] == "succeeded", run
    events = events_of(tenant, run["id"])
    assert_dense(events)
    types = [e["type"] for e in events]
    assert types == ["run.queued", "run.started", "model.called", "tool.called", "tool.result", "tool.called",
                     "tool.result", "model.called", "run.succeeded"]
    assert run["usage"]["tool_calls"] == 2 and run["steps"] == 2
    assert run["usage"]["input_tokens"] == sum(e["data"]["usage"]["input_tokens"] for e in model_calls(events))


def test_a_crash_in_the_third_step_of_a_slice_resumes_at_step_three(cloud, tenant):
    """One slice runs the whole run; it dies as its third step (the second
    turn's think) begins, after two committed steps. The retried slice finds
    the first two recorded and carries on from the third: nothing twice."""
    agent = create_agent(tenant, "third-step", "sre")
    third = StepFault(steps=("think",), when="before",
                      match=lambda e: e.get("turn") == 2 and e.get("workspace_id") == tenant.workspace_id)
    with step_faults(third), tools_replaced_by(lambda number, ctx: None) as tools:
        launched = launch(tenant, agent["id"], "Check.\n/tool calculator {\"expression\": \"6*7\"}").json()
        run = wait_for(tenant, launched["id"])
    assert third.fired == 1
    assert run["status"] == "succeeded", run
    assert tools.calls == ["calculator"], "the tool of the second step ran once"
    events = events_of(tenant, run["id"])
    assert_dense(events)
    assert [e["type"] for e in events] == ["run.queued", "run.started", "model.called", "tool.called",
                                           "tool.result", "model.called", "run.succeeded"]
    model = [e for e in ledger_entries(tenant.workspace_id, run["id"]) if e.entry.startswith("model#")]
    assert len(model) == 2 and run["steps"] == 2, "two model calls, each metered once"
    assert run["usage"]["input_tokens"] == sum(int(e.input_tokens) for e in model)
    assert run["usage"]["tool_calls"] == 1


def test_a_slice_out_of_time_hands_back_and_the_run_finishes(cloud, tenant):
    """With a model call's retry budget longer than the worker's timeout, a slice
    never has time for a model call after its first step: it hands back before
    each model call but its first, and the next slice goes on. Same events,
    same usage."""
    agent = create_agent(tenant, "short-slices", "sre")
    text = "Check.\n" + "\n".join(["/tool current_time {}"] * 3)
    before = cloud.runtime.invocations.get("RunStepsFunction", 0)
    with services_with(settings={"model_timeout_seconds": 300.0}):  # 4 attempts × 300 s > the 900 s timeout
        run = wait_for(tenant, launch(tenant, agent["id"], text).json()["id"])
    slices = cloud.runtime.invocations.get("RunStepsFunction", 0) - before
    assert run["status"] == "succeeded", run
    assert run["steps"] == 4 and run["usage"]["tool_calls"] == 3
    assert slices >= 4, f"one slice per model call: {slices}"
    events = events_of(tenant, run["id"])
    assert_dense(events)
    assert [e["type"] for e in events] == ["run.queued", "run.started"] + [
        "model.called", "tool.called", "tool.result"] * 3 + ["model.called", "run.succeeded"]


def test_an_act_out_of_time_between_two_tools_hands_back_and_the_next_slice_runs_the_second(cloud, tenant):
    """Tools that may take longer than a slice has left: the act step runs its first tool (an
    invocation's first step always runs), then hands back instead of starting the second; the
    next slice runs the second once. Same events, each tool once."""
    from agenthq.services import get_services
    from agenthq.tools.registry import ToolRegistry

    class SlowTools(ToolRegistry):
        def __init__(self, real):
            super().__init__()
            for name in real.names():
                self.register(real.get(name))
            self.calls = []

        def longest_timeout(self):
            return 890.0  # more than any slice has left after a step: only a fresh invocation runs a tool

        def execute(self, name, input, ctx, allowed):
            self.calls.append(name)
            return super().execute(name, input, ctx, allowed)

    agent = create_agent(tenant, "slow-tools", "sre")
    text = 'Check.\n/tools [{"name": "calculator", "input": {"expression": "6*7"}}, ' \
           '{"name": "calculator", "input": {"expression": "2+3"}}]'
    tools = SlowTools(get_services().tools)
    before = cloud.runtime.invocations.get("RunStepsFunction", 0)
    with services_with(tools=tools):
        run = wait_for(tenant, launch(tenant, agent["id"], text).json()["id"])
    assert run["status"] == "succeeded", run
    assert tools.calls == ["calculator", "calculator"], "each tool once"
    assert cloud.runtime.invocations.get("RunStepsFunction", 0) - before >= 3, "the act was split over two slices"
    events = events_of(tenant, run["id"])
    assert_dense(events)
    assert [e["type"] for e in events] == ["run.queued", "run.started", "model.called", "tool.called",
                                           "tool.result", "tool.called", "tool.result", "model.called",
                                           "run.succeeded"]


def test_cancel_during_a_step_starts_no_further_tool(cloud, tenant):
    """The cancel lands while the model's answer (asking for two tools) is on its
    way back to the step: no tool starts."""
    from agenthq.services import get_services

    agent = create_agent(tenant, "slow-hands", "sre")
    marker = "marker-slow-hands-" + tenant.workspace_id
    text = f'Check {marker}.\n/tools [{{"name": "calculator", "input": {{"expression": "1+1"}}}}, ' \
           '{"name": "current_time", "input": {}}]'
    model = AnswerHeld(get_services().model, marker, seconds=3.0)
    with services_with(model=model):
        launched = launch(tenant, agent["id"], text).json()
        assert model.held.wait(30), "the model answered"
        cancelled = tenant.post(f"/runs/{launched['id']}/cancel")
        assert cancelled.status_code == 202 and cancelled.json()["cancel_requested"] is True
        run = wait_for(tenant, launched["id"])
    assert run["status"] == "cancelled", run
    events = events_of(tenant, run["id"])
    assert_dense(events)
    assert [e["type"] for e in events] == ["run.queued", "run.started", "model.called", "run.cancelled"]
    assert run["usage"]["tool_calls"] == 0
    prompt = run["usage"]["input_tokens"] + run["usage"]["cache_write_tokens"] + run["usage"]["cache_read_tokens"]
    assert prompt > 0  # the model call before the cancel is settled on the run (its prompt is cached: decision 218)
    assert events[-1]["data"]["usage"]["cost_usd"] == run["usage"]["cost_usd"]


def test_a_cancel_arriving_between_two_tools_stops_the_second(cloud, tenant):
    """The second of two parallel tool calls must not start once the cancel is
    recorded, even within the same act step (the tool.called write is conditional)."""
    agent = create_agent(tenant, "interrupted", "sre")

    def cancel_during_the_first(number, ctx):
        if number == 1:
            with tenant_scope(ctx.workspace_id):
                Run(*Run.key(ctx.workspace_id, ctx.run_id)).update(actions=[Run.cancel_requested.set(True)])

    with tools_replaced_by(cancel_during_the_first) as fake:
        text = 'Check.\n/tools [{"name": "calculator", "input": {"expression": "1+1"}}, ' \
               '{"name": "current_time", "input": {}}]'
        run = wait_for(tenant, launch(tenant, agent["id"], text).json()["id"])
    assert fake.calls == ["calculator"], "the second tool never ran"
    assert run["status"] == "cancelled"
    types = [e["type"] for e in events_of(tenant, run["id"])]
    assert types == ["run.queued", "run.started", "model.called", "tool.called", "tool.result", "run.cancelled"]


def test_a_run_past_its_timeout_ends_timed_out_with_a_reason(cloud, tenant):
    from agenthq.services import get_services

    agent = create_agent(tenant, "dawdler", "sre")
    marker = "marker-dawdler-" + tenant.workspace_id
    model = AnswerHeld(get_services().model, marker, seconds=4.0)  # the answer comes back after the deadline
    with services_with(model=model):
        launched = tenant.api.post(tenant.path(f"/agents/{agent['id']}/runs"), headers=tenant.headers,
                                   json={"input": f"Slowly {marker}.\n/tool current_time {{}}", "timeout_seconds": 3})
        assert launched.status_code == 202, launched.text
        run = wait_for(tenant, launched.json()["id"])
    assert run["status"] == "timed_out", run
    assert run["error"] == {"reason": "run_timeout", "message": "The run did not finish within 3 s."}
    types = [e["type"] for e in events_of(tenant, run["id"])]
    # The tool the late answer asks for does not start. (On a very busy machine the first
    # think may itself come after the deadline: then the run ends before any model call.)
    assert types in (["run.queued", "run.started", "model.called", "run.timed_out"],
                     ["run.queued", "run.started", "run.timed_out"]), types
    too_long = tenant.api.post(tenant.path(f"/agents/{agent['id']}/runs"), headers=tenant.headers,
                               json={"input": "x", "timeout_seconds": 10**9})
    assert too_long.status_code == 400


def test_a_step_that_dies_between_two_tools_finishes_the_second_on_retry(cloud, tenant):
    """The Lambda dies after the first tool's result is recorded and while the
    second runs; Step Functions retries the act step, which must keep the first
    result, run only the second, and answer both."""
    agent = create_agent(tenant, "fragile", "sre")

    def die_at_the_second(number, ctx):
        if number == 2:
            raise SystemError("the container died")  # not a tool error: the whole invocation fails

    with tools_replaced_by(die_at_the_second) as fake:
        text = 'Check.\n/tools [{"name": "calculator", "input": {"expression": "6*7"}}, ' \
               '{"name": "calculator", "input": {"expression": "2+3"}}]'
        run = wait_for(tenant, launch(tenant, agent["id"], text).json()["id"])
    assert run["status"] == "succeeded", run
    assert fake.calls == ["calculator", "calculator", "calculator"]  # first once, second twice (retried)
    assert "calculator: 42" in run["output"] and "calculator: 5" in run["output"]
    events = events_of(tenant, run["id"])
    assert_dense(events)
    assert [e["type"] for e in events].count("tool.called") == 2
    assert [e["type"] for e in events].count("tool.result") == 2
    assert run["usage"]["tool_calls"] == 2


# --------------------------------------------------------------------------- metering under faults


def ledger_entries(workspace_id: str, run_id: str) -> list:
    from agenthq.usage import ledger

    with tenant_scope(workspace_id):
        return list(ledger.entries(workspace_id, run_id))


def test_a_think_step_redelivered_three_times_is_metered_once(cloud, tenant):
    agent = create_agent(tenant, "redelivered", "architect")
    # The step did its work (model call, metering, commit); then "the Lambda died" before answering, 3 times:
    # after the think step, then twice more after the step the redelivered slice resumes at (its end).
    fault = StepFault(steps=("think", "finish"), when="after", times=3,
                      match=lambda e: e.get("workspace_id") == tenant.workspace_id)
    with step_faults(fault):
        launched = launch(tenant, agent["id"], "Summarise the plan.").json()
        run = wait_for(tenant, launched["id"])  # (the run ends with its answer, in the think step's commit)
        deadline = time.monotonic() + 60
        while fault.fired < 3 and time.monotonic() < deadline:  # Step Functions redelivers the slice meanwhile
            time.sleep(0.1)
    assert fault.fired == 3
    assert run["status"] == "succeeded", run
    run = tenant.get(f"/runs/{run['id']}").json()
    entries = ledger_entries(tenant.workspace_id, run["id"])
    model = [e for e in entries if e.entry.startswith("model#")]
    assert len(model) == 1, "one model call, metered once"
    assert run["usage"]["input_tokens"] == int(model[0].input_tokens)
    assert [e["type"] for e in events_of(tenant, run["id"])].count("model.called") == 1


class OversizedOnce:
    """The real model, except its first answer is too large to store: the step's
    commit fails after the model call was answered (and paid)."""

    def __init__(self, real, match: str):
        self.real, self.match, self.done = real, match, False

    def create_message(self, request):
        import dataclasses

        response = self.real.create_message(request)
        if not self.done and self.match in str(request.messages[0]):
            self.done = True
            return dataclasses.replace(response, content=[{"type": "text", "text": "x" * 450_000}],
                                       stop_reason="end_turn")
        return response


def test_a_step_that_fails_after_its_model_call_leaves_that_calls_usage_in_the_ledger_once(cloud, tenant):
    from agenthq.services import get_services

    agent = create_agent(tenant, "oversized", "architect")
    marker = "marker-oversized-" + tenant.workspace_id
    with services_with(model=OversizedOnce(get_services().model, marker)):
        run = wait_for(tenant, launch(tenant, agent["id"], f"Summarise {marker}.").json()["id"])
    assert run["status"] == "succeeded", run  # the retried step called the model again and stored its answer
    model = [e for e in ledger_entries(tenant.workspace_id, run["id"]) if e.entry.startswith("model#")]
    assert len(model) == 2, "both calls were answered and paid: both are metered, each once"
    assert run["usage"]["input_tokens"] == sum(int(e.input_tokens) for e in model)
    assert run["usage"]["cost_usd"] == f"{sum(int(e.cost_micro_usd) for e in model) / 1_000_000:.6f}"
    assert [e["type"] for e in events_of(tenant, run["id"])].count("model.called") == 1, "one answer was kept"


# --------------------------------------------------------------------------- Step Functions refuses to start a run


def slots_pending(workspace_id):
    with tenant_scope(workspace_id):
        slots = RunSlots.get_or_none(*RunSlots.key(workspace_id))
        return int(slots.pending or 0) if slots else 0


def test_a_launch_without_a_key_that_cannot_start_is_503_and_its_run_fails_giving_back_its_slot(cloud, tenant):
    set_tier(tenant.api, tenant.workspace_id, "enterprise", limit_overrides={"concurrent_runs": 1})
    agent = create_agent(tenant, "grounded", "sre")
    unreachable = UnreachableStepFunctions()
    with services_with(orchestrator=unreachable):
        refused = launch(tenant, agent["id"], "Start me.")
    assert_error(refused, 503, "service_unavailable")
    assert len(unreachable.refused) == 1
    (run,) = tenant.get("/runs").json()["items"]
    assert run["status"] == "failed" and run["error"]["reason"] == "start_failed", run
    assert [e["type"] for e in events_of(tenant, run["id"])] == ["run.queued", "run.failed"]
    assert slots_pending(tenant.workspace_id) == 0, "the run that never started holds no place"
    again = wait_for(tenant, launch(tenant, agent["id"], "Start me.").json()["id"])
    assert again["status"] == "succeeded", "the one slot is free"


def test_a_launch_with_a_key_that_cannot_start_is_503_and_the_retry_with_that_key_starts_the_same_run(cloud, tenant):
    agent = create_agent(tenant, "patient", "sre")
    with services_with(orchestrator=UnreachableStepFunctions()):
        refused = launch(tenant, agent["id"], "Start me later.", key="start-later-1")
        assert_error(refused, 503, "service_unavailable")
        assert_error(launch(tenant, agent["id"], "Start me later.", key="start-later-1"), 503,
                     "service_unavailable")  # still down: still the one queued run
    (queued,) = tenant.get("/runs").json()["items"]
    assert queued["status"] == "queued"
    retried = launch(tenant, agent["id"], "Start me later.", key="start-later-1")
    assert retried.status_code == 202 and retried.json()["id"] == queued["id"]
    assert wait_for(tenant, queued["id"])["status"] == "succeeded"
    assert len(tenant.get("/runs").json()["items"]) == 1
