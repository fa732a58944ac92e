"""Agent versions over real HTTP on the local cloud: every change makes an
immutable version (a no-op none), concurrent changes each get their own number,
rollback makes a new version equal to an earlier one, a run records and runs
its version (even when the agent changes while it runs), and deleting the
agent deletes its versions."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import boto3
import pytest

from agenthq import ids
from agenthq.pagination import encode_cursor
from agenthq.store import tenant_scope
from agenthq.versions.records import load_agent_version
from tests.support import (
    Tenant,
    assert_error,
    client_for,
    create_agent,
    events_of,
    launch,
    signup,
    wait_for,
    with_api_key,
)

PLAN_CHANGE_DELAY = 1.1  # the gateway applies a plan change after up to a second


@pytest.fixture(scope="module")
def owner(cloud):
    with client_for(cloud) as client:
        tenant = signup(client, tag="versions", tier="pro")
        time.sleep(PLAN_CHANGE_DELAY)
        yield tenant


def patch(tenant: Tenant, agent_id: str, **body: Any):
    return tenant.api.patch(tenant.path(f"/agents/{agent_id}"), headers=tenant.headers, json=body)


def versions_of(tenant: Tenant, agent_id: str, **params: Any) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        response = tenant.get(f"/agents/{agent_id}/versions", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


def stored_versions(cloud, workspace_id: str, agent_id: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(cloud.config.stack.table_name)
    return table.query(KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)", ConsistentRead=True,
                       ExpressionAttributeValues={":pk": f"WS#{workspace_id}", ":sk": f"AGENTVER#{agent_id}#"})["Items"]


def definition(agent: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in agent.items() if k not in ("id", "workspace_id", "version", "created_at", "updated_at")}


# --------------------------------------------------------------------------- versions and rollback


def test_every_change_makes_a_version_a_no_op_none_and_a_rollback_one_equal_to_the_old(owner, cloud):
    created = create_agent(owner, "versioned", "sre", system_prompt="You keep the pager quiet.",
                           tools=["calculator"])
    assert created["version"] == 1
    first = patch(owner, created["id"], system_prompt="You keep the pager very quiet.")
    assert first.status_code == 200 and first.json()["version"] == 2, first.text
    same = patch(owner, created["id"], system_prompt="You keep the pager very quiet.", tools=["calculator"])
    assert same.status_code == 200, same.text
    assert same.json() == first.json(), "a change to what the agent already is makes no version and writes nothing"
    second = patch(owner, created["id"], tools=["calculator", "notes_read"], max_steps=7)
    assert second.json()["version"] == 3

    listed = versions_of(owner, created["id"])
    assert [v["version"] for v in listed] == [3, 2, 1], "newest first"
    assert [v["change"] for v in listed] == ["update", "update", "create"]
    assert listed[2]["definition"] == definition(created)
    assert listed[1]["definition"] == definition(first.json())
    assert listed[0]["definition"] == definition(second.json())
    assert all(v["agent_id"] == created["id"] and v["workspace_id"] == owner.workspace_id
               and v["created_by"] == owner.user_id for v in listed)
    one = owner.get(f"/agents/{created['id']}/versions/1")
    assert one.status_code == 200 and one.json() == listed[2]

    rolled = owner.post(f"/agents/{created['id']}/rollback", json={"version": 1})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"] == 4 and definition(rolled.json()) == definition(created)
    assert definition(owner.get(f"/agents/{created['id']}").json()) == definition(created)
    fourth = owner.get(f"/agents/{created['id']}/versions/4").json()
    assert fourth["change"] == "rollback" and fourth["restored_version"] == 1
    assert fourth["definition"] == listed[2]["definition"]
    again = owner.post(f"/agents/{created['id']}/rollback", json={"version": 1})  # a client's retry
    assert again.status_code == 200 and again.json()["version"] == 4, "a retried rollback makes no fifth version"

    # the versions as stored: one immutable item each, the definition as one map
    stored = sorted(stored_versions(cloud, owner.workspace_id, created["id"]), key=lambda i: i["version"])
    assert [int(i["version"]) for i in stored] == [1, 2, 3, 4]
    assert stored[0]["definition"] == stored[3]["definition"]
    assert stored[0]["definition"]["system_prompt"] == "You keep the pager quiet."


def test_rollback_and_version_reads_refuse_bad_input(owner):
    agent = create_agent(owner, "refusals", "architect")
    patch(owner, agent["id"], name="refusals-renamed")
    create_agent(owner, "refusals", "sre")  # the old name is another agent's now
    assert_error(owner.post(f"/agents/{agent['id']}/rollback", json={"version": 3}), 404, "not_found")
    assert_error(owner.post(f"/agents/{agent['id']}/rollback", json={"version": 0}), 400)
    assert_error(owner.post(f"/agents/{agent['id']}/rollback", json={"version": "1"}), 400)
    assert_error(owner.post(f"/agents/{agent['id']}/rollback", json={}), 400)
    assert_error(owner.post(f"/agents/{agent['id']}/rollback", json={"version": 1, "extra": True}), 400)
    taken = assert_error(owner.post(f"/agents/{agent['id']}/rollback", json={"version": 1}), 409, "conflict")
    assert "refusals" in taken["message"]
    assert owner.get(f"/agents/{agent['id']}").json()["version"] == 2, "a refused rollback changes nothing"
    assert_error(owner.post(f"/agents/{ids.new_id()}/rollback", json={"version": 1}), 404, "not_found")
    for path in (f"/agents/{agent['id']}/versions/3", f"/agents/{agent['id']}/versions/0",
                 f"/agents/{agent['id']}/versions/-1", f"/agents/{agent['id']}/versions/99999999999999999999",
                 f"/agents/{ids.new_id()}/versions/1", f"/agents/{ids.new_id()}/versions"):
        assert_error(owner.get(path), 404, "not_found")
    for text in ("one", "1.0", "+1", "١"):  # not a version number: names no version
        assert_error(owner.get(f"/agents/{agent['id']}/versions/{text}"), 404, "not_found")


def test_reading_versions_needs_agents_read_and_rolling_back_agents_write(owner):
    agent = create_agent(owner, "scoped", "sre")
    reader = with_api_key(replace(owner), scopes=("agents:read",))
    listed = owner.api.get(owner.path(f"/agents/{agent['id']}/versions"), headers=reader.key_headers)
    assert listed.status_code == 200 and [v["version"] for v in listed.json()["items"]] == [1]
    refused = owner.api.post(owner.path(f"/agents/{agent['id']}/rollback"), headers=reader.key_headers,
                             json={"version": 1})
    assert_error(refused, 403)
    runner = with_api_key(replace(owner), scopes=("runs:read",))
    assert_error(owner.api.get(owner.path(f"/agents/{agent['id']}/versions"), headers=runner.key_headers), 403)


def test_versions_page_newest_first_with_cursors_that_stay_in_the_agent(owner):
    agent = create_agent(owner, "paged", "sre")
    for steps in range(2, 7):
        assert patch(owner, agent["id"], max_steps=steps).status_code == 200
    seen = versions_of(owner, agent["id"], limit=2)
    assert [v["version"] for v in seen] == [6, 5, 4, 3, 2, 1]
    assert [v["definition"]["max_steps"] for v in seen] == [6, 5, 4, 3, 2, 20]
    other = create_agent(owner, "paged-other", "sre")
    foreign = encode_cursor({"pk": {"S": f"WS#{owner.workspace_id}"}, "sk": {"S": f"AGENTVER#{other['id']}#0000000001"}})
    assert_error(owner.get(f"/agents/{agent['id']}/versions", params={"cursor": foreign}), 400, "invalid_request")
    assert_error(owner.get(f"/agents/{agent['id']}/versions", params={"limit": 0}), 400)


def test_parallel_changes_each_get_their_own_version_none_lost(owner, cloud):
    agent = create_agent(owner, "contended", "sre")
    prompts = [f"Prompt number {n}." for n in range(10)]
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda prompt: patch(owner, agent["id"], system_prompt=prompt), prompts))
    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses if r.status_code != 200]
    numbers = sorted(r.json()["version"] for r in responses)
    assert numbers == list(range(2, 12)), "each change its own number, no duplicate, no gap"
    listed = {v["version"]: v for v in versions_of(owner, agent["id"])}
    assert sorted(listed) == list(range(1, 12))
    for prompt, response in zip(prompts, responses, strict=True):  # each change is the version it was told
        assert listed[response.json()["version"]]["definition"]["system_prompt"] == prompt
    assert len(stored_versions(cloud, owner.workspace_id, agent["id"])) == 11
    assert owner.get(f"/agents/{agent['id']}").json()["system_prompt"] == listed[11]["definition"]["system_prompt"]


def test_deleting_an_agent_deletes_its_versions(owner, cloud):
    agent = create_agent(owner, "short-lived", "sre")
    for steps in (3, 4):
        patch(owner, agent["id"], max_steps=steps)
    assert len(stored_versions(cloud, owner.workspace_id, agent["id"])) == 3
    deleted = owner.api.delete(owner.path(f"/agents/{agent['id']}"), headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    assert stored_versions(cloud, owner.workspace_id, agent["id"]) == []
    assert_error(owner.get(f"/agents/{agent['id']}/versions"), 404, "not_found")
    assert_error(owner.get(f"/agents/{agent['id']}/versions/1"), 404, "not_found")


def test_load_agent_version_gives_the_agent_as_it_was(owner):
    """What a session pinned to a version launches its runs with."""
    agent = create_agent(owner, "pinned", "data_engineer", system_prompt="Version one.", tools=["calculator"])
    patch(owner, agent["id"], system_prompt="Version two.", tools=[])
    with tenant_scope(owner.workspace_id):
        one = load_agent_version(owner.workspace_id, agent["id"], 1)
        latest = load_agent_version(owner.workspace_id, agent["id"])
        assert (one.version, one.system_prompt, one.tools, one.id) == (1, "Version one.", ["calculator"], agent["id"])
        assert (latest.version, latest.system_prompt, latest.tools) == (2, "Version two.", [])
        assert load_agent_version(owner.workspace_id, agent["id"], 2).serialize() == latest.serialize()
        with pytest.raises(Exception, match="No such version"):
            load_agent_version(owner.workspace_id, agent["id"], 3)


# --------------------------------------------------------------------------- runs


def requests_with(cloud, marker: str) -> list[dict[str, Any]]:
    return [body for body in list(cloud.model_server.requests) if marker in str(body.get("messages"))]


def system_text(body: dict[str, Any]) -> str:
    system = body.get("system") or []
    return system if isinstance(system, str) else " ".join(block["text"] for block in system)


@pytest.mark.slow
def test_a_run_records_its_version_and_runs_it_while_the_agent_changes(owner, cloud):
    agent = create_agent(owner, "steady", "sre", system_prompt="You are version one.", tools=["calculator"])
    marker = f"marker-{ids.new_id()}"
    task = "\n".join([marker, "/latency 1.5", '/tool calculator {"expression": "6 * 7"}'])
    launched = launch(owner, agent["id"], task)
    assert launched.status_code == 202, launched.text
    assert launched.json()["agent_version"] == 1
    run_id = launched.json()["id"]
    deadline = time.monotonic() + 30
    while not requests_with(cloud, marker):  # its first model call is under way (it takes 1.5 s)
        assert time.monotonic() < deadline, "the run never called the model"
        time.sleep(0.05)
    changed = patch(owner, agent["id"], system_prompt="You are version two.", tools=["notes_read"])
    assert changed.status_code == 200 and changed.json()["version"] == 2

    run = wait_for(owner, run_id)
    assert run["status"] == "succeeded", run
    assert run["agent_version"] == 1 and "calculator: 42" in run["output"]
    calls = requests_with(cloud, marker)
    assert len(calls) == 2, "the tool turn and the answer"
    for body in calls:  # what the model received: version 1's prompt and tools, the whole run long
        assert "You are version one." in system_text(body) and "version two" not in system_text(body)
        assert [tool["name"] for tool in body["tools"]] == ["calculator"]
    assert events_of(owner, run_id)[0]["data"]["agent_version"] == 1

    later_marker = f"marker-{ids.new_id()}"
    later = launch(owner, agent["id"], later_marker)
    assert later.status_code == 202 and later.json()["agent_version"] == 2
    assert wait_for(owner, later.json()["id"])["status"] == "succeeded"
    (body,) = requests_with(cloud, later_marker)
    assert "You are version two." in system_text(body) and [t["name"] for t in body["tools"]] == ["notes_read"]
    listed = owner.get("/runs", params={"agent_id": agent["id"]}).json()["items"]
    assert sorted(r["agent_version"] for r in listed) == [1, 2]


def test_an_agent_made_before_versions_has_version_1_until_its_first_change_writes_it(owner, cloud):
    agent = create_agent(owner, "old-timer", "sre", system_prompt="From before versions.")
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(cloud.config.stack.table_name)
    # as such an agent is stored: no counter, no version items
    table.update_item(Key={"pk": f"WS#{owner.workspace_id}", "sk": f"AGENT#{agent['id']}"}, UpdateExpression="REMOVE version")
    table.delete_item(Key={"pk": f"WS#{owner.workspace_id}", "sk": f"AGENTVER#{agent['id']}#0000000001"})

    assert owner.get(f"/agents/{agent['id']}").json()["version"] == 1
    (only,) = versions_of(owner, agent["id"])
    assert (only["version"], only["definition"]) == (1, definition(agent))
    assert owner.get(f"/agents/{agent['id']}/versions/1").json() == only
    launched = launch(owner, agent["id"], "Hello.")
    assert launched.status_code == 202 and launched.json()["agent_version"] == 1
    assert stored_versions(cloud, owner.workspace_id, agent["id"]) == [], "reading writes nothing"

    changed = patch(owner, agent["id"], system_prompt="After versions.")
    assert changed.status_code == 200 and changed.json()["version"] == 2, changed.text
    listed = versions_of(owner, agent["id"])
    assert [(v["version"], v["definition"]["system_prompt"]) for v in listed] == [
        (2, "After versions."), (1, "From before versions.")]
    assert owner.post(f"/agents/{agent['id']}/rollback", json={"version": 1}).json()["version"] == 3
    wait_for(owner, launched.json()["id"])


@pytest.mark.slow
def test_a_run_launched_at_an_earlier_version_runs_that_version(owner, cloud):
    """What a session pinned to a version does: load the agent at it, launch through the one launch path."""
    from agenthq.runs.launch import create_run_record, forget_unstarted
    from agenthq.services import get_services

    agent = create_agent(owner, "pinned-runner", "sre", system_prompt="Pinned prompt one.", tools=["calculator"])
    patch(owner, agent["id"], system_prompt="Prompt two.", tools=[])
    assert owner.post(f"/agents/{agent['id']}/rollback", json={"version": 1}).json()["version"] == 3
    patch(owner, agent["id"], system_prompt="Prompt four.")
    marker = f"marker-{ids.new_id()}"
    services = get_services()
    with tenant_scope(owner.workspace_id):
        at_one = load_agent_version(owner.workspace_id, agent["id"], 1)
        run = create_run_record(services, owner.workspace_id, at_one, f"{marker}\n/tool calculator "
                                '{"expression": "1 + 1"}', created_by=owner.user_id)
    services.orchestrator.start(run.id, {"workspace_id": run.workspace_id, "run_id": run.id})
    forget_unstarted(run.workspace_id, run.id)
    done = wait_for(owner, run.id)
    assert done["status"] == "succeeded" and done["agent_version"] == 1, done
    calls = requests_with(cloud, marker)
    assert len(calls) == 2 and all("Pinned prompt one." in system_text(body) for body in calls)
    assert all([tool["name"] for tool in body["tools"]] == ["calculator"] for body in calls)
    assert owner.get(f"/agents/{agent['id']}").json()["version"] == 4, "launching at a version changes nothing"


def test_an_agent_keeps_its_last_versions_and_the_oldest_go(owner, cloud):
    """Storage is bounded however often a tenant changes an agent: each change past the kept number deletes
    the oldest kept version in its own transaction (KEPT_VERSIONS = 100; 3 here, through the same function)."""
    from agenthq.agents import change_agent
    from agenthq.context import ROLE_SCOPES, Principal, PrincipalKind, Role
    from agenthq.services import get_services
    from agenthq.versions.records import KEPT_VERSIONS, UPDATE

    assert KEPT_VERSIONS == 100
    agent = create_agent(owner, "often-changed", "sre")
    principal = Principal(workspace_id=owner.workspace_id, subject=owner.user_id, kind=PrincipalKind.user,
                          role=Role.owner, scopes=ROLE_SCOPES[Role.owner])

    def steps(n):
        def changed(current):
            current.max_steps = n
            return current
        return changed

    for n in range(2, 7):  # versions 2..6
        view = change_agent(get_services(), principal, agent["id"], steps(n), change=UPDATE, kept=3)
        assert view["version"] == n and view["max_steps"] == n
    assert [v["version"] for v in versions_of(owner, agent["id"])] == [6, 5, 4]
    assert sorted(int(i["version"]) for i in stored_versions(cloud, owner.workspace_id, agent["id"])) == [4, 5, 6]
    assert_error(owner.get(f"/agents/{agent['id']}/versions/3"), 404, "not_found")
    assert_error(owner.post(f"/agents/{agent['id']}/rollback", json={"version": 1}), 404, "not_found")
    assert owner.post(f"/agents/{agent['id']}/rollback", json={"version": 4}).json()["version"] == 7


def test_a_version_naming_what_was_retired_since_is_not_restored(owner, cloud):
    agent = create_agent(owner, "retiring", "sre", tools=["calculator"])
    patch(owner, agent["id"], max_steps=3)
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(cloud.config.stack.table_name)
    # version 1 as an older release stored it: a model and a tool that this release no longer offers
    table.update_item(Key={"pk": f"WS#{owner.workspace_id}", "sk": f"AGENTVER#{agent['id']}#0000000001"},
                      UpdateExpression="SET #d.model = :m, #d.tools = :t", ExpressionAttributeNames={"#d": "definition"},
                      ExpressionAttributeValues={":m": "claude-retired-1", ":t": '["abacus"]'})
    refused = assert_error(owner.post(f"/agents/{agent['id']}/rollback", json={"version": 1}), 409, "conflict")
    assert refused["message"] == "Version 1 cannot be restored: it is no longer a valid agent."
    assert {d["field"] for d in refused["details"]} == {"model", "tools"}
    now = owner.get(f"/agents/{agent['id']}").json()
    assert (now["version"], now["model"], now["tools"]) == (2, agent["model"], ["calculator"])
    assert owner.get(f"/agents/{agent['id']}/versions/1").json()["definition"]["model"] == "claude-retired-1"
