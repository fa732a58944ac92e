"""The stateful built-in tools, run through ``ToolRegistry.execute`` with a real
``ToolContext`` against the session cloud's DynamoDB, inside signed-up workspaces."""

from __future__ import annotations

import time

import pytest

from agenthq import ids
from agenthq.messaging import take_inbox
from agenthq.services import get_services
from agenthq.store import tenant_scope
from agenthq.store.items import AgentMessage, Note
from agenthq.tools.catalog import BUILTIN_TOOL_NAMES, STATEFUL_TOOL_NAMES, run_registry
from agenthq.tools.registry import ToolContext
from tests.support import assert_error, client_for, signup

ALL_TOOLS = list(BUILTIN_TOOL_NAMES)


@pytest.fixture(scope="module")
def team(cloud):
    """Workspace A with agents Alice and Bob; workspace B with Carol."""
    with client_for(cloud) as client:
        a = signup(client, tag="tools-a", workspace_name="A Tools", tier="pro")
        b = signup(client, tag="tools-b", workspace_name="B Tools", tier="pro")
        time.sleep(1.1)  # the gateway sees the pro plans
        agents = {}
        for tenant, name in ((a, "Alice"), (a, "Bob"), (b, "Carol")):
            response = tenant.post("/agents", json={"name": name, "personality": "coordinator"})
            assert response.status_code == 201, response.text
            agents[name] = response.json()["id"]
        yield a, b, agents


def context(workspace_id: str, agent_id: str, run_id: str | None = None, call_id: str = "toolu_01") -> ToolContext:
    return ToolContext(workspace_id=workspace_id, run_id=run_id or ids.new_id(), agent_id=agent_id, depth=0,
                       clock=get_services(), call_id=call_id)


def inbox(workspace_id: str, agent_id: str) -> list[AgentMessage]:
    with tenant_scope(workspace_id):
        return list(AgentMessage.gsi1.query(AgentMessage.inbox(workspace_id, agent_id)))


def test_the_run_registry_has_every_built_in_tool():
    registry = run_registry()
    assert registry.names() == sorted(BUILTIN_TOOL_NAMES)
    for name in STATEFUL_TOOL_NAMES:
        tool = registry.get(name)
        assert tool.kind == "stateful" and len(tool.description) > 100
    assert [d["name"] for d in registry.definitions(STATEFUL_TOOL_NAMES)] == list(STATEFUL_TOOL_NAMES)


def test_notes_are_written_read_listed_and_replaced(team):
    a, _, agents = team
    registry = run_registry()
    ctx = context(a.workspace_id, agents["Alice"])
    written = registry.execute("notes_write", {"name": "adr-001", "content": "Use DynamoDB."}, ctx, ALL_TOOLS)
    assert not written.is_error and written.content == "Saved note 'adr-001' (13 characters)."
    assert registry.execute("notes_write", {"name": "plan.q3", "content": ""}, ctx, ALL_TOOLS).is_error is False

    read = registry.execute("notes_read", {"name": "adr-001"}, ctx, ALL_TOOLS)
    assert not read.is_error and '"content": "Use DynamoDB."' in read.content
    listed = registry.execute("notes_read", {}, ctx, ALL_TOOLS)
    assert listed.content == '{"notes": ["adr-001", "plan.q3"], "count": 2}'

    later = context(a.workspace_id, agents["Bob"])
    registry.execute("notes_write", {"name": "adr-001", "content": "Use DynamoDB, one table."}, later, ALL_TOOLS)
    assert '"content": "Use DynamoDB, one table."' in registry.execute("notes_read", {"name": "adr-001"}, ctx,
                                                                       ALL_TOOLS).content
    with tenant_scope(a.workspace_id):
        note = Note.get(*Note.key(a.workspace_id, "adr-001"), consistent_read=True)
    assert note.updated_by_run == later.run_id

    missing = registry.execute("notes_read", {"name": "adr-999"}, ctx, ALL_TOOLS)
    assert missing.is_error and "no note named 'adr-999'" in missing.content


@pytest.mark.parametrize("name", ["ADR", "../secrets", "-lead", "a b", "x" * 65, "", "note\n", "wörk"])
def test_invalid_note_names_are_tool_errors(team, name):
    a, _, agents = team
    registry = run_registry()
    ctx = context(a.workspace_id, agents["Alice"])
    for tool, body in (("notes_write", {"name": name, "content": "x"}), ("notes_read", {"name": name})):
        result = registry.execute(tool, body, ctx, ALL_TOOLS)
        assert result.is_error, (tool, name)
        assert "name" in result.content


def test_send_message_is_stored_once_per_tool_call_and_taken_once(cloud, team):
    a, _, agents = team
    registry = run_registry()
    sender = context(a.workspace_id, agents["Alice"], call_id="toolu_send_1")
    first = registry.execute("send_message", {"to_agent": "bob", "body": "Deploy at noon."}, sender, ALL_TOOLS)
    again = registry.execute("send_message", {"to_agent": "bob", "body": "Deploy at noon."}, sender, ALL_TOOLS)
    assert not first.is_error and again.content == first.content, (first, again)
    assert len(inbox(a.workspace_id, agents["Bob"])) == 1
    by_id = context(a.workspace_id, agents["Alice"], run_id=sender.run_id, call_id="toolu_send_2")
    assert not registry.execute("send_message", {"to_agent": agents["Bob"], "body": "And the docs."}, by_id,
                                ALL_TOOLS).is_error
    stored = inbox(a.workspace_id, agents["Bob"])
    assert sorted(m.body for m in stored) == ["And the docs.", "Deploy at noon."]
    assert {(m.from_agent_id, m.from_run_id, m.to_agent_id) for m in stored} == {
        (agents["Alice"], sender.run_id, agents["Bob"])}

    unknown = registry.execute("send_message", {"to_agent": "Zed", "body": "hi"},
                               context(a.workspace_id, agents["Alice"], call_id="toolu_unknown"), ALL_TOOLS)
    assert unknown.is_error and "No agent" in unknown.content
    to_self = registry.execute("send_message", {"to_agent": "Alice", "body": "hi"},
                               context(a.workspace_id, agents["Alice"], call_id="toolu_self"), ALL_TOOLS)
    assert to_self.is_error and "itself" in to_self.content
    too_long = registry.execute("send_message", {"to_agent": "Bob", "body": "x" * 10_001},
                                context(a.workspace_id, agents["Alice"], call_id="toolu_long"), ALL_TOOLS)
    assert too_long.is_error

    # Bob's next run takes both, oldest first; nobody else gets them; a retry of that run's start does
    bob_run, other_run = ids.new_id(), ids.new_id()
    taken = take_inbox(a.workspace_id, agents["Bob"], bob_run)
    assert [m.body for m in taken] == ["Deploy at noon.", "And the docs."]
    assert take_inbox(a.workspace_id, agents["Bob"], other_run) == []
    assert [m.id for m in take_inbox(a.workspace_id, agents["Bob"], bob_run)] == [m.id for m in taken]
    assert {m.delivered_run_id for m in inbox(a.workspace_id, agents["Bob"])} == {bob_run}
    assert take_inbox(a.workspace_id, agents["Alice"], bob_run) == []

    # ... and the workspace sees them at GET /messages, by recipient too
    with client_for(cloud) as client:
        everything = client.get(a.path("/messages"), headers=a.headers)
        assert everything.status_code == 200, everything.text
        ids_sent = {m.id for m in taken}
        assert ids_sent <= {m["id"] for m in everything.json()["items"]}
        bobs = client.get(a.path("/messages"), headers=a.headers, params={"agent_id": agents["Bob"]}).json()
        assert {m["id"] for m in bobs["items"]} == ids_sent
        assert all(m["delivered_run_id"] == bob_run and m["to_agent_id"] == agents["Bob"] for m in bobs["items"])
        assert client.get(a.path("/messages"), headers=a.headers,
                          params={"agent_id": agents["Alice"]}).json()["items"] == []
        one = client.get(a.path("/messages"), headers=a.headers, params={"agent_id": agents["Bob"], "limit": 1})
        rest = client.get(a.path("/messages"), headers=a.headers,
                          params={"agent_id": agents["Bob"], "cursor": one.json()["next_cursor"]})
        assert {m["id"] for m in one.json()["items"] + rest.json()["items"]} == ids_sent
        assert_error(client.get(a.path("/messages"), headers=a.headers, params={"agent_id": "bob"}), 400)


def test_a_tool_never_reaches_another_workspace(team):
    a, b, agents = team
    registry = run_registry()
    in_a = context(a.workspace_id, agents["Alice"], call_id="toolu_cross")
    for ref in ("Carol", agents["Carol"]):
        result = registry.execute("send_message", {"to_agent": ref, "body": "psst"}, in_a, ALL_TOOLS)
        assert result.is_error and "No agent" in result.content
    assert inbox(b.workspace_id, agents["Carol"]) == []

    in_b = context(b.workspace_id, agents["Carol"])
    assert not registry.execute("notes_write", {"name": "b-secret", "content": "B only"}, in_b, ALL_TOOLS).is_error
    assert "b-secret" not in registry.execute("notes_read", {}, in_a, ALL_TOOLS).content
    assert registry.execute("notes_read", {"name": "b-secret"}, in_a, ALL_TOOLS).is_error


def test_delegate_is_only_a_definition_here(team):
    a, _, agents = team
    result = run_registry().execute("delegate", {"agent": "Bob", "input": "Review this."},
                                    context(a.workspace_id, agents["Alice"]), ALL_TOOLS)
    assert result.is_error and result.content == "delegate is run by the run engine"
