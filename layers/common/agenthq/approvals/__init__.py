"""Tool calls that wait for a person's approval (DESIGN §9, "Tool approval").

- ``policies``: what an agent's ``tool_policies`` say of a tool (``allow``, ``ask``, ``deny``) and
  the defaults (built-ins ``allow``, MCP tools ``ask``): pure, for agents, the engine and MCP.
- ``gate``: what the run engine calls in a turn's act step: ask for the approvals of the turn's
  ``ask`` calls (the run waits on a task token), read each call's decision, cancel what is pending.
- ``api``: ``GET …/approvals`` and ``POST …/approvals/{apid}`` (decided once: a conditional write).
- ``expiry``: the schedule that applies ``on_approval_timeout`` to approvals past their time, once.
"""
