"""A workspace's MCP servers on the local cloud (issue 22): registered through the API,
their tools called by runs through the guarded HTTP client, against local/mcp_demo.py's
MCP server (the ``mcp`` SDK's MCPServer over Streamable HTTP on loopback)."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agenthq.mcp.connector import SdkConnector
from agenthq.outbound import OutboundPolicy
from local.lambda_runtime import in_process
from local.mcp_demo import McpDemo
from tests.support import (
    assert_error,
    client_for,
    create_agent,
    events_of,
    launch,
    services_with,
    set_tier,
    signup,
    table_items,
    wait_for,
)

pytestmark = pytest.mark.slow

TOKEN = "mcp-demo-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def demo() -> Iterator[McpDemo]:
    server = McpDemo(TOKEN).start()
    yield server
    server.stop()


def mcp_agent(tenant: Any, name: str, tools: list[str]) -> dict[str, Any]:
    """An agent with these tools (MCP ones among them) that runs them without asking first (MCP tools
    ask by default: test_a_tool_call_waits_for_approval_and_the_model_receives_its_result)."""
    return create_agent(tenant, name, "sre", tools=tools,
                        tool_policies={t: "allow" for t in tools if t.startswith("mcp__")})


def register(tenant: Any, name: str, url: str, headers: dict[str, str] | None = None) -> Any:
    body: dict[str, Any] = {"name": name, "url": url}
    if headers is not None:
        body["headers"] = headers
    return tenant.post("/mcp-servers", json=body)


def run_tools(tenant: Any, agent_id: str, calls: list[tuple[str, dict[str, Any]]], text: str = "Use the tools.") -> dict:
    lines = [text] + [f"/tool {name} {json.dumps(arguments)}" for name, arguments in calls]
    launched = launch(tenant, agent_id, "\n".join(lines))
    assert launched.status_code == 202, launched.text
    return wait_for(tenant, launched.json()["id"], timeout=120)


def tool_results(tenant: Any, run_id: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events_of(tenant, run_id) if e["type"] == "tool.result"]


# --------------------------------------------------------------------------- secrets


def test_a_server_registered_with_a_bearer_header_lists_its_tools_and_the_header_never_shows(
        api, cloud, demo, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    tenant = signup(api, tag="mcp-secret", tier="pro")
    with in_process():  # the functions log into this process: caplog and capfd see every line
        created = register(tenant, "demo", demo.url, {"Authorization": f"Bearer {TOKEN}"})
        assert created.status_code == 201, created.text
        server = created.json()
        assert [t["name"] for t in server["tools"]] == [
            "mcp__demo__echo", "mcp__demo__add", "mcp__demo__slow", "mcp__demo__fail", "mcp__demo__huge"]
        assert server["tools"][0]["input_schema"]["properties"]["text"]["type"] == "string"
        assert server["status"]["state"] == "ok" and server["status"]["message"] is None
        assert server["header_names"] == ["Authorization"] and "headers" not in server
        assert f"Bearer {TOKEN}" in demo.seen_authorization, "the header reached the server"

        responses = [created, tenant.get(f"/mcp-servers/{server['id']}"), tenant.get("/mcp-servers"),
                     tenant.post(f"/mcp-servers/{server['id']}/refresh")]
        assert all(r.status_code == 200 for r in responses[1:]), [r.text for r in responses]
        agent = mcp_agent(tenant, "helper", ["calculator", "mcp__demo__echo"])
        run = run_tools(tenant, agent["id"], [("mcp__demo__echo", {"text": "hello"})])
        events = tenant.get(f"/runs/{run['id']}/events")

    assert run["status"] == "succeeded", run
    assert "mcp__demo__echo: echo: hello" in run["output"], "the model received the tool's result"
    for response in [*responses, events, tenant.get(f"/runs/{run['id']}")]:
        assert TOKEN not in response.text
    items = table_items(cloud)
    assert not [i for i in items if TOKEN in json.dumps(i, default=str)], "the header is in the table in clear"
    stored = [i for i in items if i.get("sk") == f"MCP#{server['id']}"]
    assert len(stored) == 1 and stored[0]["secret_arn"].startswith("arn:aws:secretsmanager:")
    out, err = capfd.readouterr()
    leaked = sorted({r.name for r in caplog.records if TOKEN in r.getMessage()})
    assert not leaked, leaked
    assert TOKEN not in out and TOKEN not in err and TOKEN not in caplog.text
    assert caplog.text or out or err, "the functions logged (else this proves nothing)"


def pending_approval(tenant: Any, run_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = tenant.get("/approvals", params={"run_id": run_id, "status": "pending"})
        run = tenant.get(f"/runs/{run_id}").json()
        if listed.status_code == 200 and listed.json()["items"] and run["status"] == "waiting":
            return dict(listed.json()["items"][0])
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} has no pending approval after {timeout} s")


def test_a_tool_call_waits_for_approval_and_the_model_receives_its_result(api, demo):
    tenant = signup(api, tag="mcp-approve", tier="pro")
    assert register(tenant, "demo", demo.url, {"Authorization": f"Bearer {TOKEN}"}).status_code == 201
    agent = create_agent(tenant, "careful", "sre", tools=["mcp__demo__echo"])  # MCP tools ask by default
    assert agent["tool_policies"] == {}
    echoes = demo.calls.count("echo")
    launched = launch(tenant, agent["id"], 'Ask first.\n/tool mcp__demo__echo {"text": "approved"}')
    approval = pending_approval(tenant, launched.json()["id"])
    assert approval["tool"] == "mcp__demo__echo" and approval["input"] == {"text": "approved"}
    assert demo.calls.count("echo") == echoes, "nothing is called before the approval"
    decided = tenant.post(f"/approvals/{approval['id']}", json={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    run = wait_for(tenant, launched.json()["id"], timeout=120)
    assert run["status"] == "succeeded", run
    assert "mcp__demo__echo: echo: approved" in run["output"], "the model received the tool's result"
    assert demo.calls.count("echo") == echoes + 1

    denied_run = launch(tenant, agent["id"], 'Ask again.\n/tool mcp__demo__echo {"text": "no"}').json()
    denied = pending_approval(tenant, denied_run["id"])
    assert tenant.post(f"/approvals/{denied['id']}", json={"decision": "deny", "reason": "not now"}).status_code == 200
    run = wait_for(tenant, denied_run["id"], timeout=120)
    assert run["status"] == "succeeded" and tool_results(tenant, run["id"])[0]["is_error"]
    assert demo.calls.count("echo") == echoes + 1, "a denied call never reaches the server"


def test_a_server_that_refuses_without_its_header_is_stored_with_a_failed_status(api, demo):
    tenant = signup(api, tag="mcp-nohdr", tier="pro")
    created = register(tenant, "demo", demo.url)
    assert created.status_code == 201, created.text
    status = created.json()["status"]
    assert status["state"] == "failed" and status["message"] and created.json()["tools"] == []


# --------------------------------------------------------------------------- calls that fail


def test_slow_failing_and_oversized_tools_are_is_error_results_and_the_run_goes_on(api, cloud, demo):
    tenant = signup(api, tag="mcp-faults", tier="pro")
    with services_with({"mcp_timeout_seconds": 2, "mcp_max_result_chars": 1_000}):
        assert register(tenant, "demo", demo.url, {"Authorization": f"Bearer {TOKEN}"}).status_code == 201
        names = ["mcp__demo__slow", "mcp__demo__fail", "mcp__demo__huge", "mcp__demo__echo"]
        agent = mcp_agent(tenant, "tester", names)
        run = run_tools(tenant, agent["id"], [("mcp__demo__slow", {"seconds": 30}), ("mcp__demo__fail", {}),
                                              ("mcp__demo__huge", {"chars": 5_000}),
                                              ("mcp__demo__echo", {"text": "still here"})])
    assert run["status"] == "succeeded", run
    results = {r["name"]: r for r in tool_results(tenant, run["id"])}
    assert results["mcp__demo__slow"]["is_error"] and "in time" in results["mcp__demo__slow"]["content"]
    assert results["mcp__demo__fail"]["is_error"]
    assert results["mcp__demo__huge"]["is_error"] and "too large" in results["mcp__demo__huge"]["content"]
    assert results["mcp__demo__echo"] == {**results["mcp__demo__echo"], "is_error": False,
                                          "content": "echo: still here"}
    assert run["usage"]["tool_calls"] == 4
    ledger = [i["entry"] for i in table_items(cloud) if i.get("pk", "").startswith(f"WS#{tenant.workspace_id}#RUN#")
              and str(i.get("entry", "")).startswith("tool#")]
    assert len(ledger) == 4 and all(e.startswith("tool#mcp#demo#") for e in ledger), ledger


def test_a_run_makes_at_most_its_tiers_mcp_calls(api, demo):
    tenant = signup(api, tag="mcp-calls", tier="pro")
    assert tenant.get("").json()["limits"]["mcp_calls_per_run"] == 100
    set_tier(api, tenant.workspace_id, "enterprise", limit_overrides={"mcp_calls_per_run": 3})
    assert tenant.get("").json()["limits"]["mcp_calls_per_run"] == 3
    assert register(tenant, "demo", demo.url, {"Authorization": f"Bearer {TOKEN}"}).status_code == 201
    agent = mcp_agent(tenant, "caller", ["mcp__demo__add", "calculator"])
    calls = [{"name": "mcp__demo__add", "input": {"a": i, "b": 1}} for i in range(5)]
    launched = launch(tenant, agent["id"], "Add.\n/tools " + json.dumps(
        [*calls[:2], {"name": "calculator", "input": {"expression": "1 + 1"}}, *calls[2:]]))
    assert launched.status_code == 202, launched.text
    run = wait_for(tenant, launched.json()["id"], timeout=180)
    assert run["status"] == "succeeded", run
    results = [r for r in tool_results(tenant, run["id"]) if r["name"] == "mcp__demo__add"]
    assert [r["content"] for r in results[:3]] == ["1", "2", "3"] and not any(r["is_error"] for r in results[:3])
    assert all(r["is_error"] and "most its plan allows per run (3)" in r["content"] for r in results[3:])
    assert len(results) == 5 and run["usage"]["tool_calls"] == 6  # refused calls are answered, and counted


# --------------------------------------------------------------------------- refresh


def test_refresh_picks_up_a_changed_tool_list(api):
    changing = McpDemo().start()
    try:
        tenant = signup(api, tag="mcp-refresh", tier="pro")
        server = register(tenant, "changing", changing.url).json()
        assert "mcp__changing__add" in [t["name"] for t in server["tools"]]
        agent = mcp_agent(tenant, "adder", ["mcp__changing__add"])
        changing.change_tools()
        assert_error(tenant.post("/agents", json={"name": "early", "personality": "sre",
                                                  "tools": ["mcp__changing__extra"]}), 400, "invalid_request")
        refreshed = tenant.post(f"/mcp-servers/{server['id']}/refresh")
        assert refreshed.status_code == 200, refreshed.text
        names = [t["name"] for t in refreshed.json()["tools"]]
        assert "mcp__changing__extra" in names and "mcp__changing__add" not in names
        assert refreshed.json()["status"]["checked_at"] >= server["status"]["checked_at"]
        later = mcp_agent(tenant, "later", ["mcp__changing__extra"])
        run = run_tools(tenant, agent["id"], [("mcp__changing__add", {"a": 1, "b": 2})])
        assert run["status"] == "succeeded", run  # its tool is gone: no longer offered to the model
        assert tool_results(tenant, run["id"]) == []
        run = run_tools(tenant, later["id"], [("mcp__changing__extra", {"note": "new"})])
        assert "mcp__changing__extra: extra: new" in run["output"], run
    finally:
        changing.stop()


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize("url", [
    "http://10.1.2.3/mcp", "http://192.168.0.10:8080/mcp", "http://169.254.169.254/latest",
    "http://[::ffff:169.254.169.254]/mcp", "http://[fd00::1]/mcp", "ftp://example.com/mcp"])
def test_registering_a_private_or_link_local_address_is_refused(api, url):
    tenant = signup(api, tag="mcp-private", tier="pro")
    refused = register(tenant, "inside", url)
    error = assert_error(refused, 400, "invalid_request")
    assert error["details"][0]["field"] in ("url", "body.url")
    assert tenant.get("/mcp-servers").json()["items"] == []


def test_with_the_aws_setting_loopback_is_refused_at_registration_and_at_call(api, demo):
    tenant = signup(api, tag="mcp-aws", tier="pro")
    assert register(tenant, "demo", demo.url, {"Authorization": f"Bearer {TOKEN}"}).status_code == 201
    agent = mcp_agent(tenant, "caller", ["mcp__demo__echo"])
    with services_with({"outbound_allow_loopback": False}):
        refused = [register(tenant, "again", url, {"Authorization": f"Bearer {TOKEN}"}) for url in (
            demo.url, f"https://127.0.0.1:{demo.port}/mcp", f"https://localhost:{demo.port}/mcp",
            f"https://[::1]:{demo.port}/mcp")]
        run = run_tools(tenant, agent["id"], [("mcp__demo__echo", {"text": "x"})])
    messages = [assert_error(r, 400, "invalid_request")["details"][0]["message"] for r in refused]
    assert "https" in messages[0] and all("loopback" in m for m in messages[1:]), messages
    assert run["status"] == "succeeded", run
    result = tool_results(tenant, run["id"])[0]
    assert result["is_error"] and "not reached" in result["content"], result
    assert tenant.get("/mcp-servers").json()["items"][0]["name"] == "demo"  # only the one registered before


def test_a_redirect_to_link_local_space_is_not_followed(api, demo):
    tenant = signup(api, tag="mcp-redirect", tier="pro")
    created = register(tenant, "bouncer", demo.url.replace("/mcp", "/to-private"),
                       {"Authorization": f"Bearer {TOKEN}"})
    assert created.status_code == 201, created.text
    assert created.json()["tools"] == [] and created.json()["status"]["state"] == "failed"
    assert "169.254.169.254" in created.json()["status"]["message"]
    assert "not followed" in created.json()["status"]["message"]


def test_a_server_that_redirects_to_link_local_space_at_call_time_is_not_followed(api, demo):
    tenant = signup(api, tag="mcp-redirect-call", tier="pro")
    assert register(tenant, "demo", demo.url, {"Authorization": f"Bearer {TOKEN}"}).json()["status"]["state"] == "ok"
    agent = mcp_agent(tenant, "caller", ["mcp__demo__echo"])
    echoes = demo.calls.count("echo")
    demo.redirect_to = "http://169.254.169.254/latest/meta-data/"
    try:
        run = run_tools(tenant, agent["id"], [("mcp__demo__echo", {"text": "x"})])
    finally:
        demo.redirect_to = None
    assert run["status"] == "succeeded", run
    result = tool_results(tenant, run["id"])[0]
    assert result["is_error"] and "169.254.169.254" in result["content"] and "not followed" in result["content"]
    assert demo.calls.count("echo") == echoes


def test_a_server_whose_secret_is_gone_gives_an_is_error_result_not_a_failed_run(api, cloud, demo):
    tenant = signup(api, tag="mcp-nosecret", tier="pro")
    server = register(tenant, "demo", demo.url, {"Authorization": f"Bearer {TOKEN}"}).json()
    agent = mcp_agent(tenant, "caller", ["mcp__demo__echo"])
    [stored] = [i for i in table_items(cloud) if i.get("sk") == f"MCP#{server['id']}"]
    cloud.client("secretsmanager").delete_secret(SecretId=stored["secret_arn"], ForceDeleteWithoutRecovery=True)
    run = run_tools(tenant, agent["id"], [("mcp__demo__echo", {"text": "x"})])
    assert run["status"] == "succeeded", run
    result = tool_results(tenant, run["id"])[0]
    assert result["is_error"] and "headers could not be read" in result["content"]


class Rebinding:
    """A resolver for ``rebind.test``: loopback (allowed by the local cloud's setting) until
    ``flip``, then a private address — or private from the ``after``-th lookup on."""

    def __init__(self, after: int | None = None) -> None:
        self.lookups = 0
        self.after = after
        self.private = False

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups += 1
        if host != "rebind.test":
            return ["203.0.113.1"]
        if self.private or (self.after is not None and self.lookups > self.after):
            return ["10.0.0.7"]
        return ["127.0.0.1"]


def connector(resolver: Rebinding) -> SdkConnector:
    return SdkConnector(OutboundPolicy(allow_loopback=True, timeout_seconds=5), resolver=resolver,
                        timeout_seconds=5, max_result_chars=16_000)


def test_dns_rebinding_is_refused_at_registration_and_at_call(api, demo):
    tenant = signup(api, tag="mcp-rebind", tier="pro")
    url = f"http://rebind.test:{demo.port}/mcp"
    at_registration = Rebinding(after=1)  # the URL check sees loopback; the connection then resolves private
    with services_with(mcp_connector=connector(at_registration)):
        created = register(tenant, "rebound", url, {"Authorization": f"Bearer {TOKEN}"})
    assert created.status_code == 201, created.text
    assert created.json()["status"]["state"] == "failed" and "private" in created.json()["status"]["message"]
    assert created.json()["tools"] == []

    later = Rebinding()
    with services_with(mcp_connector=connector(later)):
        server = register(tenant, "steady", url, {"Authorization": f"Bearer {TOKEN}"}).json()
        assert server["status"]["state"] == "ok", server["status"]
        agent = mcp_agent(tenant, "caller", ["mcp__steady__echo"])
        later.private = True
        run = run_tools(tenant, agent["id"], [("mcp__steady__echo", {"text": "x"})])
    assert run["status"] == "succeeded", run
    result = tool_results(tenant, run["id"])[0]
    assert result["is_error"] and "private" in result["content"]


# --------------------------------------------------------------------------- limits and input


def test_the_free_tier_registers_one_server_even_when_asked_in_parallel(api, demo):
    tenant = signup(api, tag="mcp-free")
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: register(tenant, f"demo{i}", demo.url,
                                                   {"Authorization": f"Bearer {TOKEN}"}), range(4)))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) == 1 and all(c in (403, 429) for c in codes if c != 201), [a.text for a in answers]
    assert len(tenant.get("/mcp-servers").json()["items"]) == 1
    usage = tenant.get("/usage").json()["limits"]["mcp_servers"]
    assert usage == {"period": None, "used": 1, "limit": 1, "percent": 100.0, "resets_at": None}


def test_names_and_headers_are_checked(api, demo):
    tenant = signup(api, tag="mcp-input", tier="pro")
    for body in ({"name": "Has_Underscore", "url": demo.url}, {"name": "ok", "url": "not a url"},
                 {"name": "ok", "url": demo.url, "headers": {"Host": "evil"}},
                 {"name": "ok", "url": demo.url, "headers": {"X-Key": "line\nbreak"}},
                 {"name": "ok", "url": demo.url, "extra": 1},
                 {"name": "ok", "url": demo.url, "headers": {"X-Key": "s3cret-" + "v" * 5000}}):
        refused = tenant.post("/mcp-servers", json=body)
        assert_error(refused, 400)
        assert "break" not in refused.text and "s3cret" not in refused.text, "a header value is never echoed"
    assert register(tenant, "twice", demo.url, {"Authorization": f"Bearer {TOKEN}"}).status_code == 201
    assert_error(register(tenant, "twice", demo.url), 409, "conflict")
    deleted = tenant.get("/mcp-servers").json()["items"][0]["id"]
    assert tenant.api.delete(tenant.path(f"/mcp-servers/{deleted}"), headers=tenant.headers).status_code == 204
    assert_error(tenant.get(f"/mcp-servers/{deleted}"), 404, "not_found")
    assert register(tenant, "twice", demo.url, {"Authorization": f"Bearer {TOKEN}"}).status_code == 201


# --------------------------------------------------------------------------- isolation


def test_another_workspaces_servers_are_404_and_its_tools_cannot_be_named(cloud, demo):
    with client_for(cloud) as client:
        a = signup(client, tag="mcp-iso-a", tier="pro")
        b = signup(client, tag="mcp-iso-b", tier="pro")
        server = register(a, "private", demo.url, {"Authorization": f"Bearer {TOKEN}"}).json()
        for response in (b.get(f"/mcp-servers/{server['id']}"), b.post(f"/mcp-servers/{server['id']}/refresh"),
                         b.api.delete(b.path(f"/mcp-servers/{server['id']}"), headers=b.headers)):
            assert_error(response, 404, "not_found")
        assert b.get("/mcp-servers").json()["items"] == []
        refused = b.post("/agents", json={"name": "thief", "personality": "sre", "tools": ["mcp__private__echo"]})
        assert_error(refused, 400, "invalid_request")
        mine = create_agent(b, "mine", "sre", tools=["calculator"])
        patched = b.api.patch(b.path(f"/agents/{mine['id']}"), headers=b.headers,
                              json={"tools": ["mcp__private__echo"]})
        assert_error(patched, 400, "invalid_request")
        assert a.get(f"/mcp-servers/{server['id']}").status_code == 200
