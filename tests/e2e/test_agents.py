"""Agents over real HTTP on the local cloud: personalities, CRUD, validation,
roles and scopes, pagination, and the tier's agent limit under concurrency."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from agenthq import ids
from agenthq.pagination import encode_cursor
from agenthq.personalities import PERSONALITIES
from agenthq.pricing import KNOWN_MODELS
from agenthq.tools.catalog import BUILTIN_TOOL_NAMES
from tests.support import PASSWORD, assert_error, bearer, client_for, signup, with_api_key


def table(cloud):
    return boto3.resource("dynamodb", region_name="us-east-1").Table(cloud.config.stack.table_name)


def workspace_items(cloud, workspace_id: str) -> list[dict]:
    items, start = [], None
    while True:
        kwargs = {"ExclusiveStartKey": start} if start else {}
        page = table(cloud).query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={
            ":pk": f"WS#{workspace_id}"}, ConsistentRead=True, **kwargs)
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def agent_count(cloud, workspace_id: str) -> int:
    return int(table(cloud).get_item(Key={"pk": f"WS#{workspace_id}", "sk": "META"},
                                     ConsistentRead=True)["Item"]["agent_count"])


# The gateway applies a plan change after up to a second (its key and plan cache,
# as on AWS): until then a new workspace still has the free plan's burst of 10.
PLAN_CHANGE_DELAY = 1.1


@pytest.fixture()
def owner(api):
    tenant = signup(api, tier="pro")
    time.sleep(PLAN_CHANGE_DELAY)
    return tenant


@pytest.fixture(scope="module")
def shared_owner(cloud):
    """One pro workspace for the many validation cases (signing up is slow on purpose)."""
    with client_for(cloud) as client:
        tenant = signup(client, tag="validation", tier="pro")
        time.sleep(PLAN_CHANGE_DELAY)
        yield tenant


def create(tenant, **body):
    return tenant.post("/agents", json={"personality": "sre", **body})


# --------------------------------------------------------------------------- personalities


def test_the_five_personalities_are_listed_with_prompts_and_known_tools(api, owner):
    response = api.get("/personalities", headers=owner.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    assert [p["id"] for p in body["items"]] == list(PERSONALITIES)
    for item in body["items"]:
        personality = PERSONALITIES[item["id"]]
        assert item == {"id": personality.id, "name": personality.name, "description": personality.description,
                        "default_tools": list(personality.default_tools), "default_model": personality.default_model,
                        "system_prompt": personality.system_prompt}
        assert item["system_prompt"].strip() and set(item["default_tools"]) <= set(BUILTIN_TOOL_NAMES)
        assert item["default_model"] in KNOWN_MODELS
    assert_error(api.get("/personalities"), 401, "unauthorized")


# --------------------------------------------------------------------------- create, read, update, delete


def test_an_agent_gets_its_personalitys_defaults_and_can_be_changed_and_deleted(cloud, api, owner):
    created = create(owner, name="  Ops  ")
    assert created.status_code == 201, created.text
    agent = created.json()
    sre = PERSONALITIES["sre"]
    assert ids.is_id(agent["id"])
    assert agent == {
        "id": agent["id"], "workspace_id": owner.workspace_id, "name": "Ops", "personality": "sre",
        "system_prompt": sre.system_prompt, "own_system_prompt": False, "model": sre.default_model,
        "tools": list(sre.default_tools), "max_steps": 20, "budget_usd": "1.00", "version": 1,
        "tool_policies": {}, "approval_timeout_seconds": 3600, "on_approval_timeout": "deny", "context_budget_tokens": 150_000,
        "created_at": agent["created_at"], "updated_at": agent["created_at"],
    }
    assert owner.get(f"/agents/{agent['id']}").json() == agent

    patch = owner.api.patch(owner.path(f"/agents/{agent['id']}"), headers=owner.headers, json={
        "name": "Ops Lead", "system_prompt": "Be brief.", "tools": ["calculator"], "budget_usd": "2.5",
        "max_steps": 5, "model": "claude-haiku-4-5", "personality": "architect"})
    assert patch.status_code == 200, patch.text
    changed = patch.json()
    assert {k: changed[k] for k in ("name", "system_prompt", "own_system_prompt", "tools", "budget_usd",
                                    "max_steps", "model", "personality")} == {
        "name": "Ops Lead", "system_prompt": "Be brief.", "own_system_prompt": True, "tools": ["calculator"],
        "budget_usd": "2.50", "max_steps": 5, "model": "claude-haiku-4-5", "personality": "architect"}
    assert changed["created_at"] == agent["created_at"] and changed["updated_at"] >= agent["updated_at"]
    assert changed["version"] == 2
    assert owner.get(f"/agents/{agent['id']}").json() == changed

    # dropping the own prompt falls back to the (new) personality's
    reverted = owner.api.patch(owner.path(f"/agents/{agent['id']}"), headers=owner.headers,
                               json={"system_prompt": None})
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["system_prompt"] == PERSONALITIES["architect"].system_prompt
    assert reverted.json()["own_system_prompt"] is False and reverted.json()["name"] == "Ops Lead"

    # the old name is free again; the new one is taken (case-insensitively)
    other = create(owner, name="ops")
    assert other.status_code == 201, other.text
    error = assert_error(owner.api.patch(owner.path(f"/agents/{other.json()['id']}"), headers=owner.headers,
                                         json={"name": "OPS LEAD"}), 409, "conflict")
    assert error["details"][0]["field"] == "name"
    # a change of case only is a rename to itself
    recased = owner.api.patch(owner.path(f"/agents/{agent['id']}"), headers=owner.headers, json={"name": "ops lead"})
    assert recased.status_code == 200 and recased.json()["name"] == "ops lead"
    assert agent_count(cloud, owner.workspace_id) == 2

    deleted = owner.api.delete(owner.path(f"/agents/{agent['id']}"), headers=owner.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(owner.get(f"/agents/{agent['id']}"), 404, "not_found")
    assert_error(owner.api.delete(owner.path(f"/agents/{agent['id']}"), headers=owner.headers), 404)
    assert_error(owner.api.patch(owner.path(f"/agents/{agent['id']}"), headers=owner.headers,
                                 json={"max_steps": 3}), 404)
    assert agent_count(cloud, owner.workspace_id) == 1
    markers = [i for i in workspace_items(cloud, owner.workspace_id) if i["type"] == "AgentName"]
    assert [(m["sk"], m["agent_id"]) for m in markers] == [("AGENTNAME#ops", other.json()["id"])]
    assert create(owner, name="Ops Lead").status_code == 201  # its name is free again


def test_a_taken_name_is_a_conflict_whatever_its_case(owner):
    assert create(owner, name="Release Captain").status_code == 201
    error = assert_error(create(owner, name="release CAPTAIN"), 409, "conflict")
    assert error["details"] == [{"field": "name", "message": "already taken (names are case-insensitive)"}]
    assert [a["name"] for a in owner.get("/agents").json()["items"]] == ["Release Captain"]


@pytest.mark.parametrize(("body", "field"), [
    ({"personality": "wizard"}, "personality"),
    ({"tools": ["calculator", "rm_rf"]}, "tools"),
    ({"tools": ["calculator", "calculator"]}, "tools"),
    ({"model": "gpt-4o"}, "model"),
    ({"max_steps": 0}, "max_steps"),
    ({"max_steps": 101}, "max_steps"),
    ({"max_steps": True}, "max_steps"),
    ({"budget_usd": 0}, "budget_usd"),
    ({"budget_usd": "-1"}, "budget_usd"),
    ({"budget_usd": "100.01"}, "budget_usd"),
    ({"budget_usd": "lots"}, "budget_usd"),
    ({"system_prompt": "x" * 20_001}, "system_prompt"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "n" * 101}, "name"),
    ({"name": "tab\there"}, "name"),
    ({"nickname": "Ops"}, "nickname"),
])
def test_invalid_agents_are_refused_with_field_details(shared_owner, body, field):
    error = assert_error(create(shared_owner, **{"name": "Valid", **body}), 400, "invalid_request")
    assert field in [d["field"] for d in error["details"]], error


def test_invalid_json_and_invalid_changes_are_400(shared_owner):
    owner = shared_owner
    response = owner.api.post(owner.path("/agents"), headers={**owner.headers, "Content-Type": "application/json"},
                              content=b'{"name": "Ops", "personality": ')
    error = assert_error(response, 400, "invalid_request")
    assert error["details"] == [{"field": "body", "message": "invalid JSON"}]
    agent = create(owner, name="Patched").json()
    for body, field in (({"name": None}, "name"), ({"tools": ["nope"]}, "tools"), ({"budget_usd": 0}, "budget_usd"),
                        ({"max_steps": None}, "max_steps"), ({"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "id")):
        error = assert_error(owner.api.patch(owner.path(f"/agents/{agent['id']}"), headers=owner.headers, json=body),
                             400, "invalid_request")
        assert field in [d["field"] for d in error["details"]], error
    assert owner.get(f"/agents/{agent['id']}").json() == agent


# --------------------------------------------------------------------------- who may


def test_a_viewer_reads_agents_but_cannot_change_them_and_keys_need_the_scope(api, owner):
    agent = create(owner, name="Shared").json()
    colleague = signup(api, tag="viewer", workspace_name="Viewer's own")
    assert owner.post("/members", json={"email": colleague.email, "role": "viewer"}).status_code == 201
    login = api.post("/auth/login", json={"email": colleague.email, "password": PASSWORD,
                                          "workspace_id": owner.workspace_id})
    assert login.status_code == 200, login.text
    as_viewer = bearer(login.json()["access_token"])
    assert [a["id"] for a in api.get(owner.path("/agents"), headers=as_viewer).json()["items"]] == [agent["id"]]
    assert api.get(owner.path(f"/agents/{agent['id']}"), headers=as_viewer).json() == agent
    assert_error(api.post(owner.path("/agents"), headers=as_viewer, json={"name": "Mine", "personality": "sre"}),
                 403, "forbidden")
    assert_error(api.patch(owner.path(f"/agents/{agent['id']}"), headers=as_viewer, json={"max_steps": 1}), 403)
    assert_error(api.delete(owner.path(f"/agents/{agent['id']}"), headers=as_viewer), 403)

    with_api_key(owner)  # agents:read + agents:write among its scopes
    by_key = api.post(owner.path("/agents"), headers=owner.key_headers, json={"name": "Keyed", "personality": "sre"})
    assert by_key.status_code == 201, by_key.text
    assert api.delete(owner.path(f"/agents/{by_key.json()['id']}"), headers=owner.key_headers).status_code == 204
    read_only = owner.post("/api-keys", json={"name": "reader", "scopes": ["agents:read"]}).json()["key"]
    assert api.get(owner.path("/agents"), headers={"x-api-key": read_only}).status_code == 200
    assert_error(api.post(owner.path("/agents"), headers={"x-api-key": read_only},
                          json={"name": "Nope", "personality": "sre"}), 403, "forbidden")
    runs_only = owner.post("/api-keys", json={"name": "runner", "scopes": ["runs:read"]}).json()["key"]
    assert_error(api.get(owner.path("/agents"), headers={"x-api-key": runs_only}), 403, "forbidden")


# --------------------------------------------------------------------------- lists


def test_agents_are_listed_in_creation_order_page_by_page(owner):
    made = [create(owner, name=f"Agent {i}").json()["id"] for i in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = owner.get("/agents", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 2
        seen += [a["id"] for a in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == made and pages >= 3
    assert_error(owner.get("/agents", params={"limit": 0}), 400, "invalid_request")
    assert_error(owner.get("/agents", params={"cursor": "bm90LWEtY3Vyc29y"}), 400, "invalid_request")
    # a well-formed cursor, but into the workspace's members (or another workspace's agents)
    members_cursor = encode_cursor({"pk": {"S": f"WS#{owner.workspace_id}"}, "sk": {"S": f"MEMBER#{owner.user_id}"}})
    assert_error(owner.get("/agents", params={"cursor": members_cursor}), 400, "invalid_request")
    foreign_cursor = encode_cursor({"pk": {"S": "WS#01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "sk": {"S": f"AGENT#{made[0]}"}})
    assert_error(owner.get("/agents", params={"cursor": foreign_cursor}), 400, "invalid_request")


# --------------------------------------------------------------------------- the tier's limit


def test_parallel_creates_never_exceed_the_free_plans_three_agents(cloud, api):
    free = signup(api, tag="free")  # free: 3 agents; its gateway burst is 10 requests

    def attempt(i: int):
        with client_for(cloud) as client:
            return client.post(free.path("/agents"), headers=free.headers,
                               json={"name": f"Racer {i}", "personality": "coordinator"})

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(attempt, range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [403] * 7, [(r.status_code, r.text) for r in responses]
    for refused in (r for r in responses if r.status_code == 403):
        error = assert_error(refused, 403, "plan_limit")
        assert error["message"].startswith("Your plan allows 3 agents.")
    assert agent_count(cloud, free.workspace_id) == 3
    items = workspace_items(cloud, free.workspace_id)
    assert sum(i["type"] == "Agent" for i in items) == 3
    assert sum(i["type"] == "AgentName" for i in items) == 3

    time.sleep(2.2)  # the free plan's bucket refills at 5 requests per second
    listed = free.get("/agents")
    assert listed.status_code == 200, listed.text
    winners = {r.json()["id"] for r in responses if r.status_code == 201}
    assert {a["id"] for a in listed.json()["items"]} == winners
    assert free.api.delete(free.path(f"/agents/{sorted(winners)[0]}"), headers=free.headers).status_code == 204
    assert free.post("/agents", json={"name": "Late", "personality": "sre"}).status_code == 201
    assert_error(free.post("/agents", json={"name": "Later", "personality": "sre"}), 403, "plan_limit")
    assert agent_count(cloud, free.workspace_id) == 3
