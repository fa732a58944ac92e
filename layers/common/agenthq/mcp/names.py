"""Names and bounds: what a server may be called, and what of its tool list reaches the model.

An agent names an MCP tool ``mcp__<server>__<tool>``. A server's name has no
underscore, so the name splits one way only; the whole name must satisfy
Anthropic's rule for tool names (``^[a-zA-Z0-9_-]{1,64}$``) and never be a
built-in's. A server sends its tool list; each tool is checked here before it is
stored (and so before any model sees it): a name that would break the rules, a
description or an input schema past its bound, or a list past its length are
left out, and the server's status says which and why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agenthq.tools.catalog import BUILTIN_TOOL_NAMES

PREFIX = "mcp__"
SEPARATOR = "__"
SERVER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
#: Anthropic's Messages API accepts tool names matching this.
MODEL_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

MAX_TOOLS = 50  # per server: what is stored and offered to the model
MAX_SCHEMA_BYTES = 4_096  # one tool's input schema, as compact UTF-8 JSON
MAX_DESCRIPTION_CHARS = 1_024
MAX_SKIPPED_SHOWN = 10  # the status lists this many left-out tools (and counts them all)


def tool_name(server: str, tool: str) -> str:
    """The name an agent lists and the model calls: ``mcp__<server>__<tool>``."""
    return f"{PREFIX}{server}{SEPARATOR}{tool}"


def split(name: str) -> tuple[str, str] | None:
    """``(server, tool)`` of an MCP tool name; None when ``name`` is not one."""
    if not name.startswith(PREFIX):
        return None
    server, sep, tool = name[len(PREFIX):].partition(SEPARATOR)
    if not sep or not tool or not SERVER_NAME.fullmatch(server):
        return None
    return server, tool


def is_mcp_tool(name: str) -> bool:
    return name.startswith(PREFIX)


@dataclass(frozen=True)
class RemoteTool:
    """A tool as a server describes it."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class Checked:
    """A server's tool list after the checks: the tools kept and those left out (with why)."""

    tools: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    skipped_count: int


def check_tools(server: str, remote: Iterable[RemoteTool]) -> Checked:
    """Keep the tools that are safe to offer to a model; say why the others are left out."""
    kept: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    seen: set[str] = set()
    for tool in remote:
        reason = _problem(server, tool, seen)
        if reason is None and len(kept) >= MAX_TOOLS:
            reason = f"more than {MAX_TOOLS} tools"
        if reason is not None:
            skipped.append({"name": tool.name[:80], "reason": reason})
            continue
        seen.add(tool.name)
        kept.append({"name": tool.name, "description": tool.description.strip()[:MAX_DESCRIPTION_CHARS],
                     "input_schema": tool.input_schema})
    return Checked(kept, skipped[:MAX_SKIPPED_SHOWN], len(skipped))


def _problem(server: str, tool: RemoteTool, seen: set[str]) -> str | None:
    full = tool_name(server, tool.name)
    if not tool.name or not MODEL_TOOL_NAME.fullmatch(full):
        return "its name is not a valid tool name (letters, digits, _ and -; at most 64 with the prefix)"
    if full in BUILTIN_TOOL_NAMES:
        return "its name is a built-in tool's"
    if tool.name in seen:
        return "its name is listed twice"
    schema = tool.input_schema
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        return "its input schema is not a JSON object schema"
    try:
        size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError):
        return "its input schema is not JSON"
    if size > MAX_SCHEMA_BYTES:
        return f"its input schema is larger than {MAX_SCHEMA_BYTES} bytes"
    return None


def tools_of(servers: Mapping[str, list[dict[str, Any]]]) -> set[str]:
    """Every ``mcp__<server>__<tool>`` name the given servers' stored tool lists offer."""
    return {tool_name(server, t["name"]) for server, tools in servers.items() for t in tools}
