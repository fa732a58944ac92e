"""Finding a workspace's agent: by id (:func:`load_agent`) or by id or name
(:func:`find_agent`). The one loader the HTTP side, the run engine and the
tools share; it sits below all of them (it needs only the store).

Names are compared in their folded form (:func:`fold_name`): Unicode-normalized
and case-folded. Each agent has a name marker item (``AgentName``) that makes
its name unique in the workspace and finds it by name.
"""

from __future__ import annotations

import unicodedata

from agenthq import ids
from agenthq.errors import NotFound
from agenthq.store import tenant_scope
from agenthq.store.items import Agent, AgentName

MAX_NAME_CHARS = 100


def fold_name(name: str) -> str:
    """The form names are compared in: Unicode-normalized and case-folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def load_agent(workspace_id: str, agent_id: str) -> Agent:
    """The workspace's agent ``agent_id``; :class:`NotFound` otherwise."""
    return Agent.get_or_404(*Agent.key(workspace_id, agent_id), "No such agent.")


def name_marker(workspace_id: str, folded: str) -> AgentName | None:
    return AgentName.get_or_none(*AgentName.key(workspace_id, folded))


def find_agent(workspace_id: str, ref: str) -> Agent:
    """The workspace's agent whose id is ``ref`` or whose name is ``ref``
    (case-insensitively); :class:`NotFound` otherwise."""
    ref = (ref or "").strip()
    if not ref or len(ref) > MAX_NAME_CHARS * 4:
        raise NotFound("No such agent.")
    with tenant_scope(workspace_id):
        agent = Agent.get_or_none(*Agent.key(workspace_id, ref.upper())) if ids.is_id(ref.upper()) else None
        if agent is None:
            marker = name_marker(workspace_id, fold_name(unicodedata.normalize("NFC", ref)))
            if marker is not None:
                agent = Agent.get_or_none(*Agent.key(workspace_id, marker.agent_id))
    if agent is None:
        raise NotFound(f"No agent named or with id '{ref[:120]}' in this workspace.")
    return agent
