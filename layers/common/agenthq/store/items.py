"""Every item type of the table. Key layout and access patterns: docs/data-model.md.

Workspace-owned items have partition keys starting ``WS#<workspace_id>``
(see ``ws_pk``); global items (users, e-mail index, API-key and refresh-token
hashes, login throttles) are reached only by the functions that need them.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    Attribute,
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)

from agenthq.errors import NotFound
from agenthq.store.base import BaseItem, ws_pk
from agenthq.store.sizes import Utf8JSONAttribute


class HealthProbe(BaseItem, discriminator="HealthProbe"):
    """A fixed key the health check reads; it need not exist."""

    @classmethod
    def probe(cls) -> None:
        """One consistent GetItem round trip; raises if DynamoDB can't answer."""
        cls.get_or_none("HEALTH", "HEALTH")


# --------------------------------------------------------------------------- people (global)


class User(BaseItem, discriminator="User"):
    """pk USER#<user_id>, sk META."""

    id = UnicodeAttribute()
    email = UnicodeAttribute()
    password_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    email_verified_at = UTCDateTimeAttribute(null=True)  # set once a one-time link sent to ``email`` is used

    @staticmethod
    def key(user_id: str) -> tuple[str, str]:
        return f"USER#{user_id}", "META"


class EmailVerification(BaseItem, discriminator="EmailVerification"):
    """pk VERIFY#<sha256 of the token>, sk META: one link sent to verify a user's e-mail address
    (agenthq.verification). Single-use (``used_at``), valid until ``valid_until``; the TTL removes it a day
    after. The token itself is only in the mail."""

    user_id = UnicodeAttribute()
    email = UnicodeAttribute()  # the address it was sent to: it verifies that address only
    created_at = UTCDateTimeAttribute()
    valid_until = UTCDateTimeAttribute()  # TTL deletion is lazy: this is what is checked
    used_at = UTCDateTimeAttribute(null=True)

    @staticmethod
    def key(token_hash: str) -> tuple[str, str]:
        return f"VERIFY#{token_hash}", "META"


class UserEmail(BaseItem, discriminator="UserEmail"):
    """pk EMAIL#<normalized email>, sk META: makes e-mail addresses unique."""

    user_id = UnicodeAttribute()

    @staticmethod
    def key(email: str) -> tuple[str, str]:
        return f"EMAIL#{email}", "META"


class RefreshToken(BaseItem, discriminator="RefreshToken"):
    """pk REFRESH#<sha256 of the token>, sk META. One per issued refresh token;
    ``used_at`` is set when it is rotated (a second use is reuse)."""

    family_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    issued_at = UTCDateTimeAttribute()
    used_at = UTCDateTimeAttribute(null=True)
    replaced_by = UnicodeAttribute(null=True)  # hash of the token that replaced it

    @staticmethod
    def key(token_hash: str) -> tuple[str, str]:
        return f"REFRESH#{token_hash}", "META"


class SessionFamily(BaseItem, discriminator="SessionFamily"):
    """pk SESSION#<family_id>, sk META: one login's chain of refresh tokens.
    Revoked on logout, on reuse of a rotated token, and on offboarding."""

    user_id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    revoked_at = UTCDateTimeAttribute(null=True)
    revoked_reason = UnicodeAttribute(null=True)

    @staticmethod
    def key(family_id: str) -> tuple[str, str]:
        return f"SESSION#{family_id}", "META"


class LoginThrottle(BaseItem, discriminator="LoginThrottle"):
    """pk LOGIN#<kind>#<hash of e-mail or IP>, sk META: recent failed logins."""

    failures = NumberAttribute(default=0)
    window_start = NumberAttribute()  # unix seconds
    last_failure = NumberAttribute(default=0)

    @staticmethod
    def key(subject: str) -> tuple[str, str]:
        return f"LOGIN#{subject}", "META"


class RequestCount(BaseItem, discriminator="RequestCount"):
    """pk RATE#<kind>#<hash of the address or account>, sk <window number>: requests of one caller to the
    auth routes in one window (agenthq.security.request_rates); expires with its window."""

    hits = NumberAttribute(default=0)

    @staticmethod
    def key(subject: str, window: int) -> tuple[str, str]:
        return f"RATE#{subject}", str(window)


class ApiKeyLookup(BaseItem, discriminator="ApiKeyLookup"):
    """pk APIKEY#<sha256 of the secret>, sk META: what the authorizer reads.
    Deleted when the key is revoked, so a revoked key finds nothing."""

    workspace_id = UnicodeAttribute()
    key_id = UnicodeAttribute()
    scopes = UnicodeSetAttribute()
    usage_key = UnicodeAttribute()
    last_used_at = UTCDateTimeAttribute(null=True)

    @staticmethod
    def key(secret_hash: str) -> tuple[str, str]:
        return f"APIKEY#{secret_hash}", "META"


# --------------------------------------------------------------------------- workspace-owned


class OffboardingJob(MapAttribute):  # type: ignore[type-arg]  # pynamodb's generic MapAttribute
    """The workspace's offboarding, on its Workspace item while the job runs
    (``agenthq.offboarding``). ``attempt`` numbers the job's executions: a
    repeated DELETE after a failed one starts the next."""

    status = UnicodeAttribute()  # running | failed
    attempt = NumberAttribute(default=1)
    started_at = UTCDateTimeAttribute()
    started_by = UnicodeAttribute()  # the owner's user id, or the operator's ARN
    items_deleted = NumberAttribute(default=0)
    error = UnicodeAttribute(null=True)  # why the last execution failed


class Workspace(BaseItem, discriminator="Workspace"):
    """pk WS#<id>, sk META."""

    id = UnicodeAttribute()
    name = UnicodeAttribute()
    tier = UnicodeAttribute(default="free")
    limit_overrides = Utf8JSONAttribute(null=True)  # enterprise only
    usage_key = UnicodeAttribute()  # the API Gateway key value of this workspace (never shown)
    gateway_key_id = UnicodeAttribute(null=True)  # set once the API Gateway key exists
    gateway_plan_id = UnicodeAttribute(null=True)  # its own usage plan (enterprise overrides); else its tier's
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    signup_fingerprint = UnicodeAttribute(null=True)  # recognises a retried signup
    agent_count = NumberAttribute(default=0)  # kept in step with Agent items (tier max_agents)
    webhook_count = NumberAttribute(null=True)  # kept in step with Webhook items (tier webhooks; none yet: 0)
    mcp_server_count = NumberAttribute(default=0)  # kept in step with McpServer items (tier mcp_servers)
    deleting = BooleanAttribute(default=False)  # offboarding: every workspace route answers 404
    # Signed up while e-mail verification was required, and its creator's address is not verified yet: it
    # launches no run (agenthq.verification). Absent on every other workspace.
    verification_pending = BooleanAttribute(null=True)
    offboarding = OffboardingJob(null=True)  # type: ignore[no-untyped-call]

    @staticmethod
    def job_field(name: str) -> Attribute[Any]:
        """A field of ``offboarding`` for an update or condition expression
        (pynamodb types a nested attribute by its value)."""
        field: Attribute[Any] = getattr(Workspace.offboarding, name)
        return field

    @staticmethod
    def key(workspace_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), "META"

    @classmethod
    def load(cls, workspace_id: str) -> Workspace:
        """The workspace; :class:`NotFound` if it does not exist or is being deleted."""
        workspace = cls.get_or_404(*cls.key(workspace_id))
        if workspace.deleting:
            raise NotFound()
        return workspace

    def owned_partitions(self) -> list[str]:
        return [ws_pk(self.id, "USAGE"), ws_pk(self.id, "QUOTA"), ws_pk(self.id, "QUEUE"), ws_pk(self.id, "LIVE")]


class WorkspaceDirectoryEntry(BaseItem, discriminator="WorkspaceDirectoryEntry"):
    """pk WORKSPACES, sk WS#<id>: the operator's list of every workspace (a global item).

    Written with the workspace at signup, deleted when offboarding has removed
    the workspace's items, so the operator lists workspaces with a Query, never
    a Scan. It holds only the id: the workspace item is the truth about the rest."""

    workspace_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()

    PARTITION = "WORKSPACES"

    @classmethod
    def key(cls, workspace_id: str) -> tuple[str, str]:
        return cls.PARTITION, ws_pk(workspace_id)


class Member(BaseItem, discriminator="Member"):
    """pk WS#<id>, sk MEMBER#<user_id>; gsi1: USER#<user_id> → the user's workspaces."""

    workspace_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    email = UnicodeAttribute()
    role = UnicodeAttribute()
    usage_key = UnicodeAttribute()  # copied from the workspace so the authorizer reads one item
    joined_at = UTCDateTimeAttribute()

    @staticmethod
    def key(workspace_id: str, user_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"MEMBER#{user_id}"


class Invitation(BaseItem, discriminator="Invitation"):
    """pk WS#<id>, sk INVITE#<e-mail>: an invitation to join the workspace, whether or not the address
    has an account; it becomes a ``Member`` when its invitee logs in naming the workspace (TTL 7 days)."""

    workspace_id = UnicodeAttribute()
    email = UnicodeAttribute()
    role = UnicodeAttribute()
    invited_by = UnicodeAttribute()  # the inviting user's id
    invited_at = UTCDateTimeAttribute()

    @staticmethod
    def key(workspace_id: str, email: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"INVITE#{email}"


class ApiKey(BaseItem, discriminator="ApiKey"):
    """pk WS#<id>, sk APIKEY#<key_id>: the key as the workspace sees it (no secret)."""

    id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    name = UnicodeAttribute()
    prefix = UnicodeAttribute()
    secret_hash = UnicodeAttribute()
    scopes = UnicodeSetAttribute()
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    last_used_at = UTCDateTimeAttribute(null=True)
    revoked_at = UTCDateTimeAttribute(null=True)

    @staticmethod
    def key(workspace_id: str, key_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"APIKEY#{key_id}"


class WorkspaceSession(BaseItem, discriminator="WorkspaceSession"):
    """pk WS#<id>, sk SESSION#<family_id>: lets offboarding find the workspace's
    login sessions (the families themselves are global items)."""

    family_id = UnicodeAttribute()
    user_id = UnicodeAttribute()

    @staticmethod
    def key(workspace_id: str, family_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"SESSION#{family_id}"


# --------------------------------------------------------------------------- agents and runs


class Agent(BaseItem, discriminator="Agent"):
    """pk WS#<id>, sk AGENT#<agent_id>."""

    id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    name = UnicodeAttribute()
    personality = UnicodeAttribute()
    system_prompt = UnicodeAttribute(null=True)  # the agent's own; else the personality's
    model = UnicodeAttribute()
    tools = Utf8JSONAttribute()  # allowed tool names, in order
    max_steps = NumberAttribute()
    budget_usd = UnicodeAttribute()  # per-run budget, a decimal string
    tool_policies = Utf8JSONAttribute(null=True)  # {tool: allow|ask|deny} where it differs from the default
    approval_timeout_seconds = NumberAttribute(null=True)  # absent: the default (agenthq.approvals.policies)
    on_approval_timeout = UnicodeAttribute(null=True)  # deny | approve; absent: deny

    context_budget_tokens = NumberAttribute(null=True)  # a session turn's prompt at most (None: the default)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    # Its current version (AgentVersion): every change advances it by one, on the condition that it is still
    # the number read. Absent on an agent made before versions were kept (its version 1 is the item itself).
    version = NumberAttribute(null=True)

    @staticmethod
    def key(workspace_id: str, agent_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"AGENT#{agent_id}"


class RawMapAttribute(Attribute[dict[str, Any]]):
    """A map kept as DynamoDB's attribute values (``{"name": {"S": "…"}, …}``), exactly as another item
    serialized them: what an item's own attributes were, whatever their types, without knowing them."""

    attr_type = "M"

    def serialize(self, value: dict[str, Any]) -> dict[str, Any]:
        return value

    def deserialize(self, value: dict[str, Any]) -> dict[str, Any]:
        return value


class AgentVersion(BaseItem, discriminator="AgentVersion"):
    """pk WS#<id>, sk AGENTVER#<agent_id>#<version, 10 digits>: one immutable version of an agent — its
    whole definition (every attribute of the Agent item but its bookkeeping, agenthq.versions.records),
    written in the same transaction as the change that made it and never changed after."""

    agent_id = UnicodeAttribute()
    version = NumberAttribute()
    definition = RawMapAttribute()
    change = UnicodeAttribute()  # "create", "update" or "rollback"
    restored_version = NumberAttribute(null=True)  # a rollback's: the version it made current again
    created_by = UnicodeAttribute(null=True)  # the principal's subject (user or API key id)
    created_at = UTCDateTimeAttribute()

    @staticmethod
    def prefix(agent_id: str) -> str:
        return f"AGENTVER#{agent_id}#"

    @staticmethod
    def key(workspace_id: str, agent_id: str, version: int) -> tuple[str, str]:
        return ws_pk(workspace_id), f"AGENTVER#{agent_id}#{version:010d}"


class AgentName(BaseItem, discriminator="AgentName"):
    """pk WS#<id>, sk AGENTNAME#<folded name>: makes agent names unique per workspace
    (case-insensitively) and finds an agent by name. Written with its agent, in one transaction."""

    agent_id = UnicodeAttribute()

    @staticmethod
    def key(workspace_id: str, folded_name: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"AGENTNAME#{folded_name}"


class McpServer(BaseItem, discriminator="McpServer"):
    """pk WS#<id>, sk MCP#<server_id>: a workspace's MCP server (agenthq.mcp). Its header
    values are never here: ``secret_arn`` names the Secrets Manager secret that holds them."""

    id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    name = UnicodeAttribute()
    url = UnicodeAttribute()
    header_names = Utf8JSONAttribute()  # the names only, in order
    secret_arn = UnicodeAttribute(null=True)  # None: no headers
    tools = Utf8JSONAttribute()  # [{name, description, input_schema}], checked (agenthq.mcp.names)
    status = Utf8JSONAttribute()  # {state: ok|failed, checked_at, message, skipped_tools, skipped}
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    @staticmethod
    def key(workspace_id: str, server_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"MCP#{server_id}"


class McpServerName(BaseItem, discriminator="McpServerName"):
    """pk WS#<id>, sk MCPNAME#<name>: makes server names unique per workspace (agents name
    tools ``mcp__<name>__<tool>``) and finds a server by name. Written with its server."""

    server_id = UnicodeAttribute()

    @staticmethod
    def key(workspace_id: str, name: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"MCPNAME#{name}"


class Run(BaseItem, discriminator="Run"):
    """pk WS#<id>, sk RUN#<run_id>; gsi1: WS#<id>#AGENT#<agent_id> → the agent's runs.
    Its events, conversation and step records live in partition WS#<id>#RUN#<run_id>."""

    id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    agent_id = UnicodeAttribute()
    agent_version = NumberAttribute(null=True)  # the agent's version it runs (absent on runs made before)
    parent_run_id = UnicodeAttribute(null=True)
    parent_tool_use_id = UnicodeAttribute(null=True)
    parent_task_token = UnicodeAttribute(null=True)  # the parent's WaitForChild task
    depth = NumberAttribute(default=0)
    status = UnicodeAttribute()
    input_preview = UnicodeAttribute()  # the start of the input; all of it is in the RunBody
    output = UnicodeAttribute(null=True)
    error = Utf8JSONAttribute(null=True)  # {"reason", "message"}
    outcome = Utf8JSONAttribute(null=True)  # the end a step decided: {"status", "reason"?, "output"?, ...}
    steps = NumberAttribute(default=0)  # model calls made
    seq = NumberAttribute(default=0)  # last event seq
    step_mark = UnicodeAttribute(null=True)  # the last step committed and what comes next (runs.records.StepMark)
    cancel_requested = BooleanAttribute(default=False)
    task_token = UnicodeAttribute(null=True)  # while paused
    pause_reason = UnicodeAttribute(null=True)  # the limit a think step could not reserve within
    pause_hold = Utf8JSONAttribute(null=True)  # what it could not reserve: {"tokens", "micro_usd"}
    paused_at = UTCDateTimeAttribute(null=True)
    paused_seconds = NumberAttribute(default=0)  # time spent paused: not agent time, not against the timeout
    waiting_for = UnicodeAttribute(null=True)  # "approval" while it waits on its tool calls' approvals
    waiting_since = UTCDateTimeAttribute(null=True)  # when that wait began (it is added to paused_seconds)
    approvals_pending = NumberAttribute(default=0)  # its approvals not decided yet (agenthq.approvals)
    slot = UnicodeAttribute(null=True)  # "own" while it holds one of the workspace's run slots; "parent" for a child
    children_micro_usd = NumberAttribute(default=0)  # model cost of its finished child runs (its budget covers them)
    input_tokens = NumberAttribute(default=0)
    output_tokens = NumberAttribute(default=0)
    cache_write_tokens = NumberAttribute(default=0)
    cache_read_tokens = NumberAttribute(default=0)
    cost_micro_usd = NumberAttribute(default=0)  # integer millionths of a dollar: exact sums
    tool_calls = NumberAttribute(default=0)
    agent_seconds = NumberAttribute(default=0)
    infra_micro_usd = NumberAttribute(default=0)  # modelled AWS cost of the steps
    created_by = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    started_at = UTCDateTimeAttribute(null=True)
    finished_at = UTCDateTimeAttribute(null=True)
    deadline = UTCDateTimeAttribute()
    session_id = UnicodeAttribute(null=True)  # a session's turn (agenthq.runs.turns): its session
    session_turn = NumberAttribute(null=True)  # and its turn's number there

    @staticmethod
    def key(workspace_id: str, run_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"RUN#{run_id}"

    @staticmethod
    def partition(workspace_id: str, run_id: str) -> str:
        return ws_pk(workspace_id, "RUN", run_id)

    def owned_partitions(self) -> list[str]:
        return [self.partition(self.workspace_id, self.id)]


class RunBody(BaseItem, discriminator="RunBody"):
    """pk WS#<id>#RUN#<run_id>, sk BODY: what a run was launched with and never
    changes — the whole input and the agent as it was at launch (model, system
    prompt, tools, limits, team). Kept apart from the Run item, which every
    step rewrites, so those writes stay small."""

    # The run tree it belongs to (usage.quota.RunTree): its root run (itself for a root) and the root's
    # per-run budget, which every model call of the tree is reserved against. Absent on runs made before.
    tree_root_run_id = UnicodeAttribute(null=True)
    tree_budget_micro_usd = NumberAttribute(null=True)
    input = UnicodeAttribute()
    agent = Utf8JSONAttribute()

    @staticmethod
    def key(workspace_id: str, run_id: str) -> tuple[str, str]:
        return Run.partition(workspace_id, run_id), "BODY"


class RunLaunch(BaseItem, discriminator="RunLaunch"):
    """pk WS#<id>, sk LAUNCH#<idempotency key>: makes a launch retry-safe (TTL 24 h)."""

    fingerprint = UnicodeAttribute()
    run_id = UnicodeAttribute()

    @staticmethod
    def key(workspace_id: str, idempotency_key: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"LAUNCH#{idempotency_key}"


class RunEvent(BaseItem, discriminator="RunEvent"):
    """pk WS#<id>#RUN#<run_id>, sk EVT#<seq, 10 digits>: dense, from 1."""

    seq = NumberAttribute()
    event_type = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    data = Utf8JSONAttribute()

    @staticmethod
    def key(workspace_id: str, run_id: str, seq: int) -> tuple[str, str]:
        return Run.partition(workspace_id, run_id), f"EVT#{seq:010d}"


class ConversationMessage(BaseItem, discriminator="ConversationMessage"):
    """pk WS#<id>#RUN#<run_id>, sk MSG#<index, 6 digits>: the run's Messages API transcript."""

    index = NumberAttribute()
    role = UnicodeAttribute()
    content = Utf8JSONAttribute()

    @staticmethod
    def key(workspace_id: str, run_id: str, index: int) -> tuple[str, str]:
        return Run.partition(workspace_id, run_id), f"MSG#{index:06d}"


class StepRecord(BaseItem, discriminator="StepRecord"):
    """pk WS#<id>#RUN#<run_id>, sk STEP#<n>#<kind>: a completed step and what comes
    next, as runs started before ``Run.step_mark`` recorded them (read only for
    those; the engine writes none now)."""

    next = UnicodeAttribute()

    @staticmethod
    def key(workspace_id: str, run_id: str, step: int, kind: str) -> tuple[str, str]:
        return Run.partition(workspace_id, run_id), f"STEP#{step:06d}#{kind}"


class ToolCall(BaseItem, discriminator="ToolCall"):
    """pk WS#<id>#RUN#<run_id>, sk TOOL#<tool_use_id>: one tool call; ``result`` is
    set once it finished. Its creation is the (exactly once) tool.called event."""

    tool_use_id = UnicodeAttribute()
    name = UnicodeAttribute()
    started_at = UTCDateTimeAttribute()
    result = Utf8JSONAttribute(null=True)  # {"content": str, "is_error": bool}
    child_run_id = UnicodeAttribute(null=True)  # delegate only

    @staticmethod
    def key(workspace_id: str, run_id: str, tool_use_id: str) -> tuple[str, str]:
        return Run.partition(workspace_id, run_id), f"TOOL#{tool_use_id}"


class AgentMessage(BaseItem, discriminator="AgentMessage"):
    """pk WS#<id>, sk AMSG#<message_id>; gsi1: WS#<id>#INBOX#<to_agent> → an agent's inbox."""

    id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    from_agent_id = UnicodeAttribute()
    from_run_id = UnicodeAttribute()
    to_agent_id = UnicodeAttribute()
    body = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    delivered_run_id = UnicodeAttribute(null=True)  # the recipient run that received it

    @staticmethod
    def key(workspace_id: str, message_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"AMSG#{message_id}"

    @staticmethod
    def inbox(workspace_id: str, agent_id: str) -> str:
        return ws_pk(workspace_id, "INBOX", agent_id)


class Note(BaseItem, discriminator="Note"):
    """pk WS#<id>, sk NOTE#<name>: the workspace's shared notes (agents' memory)."""

    name = UnicodeAttribute()
    content = UnicodeAttribute()
    updated_at = UTCDateTimeAttribute()
    updated_by_run = UnicodeAttribute(null=True)

    @staticmethod
    def key(workspace_id: str, name: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"NOTE#{name}"


class UsageCounts:
    """The usage vector's quantities as attributes (``agenthq.usage.Usage``): of a
    counter and of a ledger entry."""

    runs = NumberAttribute(default=0)
    model_calls = NumberAttribute(default=0)
    input_tokens = NumberAttribute(default=0)
    output_tokens = NumberAttribute(default=0)
    cache_write_tokens = NumberAttribute(default=0)
    cache_read_tokens = NumberAttribute(default=0)
    cost_micro_usd = NumberAttribute(default=0)
    tool_calls = NumberAttribute(default=0)
    agent_seconds = NumberAttribute(default=0)
    infra_micro_usd = NumberAttribute(default=0)  # modelled AWS cost of the steps
    api_calls = NumberAttribute(default=0)  # WebSocket messages (a counter's only: REST calls are the gateway's)


class UsageCounter(BaseItem, UsageCounts, discriminator="UsageCounter"):
    """pk WS#<id>#USAGE, sk <DAY|MONTH>#<date>#S#<shard>: a write-sharded usage
    counter. Readers sum the shards of a period (one Query)."""

    period = UnicodeAttribute()  # "DAY#2026-11-26" or "MONTH#2026-11"

    @staticmethod
    def key(workspace_id: str, period: str, shard: int) -> tuple[str, str]:
        return ws_pk(workspace_id, "USAGE"), f"{period}#S#{shard:02d}"


# --------------------------------------------------------------------------- cost control


class Quota(BaseItem, discriminator="Quota"):
    """pk WS#<id>#QUOTA, sk DAY#<date> | MONTH#<yyyy-mm>: what the tier's limits
    are enforced against, atomically (conditional updates; one item per period,
    not sharded: see data-model.md for why its write rate stays low).

    ``committed_*`` is what is used plus what is reserved for model calls under
    way; a reservation is admitted only while committed + it ≤ the limit."""

    runs = NumberAttribute(default=0)  # DAY: runs launched
    api_calls = NumberAttribute(default=0)  # DAY: WebSocket messages (REST calls are counted by the gateway)
    used_tokens = NumberAttribute(default=0)  # MONTH: tokens of settled model calls (all four classes)
    used_micro_usd = NumberAttribute(default=0)  # MONTH: model cost of settled calls
    committed_tokens = NumberAttribute(default=0)  # MONTH: used + reserved
    committed_micro_usd = NumberAttribute(default=0)  # MONTH: used + reserved

    @staticmethod
    def key(workspace_id: str, period: str) -> tuple[str, str]:
        return ws_pk(workspace_id, "QUOTA"), period


class Reservation(BaseItem, discriminator="Reservation"):
    """pk WS#<id>#RUN#<run_id>, sk RESERVE#<step>: the budget and tokens a think
    step reserved before its model call, until the call is settled or released.
    It holds one attempt that may be billed: after one, the attempt is metered and
    the next is reserved anew."""

    period = UnicodeAttribute()  # the MONTH# quota it was taken from
    tokens = NumberAttribute()
    micro_usd = NumberAttribute()
    reserved_at = UTCDateTimeAttribute(null=True)  # when: the call is counted in this day and month
    tree_root_run_id = UnicodeAttribute(null=True)  # the run tree whose budget it was also taken from
    tree_budget_micro_usd = NumberAttribute(null=True)  # that tree's budget (the root run's budget_usd)
    # The attempt of the model call begun under this hold (its id, written just before its request is sent):
    # whoever finds it set meters that attempt as estimated, under model#<call_started>, before reusing or
    # releasing the hold (the worker may have died while the API answered, and billed, it).
    call_started = UnicodeAttribute(null=True)

    @staticmethod
    def key(workspace_id: str, run_id: str, step: int) -> tuple[str, str]:
        return Run.partition(workspace_id, run_id), f"RESERVE#{step:06d}"


class RunTreeBudget(BaseItem, discriminator="RunTreeBudget"):
    """pk WS#<id>#RUN#<root_run_id>, sk TREE_BUDGET: what the run tree rooted
    there (the root and every run it delegated to, at any depth) has spent and
    reserved of the root's per-run budget. Made by the tree's first reservation.

    ``committed_micro_usd`` is what is used plus what is reserved for model
    calls under way; a reservation is admitted only while committed + it ≤ the
    budget (one conditional update: concurrent runs of a tree cannot pass it)."""

    budget_micro_usd = NumberAttribute(default=0)  # the root run's budget_usd, as it was at its launch
    used_micro_usd = NumberAttribute(default=0)  # model cost of the tree's settled calls
    committed_micro_usd = NumberAttribute(default=0)  # used + reserved

    @staticmethod
    def key(workspace_id: str, root_run_id: str) -> tuple[str, str]:
        return Run.partition(workspace_id, root_run_id), "TREE_BUDGET"


class LedgerEntry(BaseItem, UsageCounts, discriminator="LedgerEntry"):
    """pk WS#<id>#RUN#<run_id>, sk LEDGER#<entry>: one metered quantity of a run,
    under a deterministic id (``run``, ``model#<message id>``, ``tool#<tool use
    id>``, ``seconds``), written with the counters it moves: counted once.
    ``estimated``: a model call whose answer never arrived, metered at its
    reserved upper bound (``model#<message id or unanswered_…>``)."""

    entry = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    step = NumberAttribute(default=0)
    model = UnicodeAttribute(null=True)
    estimated = BooleanAttribute(null=True)

    @staticmethod
    def key(workspace_id: str, run_id: str, entry: str) -> tuple[str, str]:
        return Run.partition(workspace_id, run_id), f"LEDGER#{entry}"


class Alert(BaseItem, discriminator="Alert"):
    """pk WS#<id>, sk ALERT#<period>#<limit>#<percent>: a limit crossed 80% or
    100% in a period. Created at most once (a conditional put decides).
    gsi1: WS#<id>#ALERTS / ALERT#<at> → the workspace's alerts in time order."""

    limit = UnicodeAttribute()
    threshold = NumberAttribute()  # 80 or 100
    period = UnicodeAttribute()
    used = NumberAttribute()
    allowed = NumberAttribute()
    at = UTCDateTimeAttribute()
    # A schedule's fire that a limit refused (agenthq.schedules.fire): which schedule, and why.
    schedule_id = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)

    @staticmethod
    def key(workspace_id: str, period: str, limit: str, threshold: int) -> tuple[str, str]:
        return ws_pk(workspace_id), f"ALERT#{period}#{limit}#{threshold:03d}"

    @staticmethod
    def timeline(workspace_id: str) -> str:
        """The gsi1 partition of the workspace's alerts (sorted by ``at``)."""
        return ws_pk(workspace_id, "ALERTS")


class PausedRun(BaseItem, discriminator="PausedRun"):
    """pk PAUSED (global), sk WS#<id>#RUN#<run_id>: a run paused at a limit, so
    the period-reset schedule and a tier raise find what to resume without a
    Scan. Written and deleted with the run's pause and resume."""

    workspace_id = UnicodeAttribute()
    run_id = UnicodeAttribute()
    reason = UnicodeAttribute()
    paused_at = UTCDateTimeAttribute()

    @staticmethod
    def key(workspace_id: str, run_id: str) -> tuple[str, str]:
        return "PAUSED", f"WS#{workspace_id}#RUN#{run_id}"


class UnstartedRun(BaseItem, discriminator="UnstartedRun"):
    """pk UNSTARTED#<shard> (global, in a few shards: every launch writes one),
    sk <run_id>#<workspace_id>: a launched run whose execution may not have
    started. Written before the launch's transaction, deleted once its
    StartExecution succeeded (or the run ended); one left after a few minutes
    is a run whose execution never started (its launch failed or died after the
    commit), which the period reset starts or ends (``runs.unstarted``)."""

    workspace_id = UnicodeAttribute()
    run_id = UnicodeAttribute()
    launched_at = UTCDateTimeAttribute()

    SHARDS = 8

    @staticmethod
    def shard(index: int) -> str:
        return f"UNSTARTED#{index}"

    @staticmethod
    def key(workspace_id: str, run_id: str) -> tuple[str, str]:
        return UnstartedRun.shard(ord(run_id[-1]) % UnstartedRun.SHARDS), f"{run_id}#{workspace_id}"


class RunSlots(BaseItem, discriminator="RunSlots"):
    """pk WS#<id>#QUOTA, sk SLOTS: the tier's concurrent runs, enforced atomically.
    ``pending`` runs were launched and have not ended (at most the limit plus
    the queue's bound); ``running`` hold a slot; ``waiting`` are in the queue.
    ``concurrent_runs`` is the limit as the last tier change set it (written in
    the tier change's transaction): every grant of a slot is conditioned on the
    limit it compared with still being this one (``runs.slots``)."""

    pending = NumberAttribute(default=0)
    running = NumberAttribute(default=0)
    waiting = NumberAttribute(default=0)
    concurrent_runs = NumberAttribute(null=True)

    @staticmethod
    def key(workspace_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id, "QUOTA"), "SLOTS"


class Approval(BaseItem, discriminator="Approval"):
    """pk WS#<id>, sk APPROVAL#<approval_id>: a tool call waiting for (or given) a person's decision
    (``agenthq.approvals``). Its id is derived from its run and tool call, so a retried step asks once.
    While pending it is in the sparse gsi1 partition ``APPROVALS_DUE`` sorted by when it expires,
    so the expiry schedule finds the due ones with a Query; its decision removes it from there."""

    id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    run_id = UnicodeAttribute()
    root_run_id = UnicodeAttribute()
    agent_id = UnicodeAttribute()
    tool_use_id = UnicodeAttribute()
    tool = UnicodeAttribute()
    input = Utf8JSONAttribute()
    turn = NumberAttribute()
    status = UnicodeAttribute()  # pending | approved | denied | expired | cancelled
    on_timeout = UnicodeAttribute()  # deny | approve: what expiry applies
    applied = UnicodeAttribute(null=True)  # approve | deny: what its decision (or expiry) let the tool call do
    reason = UnicodeAttribute(null=True)
    decided_by = UnicodeAttribute(null=True)
    decided_at = UTCDateTimeAttribute(null=True)
    due_at = UTCDateTimeAttribute()  # when it expires (not ``expires_at``: that is the table's TTL)
    created_at = UTCDateTimeAttribute()

    DUE = "APPROVALS_DUE"

    @staticmethod
    def key(workspace_id: str, approval_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"APPROVAL#{approval_id}"

    @staticmethod
    def due_key(workspace_id: str, approval_id: str, due_at: Any) -> str:
        return f"{due_at.strftime('%Y-%m-%dT%H:%M:%S')}#{workspace_id}#{approval_id}"


class PendingApprovals(BaseItem, discriminator="PendingApprovals"):
    """pk WS#<id>#QUOTA, sk APPROVALS: the workspace's approvals not decided yet, at most its tier's
    ``pending_approvals`` (each request adds on that condition; each decision, expiry or cancel takes one off)."""

    pending = NumberAttribute(default=0)

    @staticmethod
    def key(workspace_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id, "QUOTA"), "APPROVALS"


class QueuedRun(BaseItem, discriminator="QueuedRun"):
    """pk WS#<id>#QUEUE, sk <run_id>: a run waiting for a slot. Run ids are ULIDs,
    so the partition reads oldest first: the queue is first-in, first-out."""

    run_id = UnicodeAttribute()
    task_token = UnicodeAttribute()

    @staticmethod
    def key(workspace_id: str, run_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id, "QUEUE"), run_id


# --------------------------------------------------------------------------- live status (WebSocket API)


class LiveTicket(BaseItem, discriminator="LiveTicket"):
    """pk WSTICKET#<sha256 of the ticket>, sk META (global: the ticket is all a
    browser's connect carries): a one-time 60 s ticket for the WebSocket API,
    deleted by the connect that uses it; TTL cleans up the unused ones."""

    workspace_id = UnicodeAttribute()
    principal = Utf8JSONAttribute()  # Principal.to_authorizer_context()
    valid_until = NumberAttribute()  # epoch seconds; TTL deletion is lazy, so this is what is checked

    @staticmethod
    def key(ticket_hash: str) -> tuple[str, str]:
        return f"WSTICKET#{ticket_hash}", "META"


class LiveConnection(BaseItem, discriminator="LiveConnection"):
    """pk WS#<id>#LIVE, sk CONN#<connection id>: an open WebSocket connection
    (TTL past API Gateway's 2-hour limit: $disconnect is best effort);
    gsi1: WS#<id>#LIVE#USER#<user id> / SESSION#<session id>#CONN#<connection id>, or
    WS#<id>#LIVE#KEY#<key id> / CONN#<connection id> → the connections of a member, a
    session, an API key (``agenthq.live.standing``)."""

    connection_id = UnicodeAttribute()
    subject = UnicodeAttribute()  # user id or API key id
    kind = UnicodeAttribute()  # user | api_key
    session_id = UnicodeAttribute(null=True)
    role = UnicodeAttribute(null=True)  # a user's role when it connected
    connected_at = UTCDateTimeAttribute()
    subscriptions = UnicodeSetAttribute(null=True)  # run ids, and "*" for the workspace
    rate_window = NumberAttribute(null=True)  # the subscribe rate limit's window (epoch seconds // its length)
    rate_count = NumberAttribute(null=True)  # subscribes in that window

    @staticmethod
    def partition(workspace_id: str) -> str:
        return ws_pk(workspace_id, "LIVE")

    @classmethod
    def key(cls, workspace_id: str, connection_id: str) -> tuple[str, str]:
        return cls.partition(workspace_id), f"CONN#{connection_id}"


class LiveConnectionCount(BaseItem, discriminator="LiveConnectionCount"):
    """pk WS#<id>#LIVE, sk COUNT: how many WebSocket connections the workspace holds — what
    ``$connect`` admits against the tier's ``live_connections`` (a conditional ADD), ``$disconnect``
    and a gone connection's cleanup give back, and a repair sets from the ``CONN#`` items
    (``agenthq.live.limits``). ``version`` moves with every change, so a repair that read an old
    count writes nothing."""

    open = NumberAttribute(default=0)
    version = NumberAttribute(default=0)
    repaired_at = UTCDateTimeAttribute(null=True)

    @classmethod
    def key(cls, workspace_id: str) -> tuple[str, str]:
        return LiveConnection.partition(workspace_id), "COUNT"


class LiveSubscription(BaseItem, discriminator="LiveSubscription"):
    """pk WS#<id>#LIVE, sk RUN#<run id>#CONN#<connection id> (a run's events) or
    WORKSPACE#CONN#<connection id> (every run's status changes and usage alerts).
    Same TTL as its connection."""

    connection_id = UnicodeAttribute()
    run_id = UnicodeAttribute(null=True)  # None: the workspace
    after = NumberAttribute(default=0)  # a run subscription wants its events after this seq only
    # While set, the subscribe that wrote it is still replaying the run's stored events: the
    # broadcaster leaves the subscription alone until the replay hands over (agenthq.live.seam).
    replaying = UnicodeAttribute(null=True)
    missed = NumberAttribute(null=True)  # the highest seq the broadcaster left to that replay
    # Until when (epoch seconds) that subscribe's invocation may still be replaying: a later subscribe of
    # the connection joins it rather than replaying too; absent (a replay that stopped at its page, or
    # failed) or past, the next subscribe takes the replay over (agenthq.live.seam.claim).
    replay_until = NumberAttribute(null=True)
    # Who the connection acts as (its $connect principal), re-checked as it is sent to (agenthq.live.standing).
    subject = UnicodeAttribute(null=True)
    kind = UnicodeAttribute(null=True)
    session_id = UnicodeAttribute(null=True)
    role = UnicodeAttribute(null=True)

    # A session's events (agenthq.sessions): sk CONVERSATION#<session id>#CONN#<connection id>, after: a session seq.
    conversation_id = UnicodeAttribute(null=True)

    @staticmethod
    def prefix(run_id: str | None) -> str:
        return f"RUN#{run_id}#CONN#" if run_id else "WORKSPACE#CONN#"

    @staticmethod
    def conversation_prefix(session_id: str) -> str:
        return f"CONVERSATION#{session_id}#CONN#"

    @classmethod
    def key(cls, workspace_id: str, run_id: str | None, connection_id: str) -> tuple[str, str]:
        return LiveConnection.partition(workspace_id), cls.prefix(run_id) + connection_id

    #: How a session's subscription is named in ``LiveConnection.subscriptions`` (a run's: its id; the workspace's: *).
    SESSION_TARGET = "session:"

    @classmethod
    def target_key(cls, workspace_id: str, target: str, connection_id: str) -> tuple[str, str]:
        """The key of the subscription ``LiveConnection.subscriptions`` names ``target``."""
        if target.startswith(cls.SESSION_TARGET):
            return (LiveConnection.partition(workspace_id),
                    cls.conversation_prefix(target.removeprefix(cls.SESSION_TARGET)) + connection_id)
        return cls.key(workspace_id, None if target == "*" else target, connection_id)


class AgentSession(BaseItem, UsageCounts, discriminator="AgentSession"):
    """pk WS#<id>, sk CONVERSATION#<session id> (``SESSION#`` is a login's); gsi1:
    WS#<id>#AGENT#<agent id>, CONVERSATION#<session id> → an agent's sessions. One
    conversation with one agent across many runs (agenthq.sessions). ``launched``
    turns were launched (each a run, numbered in the order its launch committed);
    ``done_turns`` of them, from the first on, have ended (agenthq.runs.turns). Its
    turns and transcript live in partition WS#<id>#CONVERSATION#<session id>. The
    usage is its ended turns' runs' usage, added once as each turn is done."""

    id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    agent_id = UnicodeAttribute()
    agent_version = UnicodeAttribute()  # the agent's version it runs ("latest": whatever the agent is at launch)
    title = UnicodeAttribute(null=True)
    launched = NumberAttribute(default=0)
    done_turns = NumberAttribute(default=0)
    event_seq = NumberAttribute(default=0)  # the last session event's seq (agenthq.runs.session_events)
    last_run_id = UnicodeAttribute(null=True)
    created_by = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    @staticmethod
    def key(workspace_id: str, session_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"CONVERSATION#{session_id}"

    @staticmethod
    def partition(workspace_id: str, session_id: str) -> str:
        return ws_pk(workspace_id, "CONVERSATION", session_id)

    def owned_partitions(self) -> list[str]:
        return [self.partition(self.workspace_id, self.id)]


class SessionTurn(BaseItem, discriminator="SessionTurn"):
    """pk WS#<id>#CONVERSATION#<session id>, sk TURN#<n, 6 digits>: the session's n-th
    turn and its run, written by the launch that numbered it. ``task_token``: the
    run's WaitForSlot task while it waits for the turn before to end."""

    number = NumberAttribute()
    run_id = UnicodeAttribute()
    launched_at = UTCDateTimeAttribute()
    task_token = UnicodeAttribute(null=True)

    @staticmethod
    def key(workspace_id: str, session_id: str, number: int) -> tuple[str, str]:
        return AgentSession.partition(workspace_id, session_id), f"TURN#{number:06d}"


class SessionHandOn(BaseItem, discriminator="SessionHandOn"):
    """pk WS#<id>#CONVERSATION#<session id>, sk HANDON#<run id>; gsi1 (sparse, global, in a few shards:
    every session turn's end writes one): SESSION_HANDONS#<shard> / <ended at>#<wid>#<session id>#<run id>.
    A session turn's run has ended and
    the hand-on after it (``runs.turns.on_end``: its turn done, the next turn started or the session
    idle) may not have happened yet: written in the run's ending transaction, deleted once the hand-on
    is through. The minute schedule hands on for those older than a minute (a crashed end or cancel)."""

    workspace_id = UnicodeAttribute()
    session_id = UnicodeAttribute()
    run_id = UnicodeAttribute()
    ended_at = UTCDateTimeAttribute()

    SHARDS = 8

    @staticmethod
    def shard(index: int) -> str:
        return f"SESSION_HANDONS#{index}"

    @staticmethod
    def shard_of(run_id: str) -> str:
        return SessionHandOn.shard(ord(run_id[-1]) % SessionHandOn.SHARDS)

    @staticmethod
    def key(workspace_id: str, session_id: str, run_id: str) -> tuple[str, str]:
        return AgentSession.partition(workspace_id, session_id), f"HANDON#{run_id}"

    @staticmethod
    def due_key(workspace_id: str, session_id: str, run_id: str, ended_at: Any) -> str:
        return f"{ended_at.strftime('%Y-%m-%dT%H:%M:%S')}#{workspace_id}#{session_id}#{run_id}"


class TranscriptEntry(BaseItem, discriminator="TranscriptEntry"):
    """pk WS#<id>#CONVERSATION#<session id>, sk MSG#<turn, 6 digits>#<1 user | 2 assistant>:
    the session's transcript as people read it (every turn, even those compacted away)."""

    role = UnicodeAttribute()
    text = UnicodeAttribute()
    run_id = UnicodeAttribute()
    at = UTCDateTimeAttribute()

    @staticmethod
    def key(workspace_id: str, session_id: str, turn: int, role: str) -> tuple[str, str]:
        return AgentSession.partition(workspace_id, session_id), f"MSG#{turn:06d}#{1 if role == 'user' else 2}"


class SessionEvent(BaseItem, discriminator="SessionEvent"):
    """pk WS#<id>#CONVERSATION#<session id>, sk EVT#<session seq, 10 digits>: every event of the
    session's runs and their delegated children, under one dense session sequence from 1, written
    in the same transaction as the run event it copies (agenthq.runs.session_events)."""

    seq = NumberAttribute()
    run_id = UnicodeAttribute()
    run_seq = NumberAttribute()
    event_type = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    data = Utf8JSONAttribute()

    @staticmethod
    def key(workspace_id: str, session_id: str, seq: int) -> tuple[str, str]:
        return AgentSession.partition(workspace_id, session_id), f"EVT#{seq:010d}"


class ConversationSummary(BaseItem, discriminator="ConversationSummary"):
    """pk WS#<id>#CONVERSATION#<session id>, sk SUMMARY#<through turn, 6 digits>: a summary of the
    session's turns 1 … ``through_turn`` (the earlier summary included), made by a metered model call of
    the run ``run_id`` when its prompt would pass the agent's context budget. Later turns' prompts begin
    with the newest summary instead of the turns it replaced; the transcript keeps them all."""

    text = UnicodeAttribute()
    through_turn = NumberAttribute()
    replaced_turns = Utf8JSONAttribute()  # the turn numbers this summary newly folded in
    run_id = UnicodeAttribute()
    at = UTCDateTimeAttribute()

    @staticmethod
    def key(workspace_id: str, session_id: str, through_turn: int) -> tuple[str, str]:
        return AgentSession.partition(workspace_id, session_id), f"SUMMARY#{through_turn:06d}"


class Schedule(BaseItem, discriminator="Schedule"):
    """pk WS#<id>, sk SCHEDULE#<schedule_id>: runs an agent on a cron in a time zone (agenthq.schedules),
    with one EventBridge Scheduler schedule of the same id. ``last_fire_at`` orders the fires recorded
    on it, so a late redelivery never overwrites a newer fire's record."""

    id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    agent_id = UnicodeAttribute()
    cron = UnicodeAttribute()
    timezone = UnicodeAttribute()
    input = UnicodeAttribute()
    session_id = UnicodeAttribute(null=True)
    enabled = BooleanAttribute(default=True)
    created_by = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    last_fire_at = UTCDateTimeAttribute(null=True)
    last_fire_status = UnicodeAttribute(null=True)  # launched | skipped
    last_fire_reason = UnicodeAttribute(null=True)  # why skipped: the refusing error's code
    last_fire_message = UnicodeAttribute(null=True)
    last_fire_run_id = UnicodeAttribute(null=True)
    # The shortest gap between two of its fires (seconds; None: at most one in two days), measured when its
    # cron or time zone was set: a fire checks it against the tier's shortest interval of that moment.
    shortest_gap_seconds = NumberAttribute(null=True)

    @staticmethod
    def key(workspace_id: str, schedule_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"SCHEDULE#{schedule_id}"


class ScheduleCount(BaseItem, discriminator="ScheduleCount"):
    """pk WS#<id>, sk SCHEDULES: how many schedules the workspace has, moved in the same transaction
    as a schedule's item, on the condition that it stays within the tier's ``schedules``."""

    total = NumberAttribute(default=0)

    @staticmethod
    def key(workspace_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), "SCHEDULES"


# --------------------------------------------------------------------------- webhooks (agenthq.webhooks)
# All in the workspace's partition ``WS#<id>`` (offboarding deletes them with it). How many endpoints a
# workspace has is ``Workspace.webhook_count`` (the tier's ``webhooks``), moved with the endpoint it counts.


class Webhook(BaseItem, discriminator="Webhook"):
    """pk WS#<id>, sk WEBHOOK#<webhook_id>: an endpoint, its event filter and its signing secret."""

    id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    url = UnicodeAttribute()
    events = ListAttribute(of=UnicodeAttribute)
    description = UnicodeAttribute(null=True)
    # The signing secret (``whsec_…``): a symmetric key the sender must hold to sign (Standard Webhooks).
    # Read only by the delivery function; never in a view, a log line, an event or an error.
    signing_secret = UnicodeAttribute()
    status = UnicodeAttribute(default="active")  # active | disabled
    disabled_reason = UnicodeAttribute(null=True)
    failing_since = UTCDateTimeAttribute(null=True)  # the first failed attempt since the last success
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()

    @staticmethod
    def key(workspace_id: str, webhook_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"WEBHOOK#{webhook_id}"


class WebhookAttempt(MapAttribute):  # type: ignore[type-arg]  # pynamodb's generic MapAttribute
    at = UTCDateTimeAttribute()
    status_code = NumberAttribute(null=True)  # None: no answer (refused, timed out, not connected)
    error = UnicodeAttribute(null=True)  # why, in words safe to show the tenant


class WebhookDelivery(BaseItem, discriminator="WebhookDelivery"):
    """pk WS#<id>, sk WHDELIVERY#<webhook_id>#<delivery_id>: one event to one endpoint, each attempt; TTL 30 days."""

    id = UnicodeAttribute()  # also the ``webhook-id`` header: the same on every attempt
    webhook_id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    # not stored as ``event_type``: the table stream's webhook filter picks events by that attribute, and a
    # delivery must never look like an event to deliver (tests/unit/test_webhook_events.py)
    event_type = UnicodeAttribute(attr_name="delivered_event")
    payload = Utf8JSONAttribute()  # the body, signed as sent (ids and statuses only)
    status = UnicodeAttribute(default="pending")  # pending | delivered | failed
    attempt_limit = NumberAttribute()  # attempts this round may make: the schedule's, or 1 more (manual, test)
    claimed_until = UTCDateTimeAttribute(null=True)  # an attempt under way (one copy of a message at a time)
    attempts = ListAttribute(of=WebhookAttempt, default=list)
    next_attempt_at = UTCDateTimeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    @staticmethod
    def key(workspace_id: str, webhook_id: str, delivery_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"WHDELIVERY#{webhook_id}#{delivery_id}"

    @staticmethod
    def prefix(webhook_id: str) -> str:
        return f"WHDELIVERY#{webhook_id}#"
