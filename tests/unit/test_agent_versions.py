"""What an agent version holds (no DynamoDB needed): the agent's whole definition, whatever
attributes the Agent item has — a field another feature adds is carried without a change here."""

from __future__ import annotations

from datetime import UTC, datetime

from agenthq.store.items import Agent, AgentVersion
from agenthq.store.sizes import Utf8JSONAttribute
from agenthq.versions.records import (
    BOOKKEEPING,
    CREATE,
    current_version,
    definition_of,
    same_definition,
    version_item,
    with_definition,
)

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class AgentWithPolicies(Agent):
    """The Agent item as a later feature extends it (tool approvals add ``tool_policies``)."""

    tool_policies = Utf8JSONAttribute(null=True)


def agent(cls: type[Agent] = Agent, **fields) -> Agent:
    defaults = {"name": "sre-bot", "personality": "sre", "model": "claude-haiku-5-5", "tools": ["calculator"],
                "max_steps": 20, "budget_usd": "1.00"}
    return cls(*Agent.key("01WORKSPACE000000000000000", "01AGENT0000000000000000000"), id="01AGENT0000000000000000000",
               workspace_id="01WORKSPACE000000000000000", created_at=AT, updated_at=AT, version=3,
               **{**defaults, **fields})


def test_the_definition_is_every_attribute_but_the_bookkeeping():
    definition = definition_of(agent(system_prompt="Be brief."))
    assert set(definition) == {"name", "personality", "system_prompt", "model", "tools", "max_steps", "budget_usd"}
    assert BOOKKEEPING.isdisjoint(definition)
    assert definition["tools"] == {"S": '["calculator"]'} and definition["max_steps"] == {"N": "20"}
    assert "system_prompt" not in definition_of(agent()), "no own prompt: nothing stored for it"


def test_a_field_added_to_the_agent_is_in_its_versions_and_comes_back():
    extended = agent(AgentWithPolicies, tool_policies={"calculator": "ask"})
    item = version_item(extended, 3, change=CREATE, at=AT, created_by="01USER")
    assert item.definition["tool_policies"] == {"S": '{"calculator": "ask"}'}
    assert isinstance(item, AgentVersion) and item.sk.endswith("#0000000003")
    back = AgentWithPolicies.from_raw_data(item.definition)
    assert back.tool_policies == {"calculator": "ask"} and back.tools == ["calculator"]


def test_an_agent_at_another_version_keeps_its_identity_and_takes_that_definition():
    now = agent(system_prompt="Now.")
    older = definition_of(agent(system_prompt="Before.", tools=[]))
    rebuilt = with_definition(now, older, 1, AT)
    assert (rebuilt.id, rebuilt.workspace_id, rebuilt.pk, rebuilt.sk) == (now.id, now.workspace_id, now.pk, now.sk)
    assert (rebuilt.system_prompt, rebuilt.tools, rebuilt.version) == ("Before.", [], 1)
    assert definition_of(rebuilt) == older


def test_an_agent_made_before_versions_is_at_version_1():
    legacy = agent()
    legacy.version = None
    assert current_version(legacy) == 1 and current_version(agent()) == 3


def test_agents_are_defined_alike_when_their_values_are_whatever_the_order_of_a_maps_keys():
    one = agent(AgentWithPolicies, tool_policies={"calculator": "ask", "notes_read": "allow"})
    other = agent(AgentWithPolicies, tool_policies={"notes_read": "allow", "calculator": "ask"})
    other.updated_at, other.version = datetime(2027, 1, 1, tzinfo=UTC), 9  # bookkeeping is not the definition
    assert same_definition(one, other)
    assert not same_definition(one, agent(AgentWithPolicies, tool_policies={"calculator": "deny"}))
    assert not same_definition(agent(tools=["a", "b"]), agent(tools=["b", "a"])), "tools are in order"
