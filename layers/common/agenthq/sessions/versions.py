"""Which version of its agent a session runs (DESIGN §9): the one the agent is at
when the session begins, a version named at its creation, or ``"latest"``
(whatever the agent is at each message). Agent versions are ``agenthq.versions``;
this is the one place a session's pin is decided and turned into the version a
message's run is launched with (``runs.api.launch_run`` →
``versions.records.load_agent_version``).
"""

from __future__ import annotations

from agenthq.store.items import Agent
from agenthq.versions.records import current_version

LATEST = "latest"


def pinned_version(agent: Agent, requested: int | str | None) -> str:
    """The ``agent_version`` a new session records (as text: a version number, or ``latest``);
    ``requested`` is what its creation asked for (None: the agent's version now)."""
    if requested == LATEST:
        return LATEST
    if isinstance(requested, int):
        return str(requested)
    return str(current_version(agent))


def launch_version(session_version: str) -> int | None:
    """The agent version a session's next run is launched with (None: the agent as it is now)."""
    return None if session_version == LATEST else int(session_version)
