"""What an agent version is, how one is made, and how an agent is loaded at one.

A version holds the agent's **whole definition**: every attribute of the Agent
item except its bookkeeping (:data:`BOOKKEEPING`: keys, id, workspace, times,
the version counter), copied as DynamoDB stores them into one map
(``AgentVersion.definition``). An attribute someone adds to the Agent item
(tool policies, MCP tools, …) is part of every version made after, without a
change here; loading a version rebuilds an ``Agent`` from that map, so the
code that runs an agent (``runs.launch.create_run_record``) takes an agent at
any version exactly as it takes the current one.

The version counter is ``Agent.version``. A change writes the agent item on
the condition that its version is still the one read, and the new
``AgentVersion`` item on the condition that it does not exist, in one
transaction (``agenthq.agents``): concurrent changes each get their own
number, none is lost, none is written twice.

An agent keeps its last :data:`KEPT_VERSIONS` versions; an older one is gone (404).

An agent made before versions were kept has no counter: its version 1 is the
agent item itself (:func:`current_version`), written as a version item by its
first change, in that change's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agenthq.agent_lookup import load_agent
from agenthq.errors import NotFound
from agenthq.store.items import Agent, AgentVersion

#: Attributes of the Agent item that are not part of its definition.
BOOKKEEPING = frozenset({"pk", "sk", "type", "gsi1pk", "gsi1sk", "expires_at",
                         "id", "workspace_id", "created_at", "updated_at", "version"})

CREATE, UPDATE, ROLLBACK = "create", "update", "rollback"

#: How many versions an agent keeps: the change that makes version n deletes version n - KEPT_VERSIONS, in its
#: own transaction (as SSM Parameter Store keeps a parameter's last 100), so what a tenant can store is bounded
#: (agents × KEPT_VERSIONS × one agent's size) however often it changes its agents.
KEPT_VERSIONS = 100


def definition_of(agent: Agent) -> dict[str, Any]:
    """The agent's definition: its attributes but the bookkeeping, as DynamoDB stores them."""
    return {name: value for name, value in agent.serialize(null_check=False).items() if name not in BOOKKEEPING}


def same_definition(one: Agent, other: Agent) -> bool:
    """Whether two agents are defined alike, compared as values (a map's keys in any order are one map)."""
    def values(agent: Agent) -> dict[str, Any]:
        return {name: getattr(agent, name) for name, attribute in agent.get_attributes().items()
                if attribute.attr_name not in BOOKKEEPING}
    return values(one) == values(other)


def current_version(agent: Agent) -> int:
    """The agent's current version (1 for an agent made before versions were kept)."""
    return int(agent.version) if agent.version is not None else 1


def version_item(agent: Agent, version: int, *, change: str, at: datetime, created_by: str | None,
                 restored_version: int | None = None) -> AgentVersion:
    """The version ``version`` of the agent, holding the agent's definition as it is now."""
    return AgentVersion(*AgentVersion.key(agent.workspace_id, agent.id, version), agent_id=agent.id,
                        version=version, definition=definition_of(agent), change=change,
                        restored_version=restored_version, created_by=created_by, created_at=at)


def with_definition(agent: Agent, definition: dict[str, Any], version: int, updated_at: datetime) -> Agent:
    """The agent (same id, workspace and creation time) with another definition, at ``version``."""
    rebuilt = Agent.from_raw_data(definition)
    rebuilt.pk, rebuilt.sk = agent.pk, agent.sk
    rebuilt.id, rebuilt.workspace_id, rebuilt.created_at = agent.id, agent.workspace_id, agent.created_at
    rebuilt.updated_at, rebuilt.version = updated_at, version
    return rebuilt


def load_version(workspace_id: str, agent: Agent, version: int) -> AgentVersion:
    """The agent's version ``version``; :class:`NotFound` otherwise. For an agent made before versions
    were kept, its version 1 is made from the agent item (never stored by a read)."""
    if agent.version is None:
        if version == 1:
            return version_item(agent, 1, change=CREATE, at=agent.updated_at, created_by=None)
        raise NotFound("No such version of this agent.")
    if not 1 <= version <= int(agent.version):
        raise NotFound("No such version of this agent.")
    return AgentVersion.get_or_404(*AgentVersion.key(workspace_id, agent.id, version), "No such version of this agent.")


def load_agent_version(workspace_id: str, agent_id: str, version: int | None = None) -> Agent:
    """The workspace's agent ``agent_id`` as it was at ``version`` (None: as it is now), ready to launch
    a run with (``runs.launch.create_run_record``, which records the version on the run).

    :class:`NotFound` (404) when the agent does not exist (a deleted agent's versions are gone with it)
    or has no such version. Call it inside ``tenant_scope(workspace_id)``."""
    agent = load_agent(workspace_id, agent_id)
    if version is None or version == current_version(agent):
        return agent  # the item and its current version were written together: the same definition
    item = load_version(workspace_id, agent, version)
    return with_definition(agent, item.definition, version, item.created_at)
