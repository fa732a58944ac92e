"""Offboarding on the local cloud: DELETE /workspaces/{wid} starts a job (the
offboarding state machine) that revokes access, cancels the runs still going,
deletes every item of the workspace and finishes; the operator watches it; a
job that failed midway is finished by repeating the DELETE."""

from __future__ import annotations

import json

from local.lambda_runtime import InvocationFault
from tests.support import (
    PASSWORD,
    StepFault,
    assert_error,
    bearer,
    create_agent,
    launch,
    set_tier,
    signup,
    step_faults,
    until,
    wait_for,
    wait_for_offboarding,
    with_api_key,
    workspace_leftovers,
)


def _admin(api, workspace_id: str) -> dict:
    response = api.get(f"/admin/workspaces/{workspace_id}", auth=api.operator)
    assert response.status_code == 200, response.text
    return response.json()


def _busy_workspace(api):
    """A workspace with members, an API key, agents (one changed: two versions), finished runs with events
    (one a session's turn, with its transcript), usage, alerts, a note and a message between agents, a run
    waiting for a person's approval, its own usage plan, a schedule (in EventBridge Scheduler too), and a
    webhook whose deliveries fail (queued for their next attempt), and a session turn's hand-on left behind."""
    owner = with_api_key(signup(api, tag="leaving", tier="pro"))
    plan = set_tier(api, owner.workspace_id, "enterprise", limit_overrides={"runs_per_day": 4, "api_rps": 500})
    hook = owner.post("/webhooks", json={"url": "http://127.0.0.1:9/nobody-listens", "events": ["run.succeeded"]})
    assert hook.status_code == 201, hook.text
    colleague = signup(api, tag="colleague")
    assert owner.post("/members", json={"email": colleague.email, "role": "admin"}).status_code == 201
    writer = create_agent(owner, "writer", "architect")
    reader = create_agent(owner, "reader", "sre")
    changed = api.patch(owner.path(f"/agents/{reader['id']}"), headers=owner.headers, json={"max_steps": 5})
    assert changed.status_code == 200 and changed.json()["version"] == 2  # versions 1 and 2 are stored
    text = ('Keep a note and tell the reader.\n/tools [{"name": "notes_write", "input": {"name": "plan", '
            '"content": "ship it"}}, {"name": "send_message", "input": {"to_agent": "reader", "body": "hello"}}]')
    first = wait_for(owner, launch(owner, writer["id"], text).json()["id"])
    session = owner.post(f"/agents/{reader['id']}/sessions", json={"title": "Inbox"}).json()  # a session's turn
    second = wait_for(owner, owner.post(f"/sessions/{session['id']}/messages",
                                        json={"input": "Read your messages."}).json()["id"])
    assert (first["status"], second["status"]) == ("succeeded", "succeeded"), (first, second)
    schedule = owner.post(f"/agents/{reader['id']}/schedules",
                          json={"cron": "0 6 * * *", "timezone": "Europe/Berlin", "input": "Morning."})
    assert schedule.status_code == 201, schedule.text
    until(lambda: [d for d in owner.get(f"/webhooks/{hook.json()['id']}/deliveries").json()["items"]
                    if d["attempts"] and d["status"] == "pending"], "a delivery queued for its next attempt")
    careful = create_agent(owner, "careful", "sre", tools=["calculator"], tool_policies={"calculator": "ask"})
    asking = launch(owner, careful["id"], '/tool calculator {"expression": "1 + 1"}').json()
    until(lambda: owner.get("/approvals", params={"run_id": asking["id"], "status": "pending"}).json()["items"],
           "the approval its run waits for")
    server = owner.post("/mcp-servers", json={"name": "tickets", "url": "http://127.0.0.1:9/mcp",
                                              "headers": {"Authorization": "Bearer leaving-secret"}})
    assert server.status_code == 201, server.text  # unreachable: stored, with a failed status and its secret
    _hand_on_left_behind(owner.workspace_id, session["id"], second["id"])
    return owner, colleague, reader, plan["usage_plan"]["id"]


def _hand_on_left_behind(workspace_id: str, session_id: str, run_id: str) -> None:
    """The mark a session turn's end leaves when its ending process dies before the hand-on (decision 310)."""
    from datetime import UTC, datetime

    from agenthq.store import tenant_scope
    from agenthq.store.items import SessionHandOn

    at = datetime.now(UTC)
    with tenant_scope(workspace_id):
        SessionHandOn(*SessionHandOn.key(workspace_id, session_id, run_id), workspace_id=workspace_id,
                      session_id=session_id, run_id=run_id, ended_at=at, gsi1pk=SessionHandOn.shard_of(run_id),
                      gsi1sk=SessionHandOn.due_key(workspace_id, session_id, run_id, at)).save()


def _in_scheduler(cloud, workspace_id: str) -> list[str]:
    """The workspace's schedules in (moto's) EventBridge Scheduler, by name."""
    scheduler = cloud.client("scheduler")
    return [s["Name"] for s in scheduler.list_schedules(GroupName=cloud.scheduler.groups[0])["Schedules"]
            if s["Name"].startswith(workspace_id)]


def _mcp_secrets(cloud, workspace_id: str) -> list[str]:
    listed = cloud.client("secretsmanager").list_secrets(Filters=[{"Key": "name", "Values": ["agenthq/mcp/"]}])
    return [s["Name"] for s in listed["SecretList"] if f"/{workspace_id}/" in s["Name"]]


def test_offboarding_a_busy_workspace_leaves_nothing_of_it(api, cloud):
    owner, colleague, reader, plan_id = _busy_workspace(api)
    assert _admin(api, owner.workspace_id)["usage_plan"] == {"own": True, "id": plan_id}
    # One run in flight: its model calls are held, so it is running when the DELETE comes.
    hold_run = StepFault(steps=("think",), when="none", delay_seconds=1.0, times=1000,
                         match=lambda e: e.get("workspace_id") == owner.workspace_id)
    # The job's first step waits a moment, so the owner is seen refused before access is revoked.
    hold_job = InvocationFault(function="OffboardingFunction", when="none", delay_seconds=2.0,
                               match=lambda e: e.get("step") == "revoke" and e.get("workspace_id") == owner.workspace_id)
    cloud.runtime.faults.append(hold_job)
    try:
        with step_faults(hold_run):
            running = launch(owner, reader["id"], "Work slowly.").json()
            until(lambda: hold_run.fired, "the run's first model call")

            kinds = {item.get("type") for item in workspace_leftovers(cloud, owner.workspace_id)}
            assert len(_in_scheduler(cloud, owner.workspace_id)) == 1
            assert kinds >= {"Workspace", "Member", "WorkspaceSession", "SessionFamily", "ApiKey", "ApiKeyLookup",
                             "Agent", "Run", "RunEvent", "ConversationMessage", "LedgerEntry", "UsageCounter", "Alert",
                             "Note", "AgentMessage", "WorkspaceDirectoryEntry", "AgentVersion", "Schedule", "Approval",
                             "AgentSession", "SessionTurn", "TranscriptEntry", "Webhook", "WebhookDelivery",
                             "McpServer", "McpServerName", "SessionHandOn",
                             None}, kinds  # None: quota and run-slot counters, which only updates write
            assert len(_mcp_secrets(cloud, owner.workspace_id)) == 1
            started = api.delete(owner.path(), headers=owner.headers)
            assert started.status_code == 202, started.text
            body = started.json()
            assert body["id"] == owner.workspace_id and body["status"] == "offboarding"
            assert body["offboarding"]["status"] == "running" and body["offboarding"]["finished_at"] is None
            # to its people the workspace is gone at once; the DELETE again changes nothing
            assert_error(owner.get(), 404)
            again = api.delete(owner.path(), headers=owner.headers)
            assert again.status_code == 202 and again.json()["offboarding"]["attempt"] == 1
            # the operator sees the job
            watched = _admin(api, owner.workspace_id)
            assert watched["status"] == "offboarding" and watched["offboarding"]["status"] == "running"

            job = wait_for_offboarding(api, owner.workspace_id)
    finally:
        cloud.runtime.faults.remove(hold_job)

    assert job["status"] == "finished" and job["attempt"] == 1
    assert job["items_deleted"] > 30 and job["finished_at"] >= job["started_at"]
    assert workspace_leftovers(cloud, owner.workspace_id) == []
    assert _in_scheduler(cloud, owner.workspace_id) == []  # its schedules left EventBridge Scheduler too
    assert _mcp_secrets(cloud, owner.workspace_id) == [], "its MCP servers' header secrets are deleted"
    # the run in flight was cancelled and its execution has ended
    execution = cloud.client("stepfunctions").describe_execution(
        executionArn=f"arn:aws:states:us-east-1:123456789012:execution:agenthq-agent-run:{running['id']}")
    assert execution["status"] != "RUNNING"
    # access is gone everywhere; the gateway key and the workspace's own plan too
    assert_error(owner.get(), 401)
    assert_error(api.get(owner.path(), headers=owner.key_headers), 401)
    assert_error(api.post("/auth/refresh", json={"refresh_token": owner.refresh_token}), 401)
    apigw = cloud.client("apigateway")
    assert plan_id not in {p["id"] for p in apigw.get_usage_plans()["items"]}
    assert not [k for k in apigw.get_api_keys()["items"] if owner.workspace_id in k.get("name", "")]
    # the people remain, with their other workspaces
    me = api.post("/auth/login", json={"email": colleague.email, "password": PASSWORD})
    assert me.status_code == 200 and me.json()["workspace_id"] == colleague.workspace_id
    # gone for good: the DELETE is a 404 now (owner and operator), the operator's GET tells what happened
    assert_error(api.delete(owner.path(), headers=bearer(me.json()["access_token"])), 404)
    assert_error(api.delete(f"/admin/workspaces/{owner.workspace_id}", auth=api.operator), 404)
    assert _admin(api, owner.workspace_id) == {"id": owner.workspace_id, "status": "offboarded", "offboarding": job}


def test_an_offboarding_interrupted_midway_finishes_when_the_delete_is_repeated(api, cloud):
    owner = with_api_key(signup(api, tag="interrupted", tier="pro"))
    agent = create_agent(owner, "worker", "sre")
    assert wait_for(owner, launch(owner, agent["id"], "Do a thing.").json()["id"])["status"] == "succeeded"

    def deleting(e):
        return e.get("step") == "delete" and e.get("workspace_id") == owner.workspace_id

    # The first slice of deleting does its work and then crashes; every retry crashes before starting.
    crashes = [InvocationFault(function="OffboardingFunction", when="after", match=deleting),
               InvocationFault(function="OffboardingFunction", when="before", times=3, match=deleting)]
    cloud.runtime.faults += crashes
    try:
        assert api.delete(owner.path(), headers=owner.headers).status_code == 202
        failed = until(lambda: (w := _admin(api, owner.workspace_id))["offboarding"]["status"] == "failed" and w,
                        "the job's failure", timeout=90)
    finally:
        for fault in crashes:
            cloud.runtime.faults.remove(fault)
    assert failed["status"] == "offboarding" and failed["offboarding"]["error"] == "InjectedFault"
    assert failed["offboarding"]["items_deleted"] > 0  # access was revoked, and some was deleted
    assert_error(owner.get(), 401)  # so the owner cannot repeat it: the operator does

    repeated = api.delete(f"/admin/workspaces/{owner.workspace_id}", auth=api.operator)
    assert repeated.status_code == 202, repeated.text
    assert repeated.json()["offboarding"] | {"status": "running", "attempt": 2} == repeated.json()["offboarding"]
    job = wait_for_offboarding(api, owner.workspace_id)
    assert job["attempt"] == 2 and job["started_at"] == failed["offboarding"]["started_at"]
    assert workspace_leftovers(cloud, owner.workspace_id) == []
    history = cloud.client("stepfunctions").describe_execution(
        executionArn=f"arn:aws:states:us-east-1:123456789012:execution:agenthq-offboarding:"
                     f"offboarding-{owner.workspace_id}-1")
    assert history["status"] == "FAILED"
    assert json.loads(history["input"]) == {"workspace_id": owner.workspace_id, "started_at": job["started_at"]}
