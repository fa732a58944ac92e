"""Tool policies (agenthq.approvals.policies): the defaults the engine and the MCP tools rely on."""

from __future__ import annotations

from agenthq.approvals.gate import approval_id, asks
from agenthq.approvals.policies import default_policy, policy_of, unknown_tools


def test_built_ins_default_to_allow_and_mcp_tools_to_ask():
    assert default_policy("calculator") == "allow"
    assert default_policy("mcp__github__create_issue") == "ask"
    assert default_policy("mcp_not_a_server_tool") == "allow"  # only the `mcp__` prefix names an MCP tool


def test_an_agents_policy_wins_over_the_default():
    agent = {"tools": ["calculator", "mcp__db__drop"], "tool_policies": {"calculator": "deny", "mcp__db__drop": "allow"}}
    assert policy_of(agent, "calculator") == "deny"
    assert policy_of(agent, "mcp__db__drop") == "allow"
    assert policy_of({"tools": ["mcp__db__read"]}, "mcp__db__read") == "ask"  # a run snapshot from before policies


def test_policies_may_name_only_the_agents_tools():
    assert unknown_tools({"calculator": "ask", "notes_write": "deny"}, ["calculator"]) == ["notes_write"]
    assert unknown_tools({}, []) == []


def test_only_calls_of_tools_the_agent_has_wait_for_a_person():
    agent = {"tools": ["calculator", "mcp__db__drop"], "tool_policies": {"calculator": "ask"}}
    uses = [{"id": "a", "name": "calculator"}, {"id": "b", "name": "mcp__db__drop"},
            {"id": "c", "name": "current_time"}, {"id": "d", "name": "mcp__other__x"}]
    assert [u["id"] for u in asks(agent, uses)] == ["a", "b"]  # d: not the agent's tool, refused as ever


def test_one_approval_per_tool_call_whatever_retries_the_step():
    run = "01JABCDEFGHJKMNPQRSTVWXYZ0"
    assert approval_id(run, "toolu_1") == approval_id(run, "toolu_1") != approval_id(run, "toolu_2")
