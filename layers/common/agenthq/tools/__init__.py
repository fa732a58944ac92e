"""Tools the agents can call.

- ``registry``: the bottom — ``Tool``, ``ToolContext``, ``ToolResult`` and the
  one safe way to run a tool (schema check, timeout, bounded result).
- ``builtin`` (pure tools) and ``stateful`` (notes, messages, delegation):
  handlers and definitions.
- ``catalog``: which tools exist; builds the registries runs use.
"""
