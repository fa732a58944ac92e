"""Tools from a workspace's own MCP servers (DESIGN §9, issue 22).

- ``names``: what a server and its tools may be called, and the bounds on what a
  server may send (tool count, schema and description sizes);
- ``connector``: the one way AgentHQ talks to an MCP server (the official ``mcp``
  SDK's Streamable HTTP client over the guarded HTTP client, ``agenthq.outbound``);
- ``vault``: where a server's header values (its secrets) live — one Secrets
  Manager secret per server, never in the table;
- ``servers``: the API (register, list, get, refresh, delete);
- ``tools``: what a run sees (definitions for the model) and does (a call, whose
  every failure is an ``is_error`` result).
"""
