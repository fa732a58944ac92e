"""The tool registry: tools with JSON schemas, executed safely for the agent loop.

A tool is a named handler with an input schema in the Anthropic tool format.
:meth:`ToolRegistry.execute` is what the Act step calls for every ``tool_use``
block; it never raises for a tool's problems. Everything that can go wrong
(a tool the agent may not use, input that fails the schema, a handler that
raises or hangs, an oversized result) becomes a :class:`ToolResult` with
``is_error=True`` that goes back to the model as a ``tool_result`` block.

A handler receives only its validated input and a :class:`ToolContext`. The
context carries the workspace of the run; a tool has no way to name another
workspace, and stateful tools tell the time only through ``ctx.clock``.

Timeouts: the handler runs in a daemon worker thread and the caller waits at
most ``timeout_seconds``. Python cannot stop a thread, so a handler that times
out keeps running in the background until it returns; its result is dropped.
Handlers that do I/O should therefore also bound their own calls.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agenthq.clock import SYSTEM_CLOCK, Clock
from agenthq.text import clip

logger = logging.getLogger(__name__)

TOOL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TOOL_KINDS = ("pure", "stateful")

_MAX_ERROR_CHARS = 500


class ToolError(Exception):
    """Raised by a handler to report a clean, model-facing error message."""


@dataclass(frozen=True)
class ToolContext:
    """What a tool knows about the call: the run it serves, and nothing more."""

    workspace_id: str
    run_id: str
    agent_id: str
    depth: int
    clock: Clock = SYSTEM_CLOCK
    call_id: str = ""  # the tool_use id: lets a stateful tool make its writes idempotent


Handler = Callable[[dict[str, Any], ToolContext], "str | dict[str, Any]"]


@dataclass(frozen=True)
class Tool:
    """A tool the model can call."""

    name: str
    description: str
    input_schema: dict[str, Any]
    handler: Handler
    timeout_seconds: float = 10
    max_result_chars: int = 16_000
    kind: str = "pure"

    def __post_init__(self) -> None:
        if not TOOL_NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"invalid tool name {self.name!r}: must match {TOOL_NAME_PATTERN.pattern}")
        if not self.description.strip():
            raise ValueError(f"tool {self.name!r} needs a description")
        if self.kind not in TOOL_KINDS:
            raise ValueError(f"tool {self.name!r}: kind must be one of {TOOL_KINDS}")
        if self.input_schema.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: input_schema must have type 'object'")
        check_schema(self.input_schema)
        if not self.timeout_seconds > 0:
            raise ValueError(f"tool {self.name!r}: timeout_seconds must be positive")
        if self.max_result_chars < 1:
            raise ValueError(f"tool {self.name!r}: max_result_chars must be positive")

    def definition(self) -> dict[str, Any]:
        """The tool in the Anthropic Messages API format."""
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one tool call, ready to go back to the model."""

    content: str
    is_error: bool = False

    def to_block(self, tool_use_id: str) -> dict[str, Any]:
        """A ``tool_result`` content block answering ``tool_use_id``."""
        return {"type": "tool_result", "tool_use_id": tool_use_id, "content": self.content, "is_error": self.is_error}


@dataclass
class ToolRegistry:
    """Tools by name, and the one safe way to run them."""

    _tools: dict[str, Tool] = field(default_factory=dict)

    def register(self, tool: Tool, *, replace: bool = False) -> None:
        """Add ``tool``; a second tool of the same name is refused unless ``replace``."""
        if tool.name in self._tools and not replace:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def longest_timeout(self) -> float:
        """The most seconds any one tool call may take."""
        return max((tool.timeout_seconds for tool in self._tools.values()), default=0.0)

    def definitions(self, allowed: Iterable[str]) -> list[dict[str, Any]]:
        """Definitions of the ``allowed`` tools, in that order; unknown names are skipped."""
        seen: set[str] = set()
        out = []
        for name in _names(allowed):
            tool = self._tools.get(name)
            if tool is not None and name not in seen:
                seen.add(name)
                out.append(tool.definition())
        return out

    def execute(self, name: str, input: Any, ctx: ToolContext, allowed: Iterable[str]) -> ToolResult:
        """Run tool ``name`` with ``input``. Never raises for a tool's problems."""
        tool = self._tools.get(name)
        if tool is None:
            return ToolResult(f"Unknown tool '{clip(name, 80)}'.", is_error=True)
        if name not in set(_names(allowed)):
            return ToolResult(f"Tool '{name}' is not allowed for this agent.", is_error=True)
        if not isinstance(input, dict):
            return ToolResult("Invalid input: input must be a JSON object.", is_error=True)
        problems = validate(tool.input_schema, input)
        if problems:
            return ToolResult("Invalid input: " + "; ".join(problems[:5]), is_error=True)
        try:
            value = _run_with_timeout(tool, input, ctx)
        except _Timeout:
            return ToolResult(f"Tool '{name}' timed out after {tool.timeout_seconds:g}s.", is_error=True)
        except ToolError as exc:
            return ToolResult(clip(str(exc) or "The tool failed.", _MAX_ERROR_CHARS), is_error=True)
        except Exception as exc:  # noqa: BLE001 - any handler failure goes back to the model
            logger.warning("tool %s failed", name, exc_info=True)
            return ToolResult(clip(f"{type(exc).__name__}: {exc}", _MAX_ERROR_CHARS), is_error=True)
        content = _encode(value)
        if content is None:
            return ToolResult(f"Tool '{name}' returned a result that is not text or a JSON object.", is_error=True)
        return ToolResult(clip(content, tool.max_result_chars))


def _names(allowed: Iterable[str]) -> Iterable[str]:
    if isinstance(allowed, str):
        raise TypeError("allowed must be a collection of tool names, not a string")
    return allowed


# --- running a handler -------------------------------------------------------------


class _Timeout(Exception):
    pass


def _run_with_timeout(tool: Tool, input: dict[str, Any], ctx: ToolContext) -> Any:
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()  # the handler sees the caller's context variables

    def work() -> None:
        try:
            outcome["value"] = context.run(tool.handler, input, ctx)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=f"tool-{tool.name}", daemon=True)
    worker.start()
    worker.join(tool.timeout_seconds)
    if worker.is_alive():
        raise _Timeout
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _encode(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return None
    return None


# --- a small JSON Schema validator ------------------------------------------------------

_SUPPORTED_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum",
        "minLength", "maxLength", "minimum", "maximum", "maxItems", "description", "title", "default",
    }
)
_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def check_schema(schema: Mapping[str, Any], path: str = "input_schema") -> None:
    """Refuse a schema that uses keywords :func:`validate` would silently ignore."""
    unsupported = set(schema) - _SUPPORTED_KEYWORDS
    if unsupported:
        raise ValueError(f"{path}: unsupported schema keywords {sorted(unsupported)}")
    if "type" in schema and schema["type"] not in _TYPE_NAMES:
        raise ValueError(f"{path}: unsupported type {schema['type']!r}")
    for key, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{path}.properties.{key}")
    if isinstance(schema.get("items"), Mapping):
        check_schema(schema["items"], f"{path}.items")


def validate(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """Problems of ``value`` against ``schema``, as ``"<field>: <problem>"`` messages."""
    where = path or "input"
    expected = schema.get("type")
    if expected is not None and not _is_type(value, expected):
        return [f"{where}: must be {_TYPE_NAMES.get(expected, expected)}"]

    problems: list[str] = []
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        options = ", ".join(json.dumps(option) for option in schema["enum"])
        problems.append(f"{where}: must be one of {options}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{where}: must be at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: must be at most {schema['maxLength']} characters")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: must be <= {schema['maximum']}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: must have at most {schema['maxItems']} items")
        if isinstance(schema.get("items"), Mapping):
            for index, item in enumerate(value):
                problems += validate(schema["items"], item, f"{where}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        prefix = f"{path}." if path else ""
        for name in schema.get("required", ()):
            if name not in value:
                problems.append(f"{prefix}{name}: is required")
        for name, item in value.items():
            if name in properties:
                problems += validate(properties[name], item, f"{prefix}{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{prefix}{name}: is not an allowed field")
    return problems


def _is_type(value: Any, expected: str) -> bool:
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    if expected == "null":
        return value is None
    return False


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1``."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)
