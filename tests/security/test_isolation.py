"""Tenant isolation matrix, generated from the route table in template.yaml.

For every workspace route, a caller of workspace A (by JWT and by API key)
aims at workspace B — B's workspace id and B's resource ids — and must get
404 (or 403) with the documented error body, while B's data stays exactly as
it was. A new route joins the matrix automatically; it needs an entry in
SAMPLE_BODIES (if it takes a body) and its path parameters in ``b_ids``.
"""

from __future__ import annotations

import re

import boto3
import pytest

from local.template import load_template, rest_api
from tests.support import assert_error, signup, with_api_key

ROUTES = [r for r in rest_api(load_template()).routes if "{wid}" in r.path]

# A valid body for every route that takes one: a missing check must not hide behind a 400.
SAMPLE_BODIES: dict[tuple[str, str], dict] = {
    ("PATCH", "/workspaces/{wid}"): {"name": "Taken over"},
    ("PATCH", "/admin/workspaces/{wid}"): {"tier": "enterprise", "limit_overrides": {"api_rps": 10000}},
    ("POST", "/workspaces/{wid}/members"): {"email": "{attacker_email}", "role": "owner"},
    ("PATCH", "/workspaces/{wid}/members/{uid}"): {"role": "viewer"},
    ("POST", "/workspaces/{wid}/api-keys"): {"name": "stolen", "scopes": ["runs:read"]},
    ("POST", "/workspaces/{wid}/agents"): {"name": "Implant", "personality": "coordinator"},
    ("PATCH", "/workspaces/{wid}/agents/{aid}"): {"name": "Hijacked", "system_prompt": "Obey workspace A."},
    ("POST", "/workspaces/{wid}/agents/{aid}/runs"): {"input": "Tell me B's secrets."},
    ("POST", "/workspaces/{wid}/agents/{aid}/rollback"): {"version": 1},
    ("POST", "/workspaces/{wid}/runs/{rid}/cancel"): {},
    ("POST", "/workspaces/{wid}/runs/{rid}/resume"): {},
    ("POST", "/workspaces/{wid}/agents/{aid}/sessions"): {"title": "Implant"},
    ("PATCH", "/workspaces/{wid}/sessions/{sid}"): {"title": "Hijacked"},
    ("POST", "/workspaces/{wid}/sessions/{sid}/messages"): {"input": "Tell me what B said before."},
    ("POST", "/workspaces/{wid}/agents/{aid}/schedules"): {"cron": "0 * * * *", "timezone": "UTC",
                                                         "input": "Run B's agent for A."},
    ("PATCH", "/workspaces/{wid}/schedules/{scid}"): {"input": "Hijacked.", "enabled": True},
    ("POST", "/workspaces/{wid}/approvals/{apid}"): {"decision": "approve", "reason": "A says yes."},
    ("POST", "/workspaces/{wid}/webhooks"): {"url": "http://127.0.0.1:9/a-listens", "events": ["run.succeeded"]},
    ("POST", "/workspaces/{wid}/webhooks/{webhook_id}/test"): {},
    ("POST", "/workspaces/{wid}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"): {},
    ("POST", "/workspaces/{wid}/mcp-servers"): {"name": "implant", "url": "http://127.0.0.1:9/mcp"},
    ("POST", "/workspaces/{wid}/mcp-servers/{mid}/refresh"): {},
}


def snapshot(cloud, workspace_id: str) -> list[dict]:
    """Every item of the workspace (and the global items that point at it), raw."""
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(cloud.config.stack.table_name)
    items, start = [], None
    while True:
        kwargs = {"ExclusiveStartKey": start} if start else {}
        page = table.scan(ConsistentRead=True, **kwargs)  # test-only: a full scan is the point here
        items += [i for i in page["Items"]
                  if i["pk"].startswith(f"WS#{workspace_id}") or i.get("workspace_id") == workspace_id]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    return sorted(items, key=lambda i: (i["pk"], i["sk"]))


@pytest.fixture(scope="module")
def tenants(cloud):
    from tests.support import client_for

    with client_for(cloud) as api:
        a = with_api_key(signup(api, tag="tenant-a", workspace_name="A Corp", tier="pro"), scopes=(
            "workspace:read", "agents:read", "agents:write", "runs:read", "runs:write", "usage:read"))
        b = with_api_key(signup(api, tag="tenant-b", workspace_name="B Corp"))
        agent = b.post("/agents", json={"name": "B's agent", "personality": "sre"})
        assert agent.status_code == 201, agent.text
        b.extra["agent_id"] = agent.json()["id"]
        changed = b.api.patch(b.path(f"/agents/{b.extra['agent_id']}"), headers=b.headers,
                              json={"system_prompt": "B's own prompt."})  # version 2: a rollback would change it
        assert changed.status_code == 200 and changed.json()["version"] == 2, changed.text
        run = b.post(f"/agents/{b.extra['agent_id']}/runs", json={"input": "B's private work."})
        assert run.status_code == 202, run.text
        b.extra["run_id"] = run.json()["id"]
        _wait_until_ended(b, b.extra["run_id"])  # B's data must hold still while the matrix runs
        session = b.post(f"/agents/{b.extra['agent_id']}/sessions", json={"title": "B's conversation"})
        assert session.status_code == 201, session.text
        b.extra["session_id"] = session.json()["id"]
        turn = b.post(f"/sessions/{b.extra['session_id']}/messages", json={"input": "B's private question."})
        assert turn.status_code == 202, turn.text
        _wait_until_ended(b, turn.json()["id"])
        _wait_until_idle(b, b.extra["session_id"])
        schedule = b.post(f"/agents/{b.extra['agent_id']}/schedules",
                          json={"cron": "0 3 * * *", "timezone": "UTC", "input": "B's nightly work.", "enabled": False})
        assert schedule.status_code == 201, schedule.text
        b.extra["schedule_id"] = schedule.json()["id"]
        b.extra["approval_id"] = _pending_approval(cloud, b)  # (its run waits, holding still, until the end)
        _with_a_webhook(b)
        server = b.post("/mcp-servers", json={"name": "b-tools", "url": "http://127.0.0.1:9/mcp",
                                              "headers": {"Authorization": "Bearer b-secret"}})
        assert server.status_code == 201, server.text  # unreachable: stored with a failed status
        b.extra["mcp_server_id"] = server.json()["id"]
        yield a, b
        b.post(f"/runs/{b.extra['approval_run_id']}/cancel")


def _with_a_webhook(b) -> None:
    """B's webhook (to nowhere: port 9) and its test ping, attempted once and failed before the matrix runs."""
    import time

    made = b.post("/webhooks", json={"url": "http://127.0.0.1:9/b-listens", "events": ["run.failed"]})
    assert made.status_code == 201, made.text
    b.extra["webhook_id"] = made.json()["id"]
    ping = b.post(f"/webhooks/{b.extra['webhook_id']}/test")
    assert ping.status_code == 202, ping.text
    b.extra["delivery_id"] = ping.json()["id"]
    for _ in range(300):
        logged = b.get(f"/webhooks/{b.extra['webhook_id']}/deliveries").json()["items"]
        if logged and logged[0]["status"] == "failed":
            return
        time.sleep(0.1)
    raise AssertionError("B's test ping was not attempted")


def _wait_until_ended(tenant, run_id: str) -> None:
    import time

    for _ in range(300):
        if tenant.get(f"/runs/{run_id}").json()["status"] in ("succeeded", "failed", "cancelled", "timed_out"):
            return
        time.sleep(0.1)
    raise AssertionError("B's run did not end")


def _pending_approval(cloud, b) -> str:
    """A run of B that waits for a person's approval of its tool call (its task token stored: from
    then on B's data holds still): the approval's id."""
    import time

    agent = b.post("/agents", json={"name": "B's careful agent", "personality": "sre", "tools": ["calculator"],
                                    "tool_policies": {"calculator": "ask"}})
    assert agent.status_code == 201, agent.text
    run = b.post(f"/agents/{agent.json()['id']}/runs", json={"input": '/tool calculator {"expression": "1+1"}'})
    assert run.status_code == 202, run.text
    b.extra["approval_run_id"] = run.json()["id"]
    for _ in range(300):
        stored = [i for i in snapshot(cloud, b.workspace_id) if i["sk"] == f"RUN#{run.json()['id']}"]
        if stored and stored[0]["status"] == "waiting" and stored[0].get("task_token"):
            (approval,) = b.get("/approvals", params={"status": "pending"}).json()["items"]
            return str(approval["id"])
        time.sleep(0.1)
    raise AssertionError("B's run did not wait for an approval")

def _wait_until_idle(tenant, session_id: str) -> None:
    import time

    for _ in range(300):
        if tenant.get(f"/sessions/{session_id}").json()["status"] == "idle":
            return
        time.sleep(0.1)
    raise AssertionError("B's session did not go idle")


def b_ids(b) -> dict[str, str]:
    """B's id for every path parameter a workspace route may have."""
    return {"wid": b.workspace_id, "uid": b.user_id, "kid": b.api_key_id, "aid": b.extra["agent_id"],
            "rid": b.extra["run_id"], "sid": b.extra["session_id"], "version": "1", "scid": b.extra["schedule_id"],
            "apid": b.extra["approval_id"], "webhook_id": b.extra["webhook_id"], "delivery_id": b.extra["delivery_id"],
            "mid": b.extra["mcp_server_id"]}


def fill(path: str, ids: dict[str, str]) -> str:
    params = re.findall(r"\{(\w+)\}", path)
    missing = [p for p in params if p not in ids]
    assert not missing, f"{path}: add B's id for {missing} to b_ids() so the route joins the matrix"
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def body_for(route, attacker) -> dict | None:
    if route.method in ("GET", "DELETE"):
        return None
    key = (route.method, route.path)
    assert key in SAMPLE_BODIES, f"{key}: add a valid sample body to SAMPLE_BODIES"
    return {k: (v.replace("{attacker_email}", attacker.email) if isinstance(v, str) else v)
            for k, v in SAMPLE_BODIES[key].items()}


@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method} {r.path}" for r in ROUTES])
def test_workspace_a_cannot_reach_workspace_b(cloud, tenants, route):
    a, b = tenants
    before = snapshot(cloud, b.workspace_id)
    foreign_workspace = b_ids(b)
    own_workspace_foreign_ids = {**b_ids(b), "wid": a.workspace_id}
    for ids in (foreign_workspace, own_workspace_foreign_ids):
        if ids is own_workspace_foreign_ids and re.findall(r"\{(\w+)\}", route.path) == ["wid"]:
            continue  # no foreign ids in it: that is just A's own workspace
        path = fill(route.path, ids)
        for credentials in (a.headers, a.key_headers):
            response = a.api.request(route.method, path, headers=credentials, json=body_for(route, a))
            assert response.status_code in (403, 404), (
                f"{route.method} {path}: {response.status_code} {response.text}")
            assert_error(response, response.status_code)
    assert snapshot(cloud, b.workspace_id) == before, "B's data changed"


def test_the_matrix_covers_every_workspace_route(tenants):
    assert {(r.method, r.path) for r in ROUTES} >= {
        ("GET", "/workspaces/{wid}"), ("DELETE", "/workspaces/{wid}"), ("POST", "/workspaces/{wid}/api-keys"),
    }
    a, b = tenants
    for route in ROUTES:
        fill(route.path, b_ids(b))
        body_for(route, a)


def test_another_workspaces_agent_versions_are_not_found(tenants):
    """Under A's own workspace id, B's agent's versions are 404 (never 403: that would tell they exist)."""
    a, b = tenants
    agent_id = b.extra["agent_id"]
    for credentials in (a.headers, a.key_headers):
        for method, suffix, body in (("GET", f"/agents/{agent_id}/versions", None),
                                     ("GET", f"/agents/{agent_id}/versions/1", None),
                                     ("POST", f"/agents/{agent_id}/rollback", {"version": 1})):
            response = a.api.request(method, a.path(suffix), headers=credentials, json=body)
            assert_error(response, 404, "not_found")
    assert [v["version"] for v in b.get(f"/agents/{agent_id}/versions").json()["items"]] == [2, 1]
