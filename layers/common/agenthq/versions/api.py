"""Agent versions as the HTTP API sees them: list (newest first), read one,
roll back (a new version equal to an earlier one).

Every read loads the agent first, in the caller's workspace: another
workspace's agent, a deleted agent and a version it never had are all 404.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agenthq.agent_lookup import load_agent
from agenthq.agents import AgentUpdate, agent_view, change_agent
from agenthq.clock import Clock
from agenthq.context import Principal, Scope
from agenthq.errors import Conflict, NotFound
from agenthq.pagination import Page, decode_cursor, page
from agenthq.store import tenant_scope
from agenthq.store.items import Agent, AgentVersion
from agenthq.versions.records import ROLLBACK, load_version, with_definition

_MAX_VERSION_DIGITS = 10  # as the versions' sort keys hold them

#: What a version's ``definition`` leaves out of the agent's view: the agent's, not the version's.
_NOT_DEFINITION = ("id", "workspace_id", "version", "created_at", "updated_at")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 1}]})

    version: int = Field(ge=1, le=10**9, strict=True, description="The version to make current again.")


def version_view(agent: Agent, item: AgentVersion) -> dict[str, Any]:
    """A version as the API shows it; its ``definition`` is the agent's view at that version (so a field
    the agent's view gains shows in every version), less what is the agent's rather than the version's."""
    at_version = with_definition(agent, item.definition, int(item.version), item.created_at)
    view = agent_view(at_version)
    return {
        "agent_id": agent.id,
        "workspace_id": agent.workspace_id,
        "version": int(item.version),
        "change": item.change,
        "restored_version": int(item.restored_version) if item.restored_version is not None else None,
        "created_by": item.created_by,
        "created_at": item.created_at.isoformat(),
        "definition": {name: value for name, value in view.items() if name not in _NOT_DEFINITION},
    }


def list_versions(principal: Principal, agent_id: str, cursor: str | None, limit: int) -> Page:
    """The agent's versions, newest first."""
    principal.require(Scope.agents_read)
    workspace_id = principal.workspace_id
    with tenant_scope(workspace_id):
        agent = load_agent(workspace_id, agent_id)
        partition, prefix = agent.pk, AgentVersion.prefix(agent.id)
        if agent.version is None:  # made before versions were kept: its one version is the item itself
            first = decode_cursor(cursor, partition=partition, sk_prefix=prefix) is None
            return Page(items=[version_view(agent, load_version(workspace_id, agent, 1))] if first else [])
        return page(lambda start: AgentVersion.query(partition, AgentVersion.sk.startswith(prefix), limit=limit,
                                                     last_evaluated_key=start, scan_index_forward=False),
                    lambda item: version_view(agent, item), cursor, partition=partition, sk_prefix=prefix)


def get_version(principal: Principal, agent_id: str, version: str) -> dict[str, Any]:
    """One version. ``version`` is the path's text: one that is not a version number names no version (404)."""
    principal.require(Scope.agents_read)
    workspace_id = principal.workspace_id
    with tenant_scope(workspace_id):
        agent = load_agent(workspace_id, agent_id)
        if not (version.isascii() and version.isdigit() and len(version) <= _MAX_VERSION_DIGITS):
            raise NotFound("No such version of this agent.")
        return version_view(agent, load_version(workspace_id, agent, int(version)))


def rollback(clock: Clock, principal: Principal, agent_id: str, request: RollbackRequest) -> dict[str, Any]:
    """Make the agent's version ``request.version`` current again, as a new version (the agent's history
    only grows). Rolling back to what the agent already is makes no version (a retried rollback makes
    one). 404 for a version the agent never had; 409 when its name is now another agent's."""
    principal.require(Scope.agents_write)
    workspace_id = principal.workspace_id

    def restored(agent: Agent) -> Agent:
        item = load_version(workspace_id, agent, request.version)
        rebuilt = with_definition(agent, item.definition, int(agent.version or 1), agent.updated_at)
        _ensure_valid_today(rebuilt, request.version)
        return rebuilt

    return change_agent(clock, principal, agent_id, restored, change=ROLLBACK, restored_version=request.version)



def _ensure_valid_today(agent: Agent, version: int) -> None:
    """A version is restored only if it is still a valid agent: what it names (a model, a tool) may have
    been retired since it was made. Checked by the same edge model a PATCH is (``AgentUpdate``), with
    every field it knows, so a check added there holds here too. Else 409, naming the fields."""
    view = agent_view(agent)
    fields = {name: view[name] for name in AgentUpdate.model_fields if name in view and name != "system_prompt"}
    if view.get("own_system_prompt"):
        fields["system_prompt"] = view["system_prompt"]
    try:
        AgentUpdate.model_validate(fields)
    except ValidationError as invalid:
        raise Conflict(f"Version {version} cannot be restored: it is no longer a valid agent.", details=[
            {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
            for error in invalid.errors()]) from None
