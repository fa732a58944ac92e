"""Agent runs end to end on the local cloud: HTTP → Step Functions (moto's ASL
interpreter running statemachines/agent_run.asl.json) → run_steps → the
anthropic SDK → the offline model server, and back."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.support import (
    assert_dense,
    assert_error,
    create_agent,
    events_of,
    launch,
    signup,
    wait_for,
    with_api_key,
)

pytestmark = pytest.mark.slow


def test_coordinator_delegates_to_an_sre_who_uses_a_tool_and_sends_a_message(api):
    tenant = signup(api, tier="pro")
    coordinator = create_agent(tenant, "coordinator", "coordinator")
    sre = create_agent(tenant, "sre-bot", "sre")
    child_task = "\n".join([
        "Work out the monthly error budget of a 99.9% SLO in minutes.",
        '/tool calculator {"expression": "(1 - 0.999) * 30 * 24 * 60"}',
        '/tool send_message {"to_agent": "coordinator", "body": "Error budget: 43.2 minutes a month."}',
    ])
    task = "Prepare the incident review.\n/tool delegate " + json.dumps({"agent": "sre-bot", "input": child_task})

    launched = launch(tenant, coordinator["id"], task, key="review-1")
    assert launched.status_code == 202, launched.text
    assert launched.json()["status"] == "queued"
    parent = wait_for(tenant, launched.json()["id"])
    assert parent["status"] == "succeeded", parent

    children = tenant.get("/runs", params={"agent_id": sre["id"]}).json()["items"]
    assert len(children) == 1
    child = children[0]
    assert child["status"] == "succeeded" and child["parent_run_id"] == parent["id"]
    assert "calculator: 43.2" in child["output"]
    assert child["output"] in parent["output"], "the parent's answer carries the child's"

    # the message the SRE sent is stored and visible
    inbox = tenant.get("/messages", params={"agent_id": coordinator["id"]}).json()["items"]
    assert [m["body"] for m in inbox] == ["Error budget: 43.2 minutes a month."]

    # every event stored, dense seq from 1, in lifecycle order
    parent_events, child_events = events_of(tenant, parent["id"]), events_of(tenant, child["id"])
    assert_dense(parent_events)
    assert_dense(child_events)
    assert [e["type"] for e in parent_events] == [
        "run.queued", "run.started", "model.called", "tool.called", "run.waiting", "tool.result",
        "model.called", "run.succeeded"]
    assert [e["type"] for e in child_events] == [
        "run.queued", "run.started", "model.called", "tool.called", "tool.result", "model.called",
        "tool.called", "tool.result", "model.called", "run.succeeded"]

    # usage is on each run, and adds up from its model.called events
    for run, events in ((parent, parent_events), (child, child_events)):
        calls = [e for e in events if e["type"] == "model.called"]
        for kind in ("input_tokens", "cache_write_tokens", "cache_read_tokens"):
            assert run["usage"][kind] == sum(e["data"]["usage"][kind] for e in calls)
        assert sum(run["usage"][kind] for kind in ("input_tokens", "cache_write_tokens", "cache_read_tokens")) > 0
        assert run["usage"]["output_tokens"] == sum(e["data"]["usage"]["output_tokens"] for e in calls) > 0
        assert Decimal(run["usage"]["cost_usd"]) == sum(Decimal(e["data"]["cost_usd"]) for e in calls) > 0
        assert run["steps"] == len(calls)
    assert parent["usage"]["tool_calls"] == 1 and child["usage"]["tool_calls"] == 2


def test_launch_is_idempotent_per_key(api, cloud):
    tenant = with_api_key(signup(api, tier="pro"))
    agent = create_agent(tenant, "helper", "architect")
    first = launch(tenant, agent["id"], "Review the design.", key="launch-42", headers=tenant.key_headers)
    again = launch(tenant, agent["id"], "Review the design.", key="launch-42", headers=tenant.key_headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert_error(launch(tenant, agent["id"], "Something else.", key="launch-42"), 409, "conflict")
    wait_for(tenant, first.json()["id"])
    runs = tenant.get("/runs", params={"agent_id": agent["id"]}).json()["items"]
    assert [r["id"] for r in runs] == [first.json()["id"]]
    executions = cloud.client("stepfunctions").list_executions(
        stateMachineArn=cloud.environment["STATE_MACHINE_ARN"])["executions"]
    assert [e["name"] for e in executions].count(first.json()["id"]) == 1


def test_bad_launches_get_documented_errors_and_change_nothing(api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "checker", "data_engineer")
    assert_error(launch(tenant, "01NOSUCHAGENT0000000000000", "hello"), 404, "not_found")
    assert_error(launch(tenant, agent["id"], "hello", key="has spaces"), 400, "invalid_request")
    assert_error(launch(tenant, agent["id"], "hello", key="x" * 200), 400, "invalid_request")
    assert_error(launch(tenant, agent["id"], "   "), 400, "invalid_request")
    oversize = tenant.api.post(tenant.path(f"/agents/{agent['id']}/runs"), headers=tenant.headers,
                               json={"input": "x" * 100_001})
    assert_error(oversize, 400, "invalid_request")
    too_large = tenant.api.post(tenant.path(f"/agents/{agent['id']}/runs"), headers=tenant.headers,
                                json={"input": "x" * 300_000})
    assert_error(too_large, 413, "payload_too_large")
    malformed = tenant.api.post(tenant.path(f"/agents/{agent['id']}/runs"),
                                headers={**tenant.headers, "Content-Type": "application/json"},
                                content=b'{"input": ')
    assert_error(malformed, 400, "invalid_request")
    assert_error(tenant.get("/runs", params={"status": "sleeping"}), 400, "invalid_request")
    assert tenant.get("/runs").json()["items"] == []


def test_an_unknown_tool_is_an_error_result_the_model_sees(api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "frontend", "frontend_developer")  # no calculator
    run = launch(tenant, agent["id"], 'Add it up.\n/tool calculator {"expression": "1+1"}').json()
    # the offline model only calls tools it is offered, so the tool is never called
    finished = wait_for(tenant, run["id"])
    assert finished["status"] == "succeeded" and finished["usage"]["tool_calls"] == 0


def test_a_run_that_reaches_its_step_limit_fails_with_a_reason(api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "looper", "sre", max_steps=2)
    text = "\n".join(["Loop."] + ['/tool current_time {}'] * 4)
    finished = wait_for(tenant, launch(tenant, agent["id"], text).json()["id"])
    assert finished["status"] == "failed"
    assert finished["error"]["reason"] == "max_steps" and finished["steps"] == 2


def test_cancel_a_finished_run_is_a_conflict(api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "quick", "architect")
    run = wait_for(tenant, launch(tenant, agent["id"], "Say hi.").json()["id"])
    assert run["status"] == "succeeded" and run["output"] == "Offline answer: Say hi."
    assert_error(tenant.post(f"/runs/{run['id']}/cancel"), 409, "conflict")
    assert_error(tenant.post(f"/runs/{run['id']}/resume"), 409, "conflict")
    assert_error(tenant.get("/runs/01NOSUCHRUN000000000000000"), 404, "not_found")


def test_a_long_input_is_whole_on_the_run_and_previewed_in_lists(api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "reader", "data_engineer")
    text = "Read this: " + "é" * 5000  # multi-byte, well over the preview
    run = launch(tenant, agent["id"], text).json()
    assert run["input"] == text and run["input_truncated"] is False
    assert tenant.get(f"/runs/{run['id']}").json()["input"] == text
    (listed,) = tenant.get("/runs").json()["items"]
    assert listed["input"] == text[:500] and listed["input_truncated"] is True
    assert wait_for(tenant, run["id"])["status"] == "succeeded"


@pytest.mark.parametrize("stop, status, extra", [
    ("refusal", "failed", {"reason": "refusal"}),
    ("max_tokens", "succeeded", {"truncated": True}),
    ("pause_turn", "succeeded", {"steps": 2}),
])
def test_stop_reasons(api, stop, status, extra):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, f"stopper-{stop}", "architect")
    run = wait_for(tenant, launch(tenant, agent["id"], f"Explain.\n/stop {stop}").json()["id"])
    assert run["status"] == status, run
    events = events_of(tenant, run["id"])
    assert events[2]["data"]["stop_reason"] == stop
    end = events[-1]
    assert end["type"] == f"run.{status}"
    if "reason" in extra:
        assert run["error"]["reason"] == extra["reason"]
    if "truncated" in extra:
        assert end["data"]["truncated"] is True and run["output"].startswith("Offline max_tokens")
    if "steps" in extra:  # a paused turn is sent back and the model carries on
        assert run["steps"] == extra["steps"] and run["output"] == "Offline answer: Explain."
