"""Tool policies: whether a tool call runs (``allow``), waits for a person (``ask``) or is refused
(``deny``). An agent's ``tool_policies`` name only the tools it differs on; every other tool has
its default (:func:`default_policy`): built-ins ``allow``, tools from MCP servers (``mcp__…``)
``ask``. Pure: no I/O, used by agent validation, the run engine and the MCP tools."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

ToolPolicy = Literal["allow", "ask", "deny"]
OnApprovalTimeout = Literal["approve", "deny"]

ALLOW, ASK, DENY = "allow", "ask", "deny"
POLICIES: tuple[str, ...] = (ALLOW, ASK, DENY)
MCP_PREFIX = "mcp__"

DEFAULT_APPROVAL_TIMEOUT_SECONDS = 3_600
MIN_APPROVAL_TIMEOUT_SECONDS = 60
MAX_APPROVAL_TIMEOUT_SECONDS = 7 * 24 * 3_600
DEFAULT_ON_APPROVAL_TIMEOUT = "deny"


def default_policy(tool: str) -> str:
    """A tool's policy when the agent names none: ``ask`` for a tool of an MCP server
    (``mcp__<server>__<tool>``: code the operator never reviewed), ``allow`` for a built-in."""
    return ASK if tool.startswith(MCP_PREFIX) else ALLOW


def policy_of(agent: Mapping[str, Any], tool: str) -> str:
    """The policy of ``tool`` for ``agent`` (an agent's view or a run's snapshot of it)."""
    policies = agent.get("tool_policies") or {}
    return str(policies.get(tool) or default_policy(tool))


def unknown_tools(policies: Mapping[str, str], tools: Iterable[str]) -> list[str]:
    """The tools ``policies`` name that are not among the agent's ``tools`` (refused: a policy
    for a tool the agent cannot call says nothing, and would hide a typo)."""
    allowed = set(tools)
    return sorted(name for name in policies if name not in allowed)
