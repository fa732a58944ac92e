"""Agents of a workspace: what they are (personality, prompt, model, tools, limits).

Every function takes the caller's ``Principal`` (reading needs ``agents:read``,
changing ``agents:write``) and works inside ``tenant_scope`` of the principal's
workspace.

Two rules are kept atomically, with conditional writes in one transaction:

- **Names are unique per workspace, case-insensitively.** Each agent has a
  name marker item (``AgentName``, sk ``AGENTNAME#<folded name>``) written,
  moved and deleted in the same transaction as the agent.
- **A workspace has at most its tier's ``max_agents`` agents.** Creating an
  agent increments ``Workspace.agent_count`` on the condition that it is below
  the limit; deleting decrements it. Parallel creates can never overshoot.

And every change makes a new immutable **version** of the agent
(``agenthq.versions``): creating it writes version 1 with it; a change writes
the agent and version n+1 in one transaction, on the condition that the
agent's counter is still n (:func:`change_agent`, which PATCH and rollback
share); a change to what the agent already is writes nothing.

A failed transaction is told apart by re-reading (marker taken → 409, count at
the limit → 403 ``plan_limit``); anything else (a transaction conflict with a
concurrent writer) is retried.

What an agent leaves out on creation comes from its personality (system
prompt, model, tools) or the defaults (20 steps, $1.00 per run). The agent
stores its model and tools; its system prompt only if it has its own, so an
agent without one always shows (and runs with) its personality's current
prompt. A PATCH changes only the fields it names: changing the personality
alone keeps the stored model and tools.

The run engine and the tools find an agent by id or by name with
``agenthq.agent_lookup.find_agent``; this module is the HTTP side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import Condition

from agenthq import ids
from agenthq.agent_lookup import MAX_NAME_CHARS, fold_name, load_agent, name_marker
from agenthq.approvals.policies import (
    DEFAULT_APPROVAL_TIMEOUT_SECONDS,
    DEFAULT_ON_APPROVAL_TIMEOUT,
    MAX_APPROVAL_TIMEOUT_SECONDS,
    MIN_APPROVAL_TIMEOUT_SECONDS,
    OnApprovalTimeout,
    ToolPolicy,
    unknown_tools,
)
from agenthq.clock import Clock
from agenthq.context import Principal, Scope
from agenthq.errors import Conflict, InvalidRequest, NotFound, PlanLimit
from agenthq.mcp import names as mcp_names
from agenthq.mcp import tools as mcp_tools
from agenthq.pagination import Page, workspace_page
from agenthq.personalities import PERSONALITIES, Personality, list_personalities
from agenthq.pricing import KNOWN_MODELS
from agenthq.store import retry_transaction, tenant_scope, transaction
from agenthq.store.items import Agent, AgentName, AgentVersion, Workspace
from agenthq.store.sizes import ensure_fits
from agenthq.text import NOT_BLANK, display_name
from agenthq.tiers import limits_for
from agenthq.tools.catalog import BUILTIN_TOOL_NAMES
from agenthq.versions import records as versions

MAX_SYSTEM_PROMPT_CHARS = 20_000
DEFAULT_MAX_STEPS = 20
MAX_STEPS = 100
DEFAULT_BUDGET_USD = Decimal("1.00")
MAX_BUDGET_USD = Decimal("100")
MAX_TOOLS = 64  # built-ins and MCP servers' tools

_ATTEMPTS = 16  # transaction conflicts with concurrent writers are retried this often
_T = TypeVar("_T")

# --------------------------------------------------------------------------- validation (shared by both edge models)


def _name(value: str) -> str:
    value = display_name(value, MAX_NAME_CHARS)
    if ids.is_id(value.upper()):
        raise ValueError("must not look like an agent id")
    return value


def _personality(value: str) -> str:
    if value not in PERSONALITIES:
        raise ValueError(f"unknown personality; must be one of: {', '.join(PERSONALITIES)}")
    return value


def _model(value: str) -> str:
    if value not in KNOWN_MODELS:
        raise ValueError(f"unknown model; must be one of: {', '.join(KNOWN_MODELS)}")
    return value


def _tools(value: list[str]) -> list[str]:
    # An MCP server's tool (mcp__<server>__<tool>) is checked against the workspace's servers on write.
    unknown = [name for name in value if name not in BUILTIN_TOOL_NAMES and mcp_names.split(name) is None]
    if unknown:
        raise ValueError(f"unknown tools {unknown}; must be among: {', '.join(BUILTIN_TOOL_NAMES)}, "
                         "or an MCP server's tool mcp__<server>__<tool>")
    duplicates = sorted({name for name in value if value.count(name) > 1})
    if duplicates:
        raise ValueError(f"tools listed more than once: {duplicates}")
    return value


#: An agent's tool policies and approval settings (agenthq.approvals): on create and on update.
POLICIES_FIELD = Field(default=None, max_length=MAX_TOOLS, description=(
    "Per tool: `allow` (runs), `ask` (waits for a person's approval) or `deny` (refused). Only tools the "
    "agent has; a tool left out has its default: `allow` for built-ins, `ask` for MCP tools (`mcp__…`)."))
APPROVAL_TIMEOUT_FIELD = Field(default=None, ge=MIN_APPROVAL_TIMEOUT_SECONDS, le=MAX_APPROVAL_TIMEOUT_SECONDS,
                               strict=True, description="How long an approval waits before `on_approval_timeout` "
                               f"applies (default {DEFAULT_APPROVAL_TIMEOUT_SECONDS}, at most 7 days).")
ON_TIMEOUT_FIELD = Field(default=None, description="What an approval nobody decided in time does: `deny` "
                         "(the default) or `approve`.")


def check_tool_policies(policies: Mapping[str, str] | None, tools: list[str]) -> None:
    """A policy may name only a tool the agent has (400 otherwise: it would say nothing, or hide a typo)."""
    unknown = unknown_tools(policies or {}, tools)
    if unknown:
        raise InvalidRequest(details=[{"field": "tool_policies", "message":
                                       f"names tools the agent does not have: {', '.join(unknown)}"}])


class _AgentFields(BaseModel):
    """The checks every agent field gets, on create and on update."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("name", check_fields=False)
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        return None if value is None else _name(value)

    @field_validator("personality", check_fields=False)
    @classmethod
    def _valid_personality(cls, value: str | None) -> str | None:
        return None if value is None else _personality(value)

    @field_validator("model", check_fields=False)
    @classmethod
    def _valid_model(cls, value: str | None) -> str | None:
        return None if value is None else _model(value)

    @field_validator("tools", check_fields=False)
    @classmethod
    def _valid_tools(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _tools(value)


#: A session turn's prompt (system, tools, earlier turns, its own messages) is kept within this many tokens
#: by default: below the 200,000-token window of the models the price table knows, leaving room for the answer.
DEFAULT_CONTEXT_BUDGET_TOKENS = 150_000
MIN_CONTEXT_BUDGET_TOKENS, MAX_CONTEXT_BUDGET_TOKENS = 1_000, 190_000


def _context_budget_field() -> Any:
    return Field(default=None, ge=MIN_CONTEXT_BUDGET_TOKENS, le=MAX_CONTEXT_BUDGET_TOKENS, strict=True,
                 description="In a session, when a turn's prompt would pass this many tokens the oldest turns "
                             f"are summarised by a metered model call (default {DEFAULT_CONTEXT_BUDGET_TOKENS:,}).")


class AgentCreate(_AgentFields):
    """A new agent. What it leaves out comes from its personality (prompt, model,
    tools) or from the defaults (20 steps and $1.00 per run)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "sre-bot", "personality": "sre"},
        {"name": "reviewer", "personality": "architect", "system_prompt": "Review designs for failure modes.",
         "tools": ["calculator", "notes_read"], "max_steps": 10, "budget_usd": "0.50"}]})

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS, pattern=NOT_BLANK)
    personality: str = Field(max_length=64)
    system_prompt: str | None = Field(default=None, min_length=1, max_length=MAX_SYSTEM_PROMPT_CHARS)
    model: str | None = Field(default=None, max_length=100)
    tools: list[str] | None = Field(default=None, max_length=MAX_TOOLS)
    max_steps: int = Field(default=DEFAULT_MAX_STEPS, ge=1, le=MAX_STEPS, strict=True)
    budget_usd: Decimal = Field(default=DEFAULT_BUDGET_USD, gt=0, le=MAX_BUDGET_USD, decimal_places=6)
    tool_policies: dict[str, ToolPolicy] | None = POLICIES_FIELD
    approval_timeout_seconds: int | None = APPROVAL_TIMEOUT_FIELD
    on_approval_timeout: OnApprovalTimeout | None = ON_TIMEOUT_FIELD

    context_budget_tokens: int | None = _context_budget_field()


class AgentUpdate(_AgentFields):
    """A partial change: only the fields given change. ``system_prompt: null``
    drops the agent's own prompt (it uses its personality's again); the other
    fields may not be null."""

    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS, pattern=NOT_BLANK)
    personality: str | None = Field(default=None, max_length=64)
    system_prompt: str | None = Field(default=None, min_length=1, max_length=MAX_SYSTEM_PROMPT_CHARS)
    model: str | None = Field(default=None, max_length=100)
    tools: list[str] | None = Field(default=None, max_length=MAX_TOOLS)
    max_steps: int | None = Field(default=None, ge=1, le=MAX_STEPS, strict=True)
    budget_usd: Decimal | None = Field(default=None, gt=0, le=MAX_BUDGET_USD, decimal_places=6)
    tool_policies: dict[str, ToolPolicy] | None = POLICIES_FIELD
    approval_timeout_seconds: int | None = APPROVAL_TIMEOUT_FIELD
    on_approval_timeout: OnApprovalTimeout | None = ON_TIMEOUT_FIELD

    context_budget_tokens: int | None = _context_budget_field()  # null: back to the default

    @field_validator("name", "personality", "model", "tools", "max_steps", "budget_usd", "tool_policies",
                     "approval_timeout_seconds", "on_approval_timeout", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null (leave the field out to keep it)")
        return value


def money(value: Decimal) -> str:
    """A USD amount as stored and shown: at least two decimals (``"1.00"``, ``"0.005"``)."""
    cents = value.quantize(Decimal("0.01"))
    return str(cents) if cents == value else format(value.normalize(), "f")



# --------------------------------------------------------------------------- views


def personality_view(personality: Personality) -> dict[str, Any]:
    return {
        "id": personality.id,
        "name": personality.name,
        "description": personality.description,
        "default_tools": list(personality.default_tools),
        "default_model": personality.default_model,
        "system_prompt": personality.system_prompt,
    }


def list_personality_views() -> dict[str, Any]:
    """``GET /personalities``: the built-ins, as a list like every other."""
    return {"items": [personality_view(p) for p in list_personalities()], "next_cursor": None}


def agent_view(agent: Agent) -> dict[str, Any]:
    personality = PERSONALITIES.get(agent.personality)
    return {
        "id": agent.id,
        "workspace_id": agent.workspace_id,
        "name": agent.name,
        "personality": agent.personality,
        "system_prompt": agent.system_prompt or (personality.system_prompt if personality else ""),
        "own_system_prompt": agent.system_prompt is not None,
        "model": agent.model,
        "tools": list(agent.tools),
        "max_steps": int(agent.max_steps),
        "budget_usd": agent.budget_usd,
        "tool_policies": dict(agent.tool_policies or {}),
        "approval_timeout_seconds": int(agent.approval_timeout_seconds or DEFAULT_APPROVAL_TIMEOUT_SECONDS),
        "on_approval_timeout": agent.on_approval_timeout or DEFAULT_ON_APPROVAL_TIMEOUT,

        "context_budget_tokens": int(agent.context_budget_tokens or DEFAULT_CONTEXT_BUDGET_TOKENS),
        "version": versions.current_version(agent),
        "created_at": agent.created_at.isoformat(),
        "updated_at": agent.updated_at.isoformat(),
    }


# --------------------------------------------------------------------------- reading


def get_agent(principal: Principal, agent_id: str) -> dict[str, Any]:
    principal.require(Scope.agents_read)
    with tenant_scope(principal.workspace_id):
        return agent_view(load_agent(principal.workspace_id, agent_id))


def list_agents(principal: Principal, cursor: str | None, limit: int) -> Page:
    principal.require(Scope.agents_read)
    with tenant_scope(principal.workspace_id):
        return workspace_page(Agent, principal.workspace_id, "AGENT#", agent_view, cursor, limit)


# --------------------------------------------------------------------------- changing


def create_agent(clock: Clock, principal: Principal, body: AgentCreate) -> dict[str, Any]:
    principal.require(Scope.agents_write)
    workspace_id = principal.workspace_id
    personality = PERSONALITIES[body.personality]
    now = clock.now()
    agent_id = ids.new_id()
    agent = Agent(*Agent.key(workspace_id, agent_id), id=agent_id, workspace_id=workspace_id, name=body.name,
                  personality=personality.id, system_prompt=body.system_prompt,
                  model=body.model or personality.default_model,
                  tools=list(body.tools if body.tools is not None else personality.default_tools),
                  max_steps=body.max_steps, budget_usd=money(body.budget_usd), tool_policies=body.tool_policies or None,
                  approval_timeout_seconds=body.approval_timeout_seconds, on_approval_timeout=body.on_approval_timeout,
                  context_budget_tokens=body.context_budget_tokens, created_at=now, updated_at=now, version=1)
    check_tool_policies(body.tool_policies, list(agent.tools))
    ensure_fits(agent, "system_prompt", "The agent")  # 413 before anything is written
    first = versions.version_item(agent, 1, change=versions.CREATE, at=now, created_by=principal.subject)
    ensure_fits(first, "system_prompt", "The agent's version")
    folded = fold_name(body.name)
    marker = AgentName(*AgentName.key(workspace_id, folded), agent_id=agent_id)
    with tenant_scope(workspace_id):
        mcp_tools.ensure_known(workspace_id, agent.tools)  # only this workspace's servers' tools

        def attempt() -> None:
            max_agents = _max_agents(workspace_id)
            with transaction() as tx:
                tx.save(agent, condition=Agent.pk.does_not_exist())
                tx.save(first, condition=AgentVersion.pk.does_not_exist())
                tx.save(marker, condition=AgentName.pk.does_not_exist())
                tx.update(Workspace(*Workspace.key(workspace_id)), actions=[Workspace.agent_count.add(1)],
                          condition=Workspace.pk.exists() & _below(max_agents))

        def explain() -> None:
            max_agents = _max_agents(workspace_id)
            if _agent_count(workspace_id) >= max_agents:
                raise _plan_limit(max_agents)
            if name_marker(workspace_id, folded) is not None:
                raise _name_taken(body.name)

        _transact(attempt, explain)
    return agent_view(agent)


def update_agent(clock: Clock, principal: Principal, agent_id: str, change: AgentUpdate) -> dict[str, Any]:
    """Change the fields the PATCH names: a new version when the agent changes, none when it does not."""
    given: dict[str, Any] = change.model_dump(exclude_unset=True)  # only what the PATCH names (none null but
                                                                   # system_prompt: null drops the agent's own)

    def changed(agent: Agent) -> Agent:  # given a copy of the agent as read: the agent as it will be
        for field, value in given.items():
            stored = None if value is None or value == {} else money(value) if field == "budget_usd" else value
            setattr(agent, field, stored)  # (tool_policies: {} clears them)
        check_tool_policies(agent.tool_policies, list(agent.tools))  # policies only for the tools it will have
        return agent

    if given.get("tools"):
        principal.require(Scope.agents_write)
        with tenant_scope(principal.workspace_id):  # only this workspace's MCP servers' tools
            mcp_tools.ensure_known(principal.workspace_id, given["tools"])
    return change_agent(clock, principal, agent_id, changed, change=versions.UPDATE)


def change_agent(clock: Clock, principal: Principal, agent_id: str, changed: Callable[[Agent], Agent], *,
                 change: str, restored_version: int | None = None,
                 kept: int = versions.KEPT_VERSIONS) -> dict[str, Any]:
    """Make the agent ``changed(agent)`` (given a copy of the agent as read) its next version, in one transaction
    with that version's item, conditional on the version read: a concurrent change makes this one read
    again and take the number after it. A change that leaves the definition as it is writes nothing.
    A new name moves the agent's name marker in the same transaction (409 when it is taken). The version
    ``kept`` before the new one is deleted in it too: an agent keeps its last ``kept`` versions."""
    principal.require(Scope.agents_write)
    workspace_id = principal.workspace_id
    with tenant_scope(workspace_id):
        def attempt() -> Agent:
            agent = load_agent(workspace_id, agent_id)
            new = changed(Agent.from_raw_data(agent.serialize()))  # a copy: the agent as read stays as it was
            if versions.same_definition(new, agent):
                return agent  # nothing changes: no version, no write
            now, number = clock.now(), versions.current_version(agent) + 1
            new.updated_at, new.version = now, number
            ensure_fits(new, "system_prompt", "The agent")  # 413 before anything is written
            item = versions.version_item(new, number, change=change, at=now, created_by=principal.subject,
                                         restored_version=restored_version)
            ensure_fits(item, "system_prompt", "The agent's version")
            # The version read must still be the agent's: a concurrent change or delete fails this. (An agent
            # made before versions were kept has no counter; its first change writes its version 1 too.)
            same: Condition = (Agent.version == agent.version) if agent.version is not None else \
                (Agent.version.does_not_exist() & (Agent.updated_at == agent.updated_at))
            old_name, new_name = fold_name(agent.name), fold_name(new.name)
            with transaction() as tx:
                tx.save(new, condition=Agent.pk.exists() & (Agent.name == agent.name) & same)
                if agent.version is None:
                    tx.save(versions.version_item(agent, 1, change=versions.CREATE, at=agent.updated_at,
                                                  created_by=None), condition=AgentVersion.pk.does_not_exist())
                tx.save(item, condition=AgentVersion.pk.does_not_exist())
                if number > kept:  # the oldest kept one goes (already gone: nothing to delete)
                    tx.delete(AgentVersion(*AgentVersion.key(workspace_id, agent.id, number - kept)))
                if new_name != old_name:
                    tx.delete(AgentName(*AgentName.key(workspace_id, old_name)),
                              condition=AgentName.agent_id == agent.id)
                    tx.save(AgentName(*AgentName.key(workspace_id, new_name), agent_id=agent.id),
                            condition=AgentName.pk.does_not_exist())
            return new

        def explain() -> None:
            agent = load_agent(workspace_id, agent_id)  # gone → 404
            new = changed(Agent.from_raw_data(agent.serialize()))
            if fold_name(new.name) != fold_name(agent.name):
                taken = name_marker(workspace_id, fold_name(new.name))
                if taken is not None and taken.agent_id != agent.id:
                    raise _name_taken(new.name)

        return agent_view(_transact(attempt, explain))


def delete_agent(principal: Principal, agent_id: str) -> None:
    """Delete the agent and free its name and its plan slot. Its runs keep its id."""
    principal.require(Scope.agents_write)
    workspace_id = principal.workspace_id
    with tenant_scope(workspace_id):

        def attempt() -> None:
            agent = load_agent(workspace_id, agent_id)
            with transaction() as tx:
                tx.delete(agent, condition=Agent.pk.exists() & (Agent.name == agent.name))
                tx.delete(AgentName(*AgentName.key(workspace_id, fold_name(agent.name))),
                          condition=AgentName.agent_id == agent.id)
                tx.update(Workspace(*Workspace.key(workspace_id)), actions=[Workspace.agent_count.add(-1)],
                          condition=Workspace.pk.exists())

        def explain() -> None:
            load_agent(workspace_id, agent_id)  # gone → 404; else a concurrent change: again

        try:
            _transact(attempt, explain)
        except NotFound:  # gone already: a repeated DELETE removes what an interrupted one left
            if ids.is_id(agent_id):
                _delete_versions(workspace_id, agent_id)
            raise
        _delete_versions(workspace_id, agent_id)


def _delete_versions(workspace_id: str, agent_id: str) -> None:
    """Delete every version of a deleted agent, a page at a time (more than a transaction could hold).
    A crash between the agent's deletion and this leaves versions nothing can read (every read of a
    version loads its agent first); repeating the DELETE, or offboarding, removes them."""
    while True:
        page = list(AgentVersion.query(AgentVersion.key(workspace_id, agent_id, 0)[0],
                                       AgentVersion.sk.startswith(AgentVersion.prefix(agent_id)),
                                       limit=100, attributes_to_get=["pk", "sk", "type"]))
        if not page:
            return
        with AgentVersion.batch_write() as batch:
            for item in page:
                batch.delete(item)


# --------------------------------------------------------------------------- helpers


def _max_agents(workspace_id: str) -> int:
    workspace = Workspace.load(workspace_id)
    max_agents = limits_for(workspace.tier, workspace.limit_overrides).max_agents
    if max_agents <= 0:
        raise _plan_limit(max_agents)
    return max_agents


def _agent_count(workspace_id: str) -> int:
    return int(Workspace.load(workspace_id).agent_count or 0)


def _below(max_agents: int) -> Condition:
    # A workspace item written before agent_count existed has no count yet: that is 0.
    below: Condition = Workspace.agent_count.does_not_exist() | (Workspace.agent_count < max_agents)
    return below


def _plan_limit(max_agents: int) -> PlanLimit:
    noun = "agent" if max_agents == 1 else "agents"
    return PlanLimit(f"Your plan allows {max_agents} {noun}. Delete an agent or upgrade your plan.",
                     details=[{"field": "max_agents", "message": f"limit is {max_agents}"}])


def _name_taken(name: str) -> Conflict:
    return Conflict(f"An agent named '{name}' already exists in this workspace.",
                    details=[{"field": "name", "message": "already taken (names are case-insensitive)"}])


def _transact(attempt: Callable[[], _T], explain: Callable[[], None]) -> _T:
    """Run ``attempt`` (one transaction); when it is cancelled, ``explain`` raises
    the reason the caller should see, or returns — then it was a conflict with a
    concurrent writer and the attempt is repeated."""

    def explained(_: TransactWriteError) -> None:
        explain()

    return retry_transaction(attempt, explained, attempts=_ATTEMPTS, exhausted=lambda: Conflict(
        "The workspace's agents are being changed concurrently; try again."))
