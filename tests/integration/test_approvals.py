"""Tool calls that wait for a person's approval, on the local cloud: the offline model server's
``/tool`` directives call an ``ask`` tool; the run waits on a task token (WaitForApproval) until
``POST …/approvals/{apid}`` decides it (or the approval schedule expires it)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from tests.support import (
    PASSWORD,
    LiveClient,
    Tenant,
    agenthq_cli,
    assert_dense,
    assert_error,
    create_agent,
    events_of,
    launch,
    services_with,
    set_tier,
    signup,
    wait_for,
    with_api_key,
)

pytestmark = pytest.mark.slow

SIX_BY_SEVEN = 'Compute it.\n/tool calculator {"expression": "6 * 7"}'


def asking_agent(tenant: Tenant, name: str = "careful", **extra: Any) -> dict[str, Any]:
    return create_agent(tenant, name, "sre", **{"tools": ["calculator", "current_time"],
                                                "tool_policies": {"calculator": "ask"}, **extra})


def run_waiting_for_approval(api: Any) -> tuple[Tenant, dict[str, Any], dict[str, Any]]:
    """A pro workspace's run of an asking agent, waiting for its one approval: (the tenant, the run, the approval)."""
    tenant = signup(api, tier="pro")
    agent = asking_agent(tenant)
    run = launch(tenant, agent["id"], SIX_BY_SEVEN).json()
    (approval,) = pending_approvals(tenant, run["id"])
    return tenant, run, approval


def pending_approvals(tenant: Tenant, run_id: str, count: int = 1, timeout: float = 60) -> list[dict[str, Any]]:
    """The run's pending approvals, once it waits for ``count`` of them with its task token stored."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        time.sleep(0.4)  # (within the free tier's 5 requests a second)
        listed = tenant.get("/approvals", params={"run_id": run_id, "status": "pending"})
        run = tenant.get(f"/runs/{run_id}")
        if listed.status_code != 200 or run.status_code != 200:
            continue  # throttled: again
        found = listed.json()["items"]
        if len(found) >= count and run.json()["status"] == "waiting" and run.json()["waiting_for"] == "approval":
            return found
    raise AssertionError(f"run {run_id} has {len(found)} pending approvals after {timeout} s")


def decide(tenant: Tenant, approval_id: str, decision: str, reason: str | None = None,
           headers: dict[str, str] | None = None) -> Any:
    body = {"decision": decision, **({"reason": reason} if reason else {})}
    return tenant.api.post(tenant.path(f"/approvals/{approval_id}"), json=body, headers=headers or tenant.headers)


def tool_results(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == "tool.result"]


def test_an_ask_tool_waits_and_runs_once_when_approved(api):
    tenant = signup(api, tier="pro")
    agent = asking_agent(tenant)
    assert agent["tool_policies"] == {"calculator": "ask"}
    run = launch(tenant, agent["id"], SIX_BY_SEVEN).json()

    (approval,) = pending_approvals(tenant, run["id"])
    assert approval["tool"] == "calculator" and approval["input"] == {"expression": "6 * 7"}
    assert approval["run_id"] == approval["root_run_id"] == run["id"]
    assert approval["status"] == "pending" and approval["on_timeout"] == "deny"
    events = events_of(tenant, run["id"])
    requested = [e for e in events if e["type"] == "approval.requested"]
    assert [e["data"]["approval_id"] for e in requested] == [approval["id"]]
    assert {"approval_id", "tool", "input", "run_id", "root_run_id"} <= set(requested[0]["data"])
    assert not [e for e in events if e["type"] == "tool.called"], "nothing runs before the decision"

    decided = decide(tenant, approval["id"], "approve")
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved" and decided.json()["decided_by"] == tenant.user_id
    done = wait_for(tenant, run["id"])
    assert done["status"] == "succeeded", done
    assert "calculator: 42" in done["output"]
    events = events_of(tenant, run["id"])
    assert_dense(events)
    assert tool_results(events) == [{"tool_use_id": approval["tool_use_id"], "name": "calculator",
                                     "content": "42", "is_error": False}], "the tool ran once"
    kinds = [e["type"] for e in events]
    assert kinds.index("approval.requested") < kinds.index("run.waiting") < kinds.index("approval.approved") \
        < kinds.index("run.resumed") < kinds.index("tool.called")
    assert done["usage"]["tool_calls"] == 1
    again = decide(tenant, approval["id"], "deny")
    assert_error(again, 409, "conflict")
    assert tenant.get(f"/approvals/{approval['id']}").json()["status"] == "approved"


def test_a_denied_call_gives_the_model_an_error_with_the_reason_and_the_run_goes_on(api):
    tenant, run, approval = run_waiting_for_approval(api)

    denied = decide(tenant, approval["id"], "deny", reason="Use a spreadsheet instead.")
    assert denied.status_code == 200, denied.text
    assert denied.json()["status"] == "denied" and denied.json()["reason"] == "Use a spreadsheet instead."
    done = wait_for(tenant, run["id"])
    assert done["status"] == "succeeded", done
    (result,) = tool_results(events_of(tenant, run["id"]))
    assert result["is_error"] is True
    assert "Use a spreadsheet instead." in result["content"]
    assert "did not run" in result["content"]
    # the model got it: the offline model quotes the tool results it was given in its answer
    assert "Use a spreadsheet instead." in done["output"]


def test_of_ten_concurrent_decisions_exactly_one_wins(api):
    tenant, run, approval = run_waiting_for_approval(api)
    start = threading.Barrier(10)

    def attempt(index: int) -> int:
        start.wait()
        return decide(tenant, approval["id"], "approve" if index % 2 else "deny", reason=f"decider {index}").status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(attempt, range(10)))
    assert sorted(statuses) == [200] + [409] * 9, statuses
    done = wait_for(tenant, run["id"])
    events = events_of(tenant, run["id"])
    decisions = [e for e in events if e["type"] in ("approval.approved", "approval.denied")]
    assert len(decisions) == 1, "one decision stored"
    assert len(tool_results(events)) == 1
    stored = tenant.get(f"/approvals/{approval['id']}").json()
    assert stored["status"] == decisions[0]["type"].removeprefix("approval.")
    assert done["status"] == "succeeded"
    assert tenant.get("/usage").json()["limits"]["pending_approvals"]["used"] == 0


def test_two_parallel_ask_calls_decided_in_the_opposite_order_each_resume_their_own_call(api):
    tenant = signup(api, tier="pro")
    agent = asking_agent(tenant, tool_policies={"calculator": "ask", "current_time": "ask"})
    calls = [{"name": "calculator", "input": {"expression": "2 + 3"}}, {"name": "current_time", "input": {}}]
    run = launch(tenant, agent["id"], "Both at once.\n/tools " + json.dumps(calls)).json()

    approvals = pending_approvals(tenant, run["id"], count=2)
    by_tool = {a["tool"]: a for a in approvals}
    assert set(by_tool) == {"calculator", "current_time"}
    assert len({a["tool_use_id"] for a in approvals}) == 2

    # the second call decided first (denied), then the first (approved)
    assert decide(tenant, by_tool["current_time"]["id"], "deny", reason="no clocks").status_code == 200
    time.sleep(1.0)
    assert tenant.get(f"/runs/{run['id']}").json()["status"] == "waiting", "a turn resumes once all are decided"
    assert not tool_results(events_of(tenant, run["id"]))
    assert decide(tenant, by_tool["calculator"]["id"], "approve").status_code == 200
    done = wait_for(tenant, run["id"])
    assert done["status"] == "succeeded", done

    results = {r["tool_use_id"]: r for r in tool_results(events_of(tenant, run["id"]))}
    assert results[by_tool["calculator"]["tool_use_id"]]["content"] == "5"
    assert results[by_tool["calculator"]["tool_use_id"]]["is_error"] is False
    assert results[by_tool["current_time"]["tool_use_id"]]["is_error"] is True
    assert "no clocks" in results[by_tool["current_time"]["tool_use_id"]]["content"]
    assert len(results) == 2


def test_cancel_during_the_wait_ends_the_run_and_cancels_the_approval(api):
    tenant, run, approval = run_waiting_for_approval(api)

    cancelled = tenant.post(f"/runs/{run['id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    done = wait_for(tenant, run["id"])
    assert done["status"] == "cancelled", done
    stored = tenant.get(f"/approvals/{approval['id']}").json()
    assert stored["status"] == "cancelled" and stored["applied"] == "deny"
    events = events_of(tenant, run["id"])
    assert_dense(events)
    kinds = [e["type"] for e in events]
    assert kinds[-2:] == ["approval.cancelled", "run.cancelled"]
    assert not tool_results(events)
    assert_error(decide(tenant, approval["id"], "approve"), 409, "conflict")
    assert tenant.get("/usage").json()["limits"]["pending_approvals"]["used"] == 0


@dataclass
class MovableClock:
    """The real time (seconds since the epoch, as ``Services.clock``) plus an offset a test moves forward."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> float:
        return time.time() + self.offset.total_seconds()


@contextmanager
def moved_clock() -> Iterator[MovableClock]:
    """Meanwhile the local cloud's functions run in this process, on a clock the test moves."""
    from agenthq.services import get_services

    clock = MovableClock()
    with services_with():
        get_services().clock = clock
        yield clock


def test_a_run_waiting_30_s_counts_only_its_work_and_invokes_no_lambda_meanwhile(cloud, api):
    tenant = signup(api, tier="pro")
    agent = asking_agent(tenant)
    with moved_clock() as clock:
        run = launch(tenant, agent["id"], SIX_BY_SEVEN).json()
        (approval,) = pending_approvals(tenant, run["id"])
        before = dict(cloud.runtime.invocations)
        clock.offset += timedelta(seconds=30)  # the run waits 30 s (the clock is moved: no test sleeps 30 s)
        time.sleep(2.0)  # and some real time passes too
        during = dict(cloud.runtime.invocations)
        assert during.get("RunStepsFunction", 0) == before.get("RunStepsFunction", 0), \
            "no run step is invoked while the run waits"
        assert decide(tenant, approval["id"], "approve").status_code == 200
        done = wait_for(tenant, run["id"])
    assert done["status"] == "succeeded", done
    assert done["usage"]["agent_seconds"] < 30, done["usage"]
    resumed = [e for e in events_of(tenant, run["id"]) if e["type"] == "run.resumed"]
    assert resumed and resumed[0]["data"]["waited_seconds"] >= 30
    assert cloud.runtime.invocations["RunStepsFunction"] > during.get("RunStepsFunction", 0)


@pytest.mark.parametrize("on_timeout", ["deny", "approve"])
def test_expiry_applies_on_approval_timeout_once(cloud, api, on_timeout):
    tenant = signup(api, tier="pro")
    agent = asking_agent(tenant, approval_timeout_seconds=60, on_approval_timeout=on_timeout)
    run = launch(tenant, agent["id"], SIX_BY_SEVEN).json()
    (approval,) = pending_approvals(tenant, run["id"])
    # in its own worker, with its role's IAM: nothing is due yet
    (nothing,) = cloud.schedules.fire("PeriodResetFunction", "ApprovalExpiry")
    assert {k: nothing[k] for k in ("expired", "already_decided")} == {"expired": 0, "already_decided": 0}
    with moved_clock() as clock:
        clock.offset += timedelta(seconds=61)
        fired = [cloud.schedules.fire("PeriodResetFunction", "ApprovalExpiry") for _ in range(3)]
        done = wait_for(tenant, run["id"])
    # (the local cloud's own one-minute timer may have come first: then these found it decided)
    assert sum(f[0]["expired"] for f in fired) <= 1, fired
    assert done["status"] == "succeeded", done
    stored = tenant.get(f"/approvals/{approval['id']}").json()
    assert stored["status"] == "expired" and stored["applied"] == on_timeout and stored["decided_by"] is None
    events = events_of(tenant, run["id"])
    assert [e["data"]["applied"] for e in events if e["type"] == "approval.expired"] == [on_timeout]
    (result,) = tool_results(events)
    if on_timeout == "approve":
        assert result == {"tool_use_id": approval["tool_use_id"], "name": "calculator", "content": "42",
                          "is_error": False}
    else:
        assert result["is_error"] is True and "expired" in result["content"]
    assert_error(decide(tenant, approval["id"], "approve"), 409, "conflict")


def test_a_delegated_childs_approvals_are_listed_with_the_root_run(api):
    tenant = signup(api, tier="pro")
    create_agent(tenant, "lead", "coordinator")
    lead = tenant.get("/agents").json()["items"][0]
    asking_agent(tenant, name="helper")
    task = "Delegate.\n/tool delegate " + json.dumps({"agent": "helper", "input": SIX_BY_SEVEN})
    root = launch(tenant, lead["id"], task).json()
    deadline = time.monotonic() + 60
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not found:
        found = tenant.get("/approvals", params={"run_id": root["id"]}).json()["items"]
        time.sleep(0.2)
    (approval,) = found
    assert approval["root_run_id"] == root["id"] and approval["run_id"] != root["id"]
    child = tenant.get(f"/runs/{approval['run_id']}").json()
    assert child["parent_run_id"] == root["id"]
    pending_approvals(tenant, approval["run_id"])
    assert decide(tenant, approval["id"], "approve").status_code == 200
    done = wait_for(tenant, root["id"])
    assert done["status"] == "succeeded", done
    assert "42" in done["output"]


def test_viewers_read_approvals_members_decide_and_keys_need_runs_write(api):
    tenant, run, approval = run_waiting_for_approval(api)
    reader = with_api_key(tenant, scopes=("runs:read",))
    listed = tenant.api.get(tenant.path("/approvals"), headers=reader.key_headers)
    assert listed.status_code == 200 and [a["id"] for a in listed.json()["items"]] == [approval["id"]]
    assert_error(decide(tenant, approval["id"], "approve", headers=reader.key_headers), 403)
    writer = with_api_key(tenant, scopes=("runs:read", "runs:write"))
    assert decide(tenant, approval["id"], "approve", headers=writer.key_headers).status_code == 200
    assert wait_for(tenant, run["id"])["status"] == "succeeded"


def test_bad_policies_and_decisions_are_refused_with_the_error_body(api):
    tenant = signup(api, tier="pro")
    for bad in ({"tool_policies": {"calculator": "maybe"}},
                {"tools": ["calculator"], "tool_policies": {"notes_write": "ask"}},
                {"approval_timeout_seconds": 7 * 24 * 3600 + 1},
                {"approval_timeout_seconds": 0},
                {"on_approval_timeout": "retry"}):
        response = tenant.post("/agents", json={"name": "bad", "personality": "sre", **bad})
        assert_error(response, 400, "invalid_request")
    agent = asking_agent(tenant)
    # a PATCH may not leave a policy for a tool the agent no longer has
    assert_error(tenant.api.patch(tenant.path(f"/agents/{agent['id']}"), json={"tools": ["current_time"]},
                                  headers=tenant.headers), 400, "invalid_request")
    changed = tenant.api.patch(tenant.path(f"/agents/{agent['id']}"),
                               json={"tool_policies": {"calculator": "deny"}, "on_approval_timeout": "approve"},
                               headers=tenant.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["tool_policies"] == {"calculator": "deny"}
    assert changed.json()["on_approval_timeout"] == "approve"
    assert changed.json()["approval_timeout_seconds"] == 3600
    assert tenant.get("/agents").json()["items"][0]["tool_policies"] == {"calculator": "deny"}
    assert_error(tenant.get("/approvals", params={"status": "maybe"}), 400)
    assert_error(decide(tenant, "01JAAAAAAAAAAAAAAAAAAAAAAA", "approve"), 404, "not_found")
    bad_body = tenant.post("/approvals/01JAAAAAAAAAAAAAAAAAAAAAAA", json={"decision": "perhaps"})
    assert_error(bad_body, 400, "invalid_request")


def test_a_denied_tool_never_runs_and_the_run_goes_on(api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "strict", "sre", tools=["calculator"], tool_policies={"calculator": "deny"})
    done = wait_for(tenant, launch(tenant, agent["id"], SIX_BY_SEVEN).json()["id"])
    assert done["status"] == "succeeded", done
    (result,) = tool_results(events_of(tenant, done["id"]))
    assert result["is_error"] is True and "denied by this agent's tool policy" in result["content"]
    assert tenant.get("/approvals").json()["items"] == []


def test_ask_calls_past_the_pending_approvals_limit_are_refused_and_the_run_goes_on(api):
    tenant = signup(api, tier="pro")
    set_tier(api, tenant.workspace_id, "enterprise", limit_overrides={"pending_approvals": 1})
    agent = asking_agent(tenant)
    first = launch(tenant, agent["id"], SIX_BY_SEVEN).json()
    (approval,) = pending_approvals(tenant, first["id"])
    limit = tenant.get("/usage").json()["limits"]["pending_approvals"]
    assert (limit["used"], limit["limit"]) == (1, 1)

    second = wait_for(tenant, launch(tenant, agent["id"], SIX_BY_SEVEN).json()["id"])
    assert second["status"] == "succeeded", second
    (result,) = tool_results(events_of(tenant, second["id"]))
    assert result["is_error"] is True and "as many approvals pending as its plan allows" in result["content"]
    assert [a["id"] for a in tenant.get("/approvals").json()["items"]] == [approval["id"]]

    assert decide(tenant, approval["id"], "approve").status_code == 200
    assert wait_for(tenant, first["id"])["status"] == "succeeded"
    assert tenant.get("/usage").json()["limits"]["pending_approvals"]["used"] == 0


def test_approval_requests_and_decisions_reach_the_workspace_and_run_subscribers_live(api, cloud):
    tenant = signup(api, tier="pro")
    agent = asking_agent(tenant)
    workspace_watcher, run_watcher = LiveClient(cloud.ws_url, tenant.headers), LiveClient(cloud.ws_url, tenant.headers)
    try:
        workspace_watcher.send({"action": "subscribe", "workspace": True})
        assert workspace_watcher.next(type_="subscribed") == {"type": "subscribed", "workspace": True}
        run = launch(tenant, agent["id"], SIX_BY_SEVEN).json()
        run_watcher.send({"action": "subscribe", "run_id": run["id"], "after": 0})

        def next_event(client: LiveClient, kind: str) -> dict[str, Any]:
            while True:
                frame = client.next(timeout=60, type_="run.event")
                if frame["event"]["type"] == kind:
                    return frame

        requested = next_event(workspace_watcher, "approval.requested")
        assert requested["run_id"] == run["id"]
        approval_id = requested["event"]["data"]["approval_id"]
        assert requested["event"]["data"]["tool"] == "calculator"
        assert next_event(run_watcher, "approval.requested")["event"]["data"]["approval_id"] == approval_id
        pending_approvals(tenant, run["id"])
        assert decide(tenant, approval_id, "approve").status_code == 200
        approved = next_event(workspace_watcher, "approval.approved")
        assert approved["event"]["data"]["approval_id"] == approval_id
        assert approved["event"]["data"]["by"] == tenant.user_id
        assert next_event(run_watcher, "approval.approved")["event"]["data"]["approval_id"] == approval_id
        assert next_event(workspace_watcher, "run.succeeded")["run_id"] == run["id"]
    finally:
        workspace_watcher.close()
        run_watcher.close()


def test_the_cli_lists_approves_and_denies(api, cloud, tmp_path):
    tenant = signup(api, tier="pro")
    agent = asking_agent(tenant, tool_policies={"calculator": "ask", "current_time": "ask"})
    agenthq = agenthq_cli(cloud, tmp_path)

    assert agenthq("login", "--email", tenant.email, "--password", PASSWORD).returncode == 0
    calls = [{"name": "calculator", "input": {"expression": "2 + 3"}}, {"name": "current_time", "input": {}}]
    run = launch(tenant, agent["id"], "Both.\n/tools " + json.dumps(calls)).json()
    pending_approvals(tenant, run["id"], count=2)
    listed = agenthq("approvals", "list", "--run", run["id"], "--json")
    assert listed.returncode == 0, listed.stderr
    by_tool = {a["tool"]: a for a in json.loads(listed.stdout)}
    assert set(by_tool) == {"calculator", "current_time"}
    shown = agenthq("approvals", "list")
    assert by_tool["calculator"]["id"] in shown.stdout and "pending" in shown.stdout

    denied = agenthq("approvals", "deny", by_tool["current_time"]["id"], "--reason", "not now")
    assert denied.returncode == 0, denied.stderr
    assert "denied" in denied.stdout
    approved = agenthq("approvals", "approve", by_tool["calculator"]["id"])
    assert approved.returncode == 0 and "approved" in approved.stdout, approved.stderr
    again = agenthq("approvals", "approve", by_tool["calculator"]["id"])
    assert again.returncode != 0 and "409" in again.stderr, (again.stdout, again.stderr)

    assert wait_for(tenant, run["id"])["status"] == "succeeded"
    results = {r["tool_use_id"]: r for r in tool_results(events_of(tenant, run["id"]))}
    assert results[by_tool["calculator"]["tool_use_id"]]["content"] == "5"
    assert "not now" in results[by_tool["current_time"]["tool_use_id"]]["content"]
    assert agenthq("approvals", "list").stdout.strip() == "No pending approvals."


def test_tool_policies_are_part_of_every_agent_version(api):
    tenant = signup(api, tier="pro")
    agent = asking_agent(tenant)
    assert agent["version"] == 1
    changed = tenant.api.patch(tenant.path(f"/agents/{agent['id']}"), headers=tenant.headers,
                               json={"tool_policies": {}, "approval_timeout_seconds": 600})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["version"], changed.json()["tool_policies"]) == (2, {})
    rolled = tenant.post(f"/agents/{agent['id']}/rollback", json={"version": 1})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["tool_policies"] == {"calculator": "ask"}
    assert rolled.json()["approval_timeout_seconds"] == 3600
    # and a run of the restored version asks again
    run = launch(tenant, agent["id"], SIX_BY_SEVEN).json()
    (approval,) = pending_approvals(tenant, run["id"])
    assert decide(tenant, approval["id"], "approve").status_code == 200
    assert wait_for(tenant, run["id"])["status"] == "succeeded"


def test_a_run_waiting_for_approval_keeps_its_slot(api):
    tenant = signup(api)  # the free tier: one run at a time
    agent = asking_agent(tenant)
    waiting = launch(tenant, agent["id"], SIX_BY_SEVEN).json()
    (approval,) = pending_approvals(tenant, waiting["id"])
    queued = launch(tenant, agent["id"], "Hello.").json()
    time.sleep(1.0)
    assert tenant.get(f"/runs/{queued['id']}").json()["status"] == "queued", "the waiting run holds the slot"
    assert tenant.get("/usage").json()["limits"]["concurrent_runs"]["used"] == 1
    assert decide(tenant, approval["id"], "approve").status_code == 200
    assert wait_for(tenant, waiting["id"])["status"] == "succeeded"
    assert wait_for(tenant, queued["id"])["status"] == "succeeded", "the slot went on to the queued run"
