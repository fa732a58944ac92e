"""Agent versions: every change to an agent makes a new immutable version.

- :mod:`agenthq.versions.records` — what a version holds and how one is made
  and loaded; below the agents, the runs and the sessions, which all use it
  (:func:`~agenthq.versions.records.load_agent_version` gives the agent as it
  was at a version, ready to launch a run with).
- :mod:`agenthq.versions.api` — the HTTP side: list, read, roll back.
"""
