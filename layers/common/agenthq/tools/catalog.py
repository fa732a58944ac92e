"""Which tools exist: the built-in catalog, above the registry.

``pure_registry()`` holds the tools without state (calculator, current_time);
``run_registry()`` adds the stateful ones (notes, messages, delegation) — what
runs use. Agent validation accepts :data:`BUILTIN_TOOL_NAMES`.

A new built-in tool is a handler and a definition in ``builtin`` (pure) or
``stateful``; its name goes here, and ``tests/unit/test_tools.py`` checks the
names and the definitions agree.
"""

from __future__ import annotations

from agenthq.tools.builtin import pure_tools
from agenthq.tools.registry import ToolRegistry
from agenthq.tools.stateful import stateful_tools

#: Built-in tools without state.
PURE_TOOL_NAMES: tuple[str, ...] = ("calculator", "current_time")
#: Built-in tools that read or write the workspace (delegation is run by the engine).
STATEFUL_TOOL_NAMES: tuple[str, ...] = ("notes_read", "notes_write", "send_message", "delegate")
#: Every built-in tool name: what agent validation accepts as a "known tool".
BUILTIN_TOOL_NAMES: tuple[str, ...] = PURE_TOOL_NAMES + STATEFUL_TOOL_NAMES


def pure_registry() -> ToolRegistry:
    """A registry of the pure built-in tools."""
    registry = ToolRegistry()
    for tool in pure_tools():
        registry.register(tool)
    return registry


def run_registry() -> ToolRegistry:
    """Every built-in tool, pure and stateful: what runs use."""
    registry = pure_registry()
    for tool in stateful_tools():
        registry.register(tool)
    return registry
