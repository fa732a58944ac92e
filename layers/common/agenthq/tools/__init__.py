"""Tools the agents can call: the registry, its safety rails, and the built-ins."""

from agenthq.tools.registry import (
    BUILTIN_TOOL_NAMES,
    PURE_TOOL_NAMES,
    STATEFUL_TOOL_NAMES,
    Tool,
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolResult,
    default_registry,
    validate,
)

__all__ = [
    "BUILTIN_TOOL_NAMES",
    "PURE_TOOL_NAMES",
    "STATEFUL_TOOL_NAMES",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "default_registry",
    "validate",
]
