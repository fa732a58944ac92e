"""The API's response bodies as the contract (``GET /v1/openapi.json``) shows them.

Routes name them with ``response_model=``; the domain's views (``run_view``,
``agent_view`` …) build the dicts they describe. A view may carry a field a
model does not name yet (``extra="allow"``: it is passed on, never dropped),
but every field named here is checked on the way out, so a view that stops
giving one is a failing test, not a silent break of the contract.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from agenthq.runs.statuses import RunStatus

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Money = Annotated[str, Field(description="US dollars, a decimal string (micro-dollar precision).",
                             examples=["0.003214"])]
Item = TypeVar("Item")


class View(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)  # built when a route first needs it (cold starts)


class ListOf(View, Generic[Item]):
    """A page of a list; pass ``next_cursor`` as ``cursor`` for the next one (null: the end)."""

    items: list[Item]
    next_cursor: str | None = None


# --------------------------------------------------------------------------- accounts and workspaces


class User(View):
    id: str
    email: str
    email_verified: bool = Field(description="Whether a one-time link mailed to the address was used.")
    created_at: Timestamp


class Limits(View):
    """The tier's limits (with an enterprise workspace's overrides)."""

    max_agents: int
    runs_per_day: int
    concurrent_runs: int
    tokens_per_month: int
    budget_usd_per_month: Money
    api_rps: int
    api_burst: int
    api_calls_per_day: int
    live_connections: int
    pending_approvals: int
    schedules: int | None = None
    schedule_min_interval_seconds: int | None = None
    mcp_servers: int
    mcp_calls_per_run: int
    price_usd_per_month: Money


class WorkspaceSummary(View):
    id: str
    name: str
    tier: str
    created_at: Timestamp


class Workspace(WorkspaceSummary):
    limits: Limits


class Signup(View):
    user: User
    workspace: WorkspaceSummary
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    workspace_id: str


class Offboarding(View):
    """A workspace's offboarding job (``null`` before it started)."""

    status: str
    attempt: int
    started_at: Timestamp | None = None
    items_deleted: int = 0
    finished_at: Timestamp | None = None
    error: Any = None


class OffboardingWorkspace(View):
    """``DELETE /workspaces/{wid}``: the workspace is being offboarded (202)."""

    id: str
    status: str = Field(examples=["offboarding"])
    offboarding: Offboarding | None


class WsTicket(View):
    """``POST /ws-tickets``: a one-time ticket for a browser's WebSocket connect (``?ticket=``)."""

    ticket: str
    expires_in: int = Field(examples=[60])


class Membership(View):
    workspace_id: str
    workspace_name: str
    role: str
    joined_at: Timestamp


class Me(View):
    user: User
    email_verification_required: bool = Field(
        description="Whether a workspace signed up here launches runs only once its creator's address is verified.")
    memberships: list[Membership]


class EmailVerificationStatus(View):
    email: str
    email_verified: bool
    sent: bool = Field(default=False, description="Whether a new link was mailed (resend).")


class Member(View):
    user_id: str
    email: str
    role: str
    joined_at: Timestamp


class Invitation(View):
    """An invitation to the workspace (the answer to adding a member, the same whether or not the
    address has an account): it becomes a membership when its invitee logs in naming the workspace."""

    email: str
    role: str
    status: str = Field(examples=["invited"])
    invited_at: Timestamp
    expires_at: Timestamp


class ApiKey(View):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: Timestamp
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None


class NewApiKey(ApiKey):
    key: str = Field(description="The secret: shown only in this answer.")


# --------------------------------------------------------------------------- agents and runs


class Personality(View):
    id: str
    name: str
    description: str
    system_prompt: str
    default_tools: list[str]
    default_model: str


class Agent(View):
    id: str
    workspace_id: str
    name: str
    personality: str
    system_prompt: str
    own_system_prompt: bool
    model: str
    tools: list[str]
    max_steps: int
    budget_usd: Money
    tool_policies: dict[str, Literal["allow", "ask", "deny"]] = Field(
        description="Tools whose policy differs from their default (`allow` for built-ins, `ask` for MCP tools).")
    approval_timeout_seconds: int
    on_approval_timeout: Literal["approve", "deny"]

    context_budget_tokens: int = Field(default=150_000, description="A session turn's prompt at most, in tokens.")
    version: int = Field(ge=1, description="Its current version: every change makes the next one.")
    created_at: Timestamp
    updated_at: Timestamp


class AgentVersion(View):
    """One immutable version of an agent: its whole definition as it was (``definition``: every field of
    the agent but its id, workspace, times and version)."""

    agent_id: str
    workspace_id: str
    version: int = Field(ge=1)
    change: str = Field(description="What made it: `create`, `update` or `rollback`.", examples=["update"])
    restored_version: int | None = Field(description="A rollback's: the version it made current again.")
    created_by: str | None = Field(description="Who made it: a user id or an API key id.")
    created_at: Timestamp
    definition: dict[str, Any] = Field(examples=[{
        "name": "sre-bot", "personality": "sre", "system_prompt": "You are an SRE.", "own_system_prompt": True,
        "model": "claude-sonnet-5-5", "tools": ["calculator"], "max_steps": 20, "budget_usd": "1.00"}])


class RunUsage(View):
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    cost_usd: Money
    tool_calls: int
    agent_seconds: int


class RunError(View):
    reason: str = Field(examples=["max_steps"])
    message: str


class Run(View):
    id: str
    workspace_id: str
    agent_id: str
    agent_version: int | None = Field(description="The agent's version it runs (null: launched before versions).")
    parent_run_id: str | None
    session_id: str | None = Field(default=None, description="The session this run is a turn of, if any.")
    status: RunStatus
    waiting_for: Literal["approval"] | None = Field(
        default=None, description="While `waiting` for its tool calls' approvals: `approval`.")
    input: str
    input_truncated: bool
    output: str | None
    error: RunError | None
    steps: int
    cancel_requested: bool
    created_at: Timestamp
    updated_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    usage: RunUsage


class RunEvent(View):
    seq: int = Field(ge=1)
    type: str = Field(examples=["model.called"])
    at: Timestamp
    data: dict[str, Any]


class RunEvents(View):
    items: list[RunEvent]
    next_after: int | None = Field(description="Pass as `after` for the next page (null: the end).")


class Approval(View):
    """A tool call waiting for (or given) a person's decision (DESIGN §9)."""

    id: str
    workspace_id: str
    run_id: str
    root_run_id: str = Field(description="The run tree's root: a delegated child's approvals carry its root run.")
    agent_id: str
    tool: str
    tool_use_id: str
    input: dict[str, Any]
    status: Literal["pending", "approved", "denied", "expired", "cancelled"]
    on_timeout: Literal["approve", "deny"]
    applied: Literal["approve", "deny"] | None = Field(
        description="What the tool call did once decided: ran (`approve`) or got an is_error result (`deny`).")
    reason: str | None
    decided_by: str | None = Field(description="The user or API key that decided (null: expiry or a cancel).")
    decided_at: Timestamp | None
    expires_at: Timestamp
    created_at: Timestamp


class Message(View):
    id: str
    workspace_id: str
    from_agent_id: str
    from_run_id: str | None
    to_agent_id: str
    body: str
    created_at: Timestamp
    delivered_run_id: str | None


# --------------------------------------------------------------------------- usage


class Metered(View):
    """Metered totals of a period, a day or an export (money in dollars)."""

    runs: int
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    model_cost_usd: Money
    infra_cost_usd: Money
    tool_calls: int
    agent_seconds: int
    api_calls: int | None = Field(default=None, description="WebSocket messages the workspace sent (a period's or "
                                  "a day's; REST calls are counted by the gateway's usage plan)")


class LimitUse(View):
    """One limit of the tier: how much of it is used."""

    used: Any
    limit: Any
    percent: Any = None
    resets_at: Timestamp | None = None


class UsageSummary(View):
    """``GET …/usage``: the period's metered totals and every enforced limit."""

    workspace_id: str
    period: str = Field(examples=["month"])
    tier: str
    usage: Metered
    limits: dict[str, LimitUse]


class UsageDay(Metered):
    date: str = Field(examples=["2026-11-27"])


class DailyUsage(View):
    """``GET …/usage/daily``: one row per day (quiet days are zero rows)."""

    items: list[UsageDay]
    totals: Metered


class ExportedRun(View):
    run_id: str
    agent_id: str
    status: RunStatus
    created_at: Timestamp
    model_cost_usd: Money
    infra_cost_usd: Money


class UsageExport(View):
    """``GET …/usage/export?format=json``: one row per run, and their totals (CSV: the rows as a file)."""

    items: list[ExportedRun]
    totals: Metered


class Alert(View):
    id: str
    limit: str = Field(examples=["budget_usd_per_month"])
    threshold_percent: int = Field(examples=[80])
    period: str
    used: int
    allowed: int
    at: Timestamp
    schedule_id: str | None = Field(default=None, description="A schedule's fire this limit refused (skipped).")
    reason: str | None = Field(default=None, examples=["quota_exceeded"])


# --------------------------------------------------------------------------- sessions


class SessionUsage(RunUsage):
    runs: int = Field(description="Runs (turns) whose usage is summed here: the turns that have ended.")


class Session(View):
    id: str
    workspace_id: str
    agent_id: str
    agent_version: str = Field(description="The agent version the session runs (a number), or `latest`.",
                               examples=["1", "latest"])
    title: str | None
    status: str = Field(description="`running` while a message is being answered or waits its turn; else `idle`.",
                        examples=["idle"])
    turns: int = Field(description="Messages sent to the session (each one run).")
    usage: SessionUsage
    last_run_id: str | None = Field(description="The run of the last turn that ended.")
    created_at: Timestamp
    updated_at: Timestamp


class TranscriptMessage(View):
    role: str = Field(examples=["user", "assistant"])
    text: str
    run_id: str
    at: Timestamp


class SessionEvent(View):
    seq: int = Field(ge=1, description="The session's own seq: dense from 1 over all its runs and their children.")
    run_id: str = Field(description="The run whose event this is (for `session.idle`: the turn that ended last).")
    run_seq: int | None = Field(ge=1, description="The event's seq in its run; null for the session's own "
                                                   "events (`session.idle`: its last turn launched is done).")
    type: str = Field(examples=["model.called"])
    at: Timestamp
    data: dict[str, Any]


class SessionEvents(View):
    items: list[SessionEvent]
    next_after: int | None = Field(description="Pass as `after` for the next page (null: the end).")


# --------------------------------------------------------------------------- schedules


class ScheduleFire(View):
    """A schedule's latest fire: ``launched`` (``run_id``) or ``skipped`` (``reason``: the refusing error's code)."""

    at: Timestamp
    status: str = Field(examples=["skipped"])
    reason: str | None = Field(default=None, examples=["quota_exceeded"])
    message: str | None = None
    run_id: str | None = None


class Schedule(View):
    id: str
    workspace_id: str
    agent_id: str
    cron: str = Field(examples=["0 9 * * MON-FRI"])
    timezone: str = Field(examples=["Europe/Paris"])
    input: str
    session_id: str | None = None
    enabled: bool
    next_fire: Timestamp | None = Field(default=None, description="When it fires next (null: disabled).")
    last_fire: ScheduleFire | None = None
    created_at: Timestamp
    updated_at: Timestamp


# --------------------------------------------------------------------------- MCP servers (agenthq.mcp)


class McpTool(View):
    name: str = Field(description="What an agent lists in its tools: mcp__<server>__<tool>.",
                      examples=["mcp__tickets__search"])
    remote_name: str = Field(description="The tool's name on its server.")
    description: str
    input_schema: dict[str, Any]


class McpServerStatus(View):
    """The last connection (registration or refresh): whether it worked and, if not, why."""

    state: str = Field(examples=["ok", "failed"])
    checked_at: Timestamp
    message: str | None = Field(description="Why the connection failed (never a header value).")
    tool_count: int
    skipped_tools: int = Field(description="Tools the server listed that were left out (see skipped).")
    skipped: list[dict[str, str]] = Field(description="Up to 10 left-out tools: {name, reason}.")


class McpServer(View):
    id: str
    workspace_id: str
    name: str
    url: str
    header_names: list[str] = Field(description="The headers sent to the server; their values are never shown.")
    tools: list[McpTool]
    status: McpServerStatus
    created_at: Timestamp
    updated_at: Timestamp
