"""Which version of its agent a session runs: the one the agent is at when the
session begins, or ``"latest"`` (whatever the agent is at each launch).

Agent versions are being built on their own (issue 20, branch ``versions``);
until they land an agent is at version ``1`` unless its item says otherwise,
and every run uses the agent as it is at launch. This is the one place the
pin is decided, so wiring the versioned launch in touches only this module.
"""

from __future__ import annotations

from typing import Any

LATEST = "latest"


def pinned_version(agent: Any, requested: str | None) -> str:
    """The ``agent_version`` a new session records (as text: a number, or ``latest``)."""
    if requested == LATEST:
        return LATEST
    current = getattr(agent, "version", None)
    return str(int(current)) if current is not None else "1"
