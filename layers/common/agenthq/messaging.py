"""Messages between the agents of a workspace.

An agent's run sends a message with the ``send_message`` tool; the recipient
reads it at the start of its **next run** (the run engine calls
:func:`take_inbox`, which hands each message to exactly one run).

- A message is an ``AgentMessage`` item (pk ``WS#<id>``, sk ``AMSG#<message_id>``)
  that is also in the recipient's inbox index (gsi1 ``WS#<id>#INBOX#<agent_id>``).
- Sending is idempotent: the caller names the message with a deterministic id
  (the tool derives it from its run and tool call) and the put is conditional,
  so a retried tool call finds and returns the message instead of sending twice.
- Delivery is a conditional update of ``delivered_run_id``: a message goes to
  one run only, and a retried start of that same run gets the same messages.
- Message ids are ULID-shaped with the sending run's start time as their time
  part, so listings ("newest first") are ordered by the sending run's start;
  messages of one run are in no particular order among themselves. An inbox
  is handed over oldest first by ``created_at``.
- On AWS the inbox index is eventually consistent: a message sent a moment
  before the recipient's run starts may wait for the run after it.
- Delivered messages stay in the inbox index (``GET /messages?agent_id=``
  lists them), so taking an inbox reads the agent's whole message history;
  fine for the volumes agents send, worth a sparse index if inboxes grow large.
"""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import PutError, UpdateError

from agenthq import ids
from agenthq.agent_lookup import find_agent
from agenthq.clock import Clock
from agenthq.context import Principal, Scope
from agenthq.errors import InvalidRequest
from agenthq.pagination import Page, page, workspace_page
from agenthq.store import tenant_scope
from agenthq.store.items import AgentMessage
from agenthq.store.sizes import json_text_bytes
from agenthq.text import clip

MAX_BODY_CHARS = 10_000
INBOX_BATCH = 20
#: Each inbox message is shown to the receiving run up to this many characters.
INBOX_MESSAGE_CHARS = 2000


def message_id_for(run_id: str, call_id: str) -> str:
    """The id of the message a run's tool call sends: the same call, the same id."""

    return ids.derived_id(run_id, "message", call_id)


def message_view(message: AgentMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "workspace_id": message.workspace_id,
        "from_agent_id": message.from_agent_id,
        "from_run_id": message.from_run_id,
        "to_agent_id": message.to_agent_id,
        "body": message.body,
        "created_at": message.created_at.isoformat(),
        "delivered_run_id": message.delivered_run_id,
    }


def send_message(clock: Clock, workspace_id: str, from_agent_id: str, from_run_id: str, to_agent_ref: str,
                 body: str, message_id: str) -> AgentMessage:
    """Store a message to the workspace's agent ``to_agent_ref`` (id or name).

    Idempotent on ``message_id``: if it was stored already, that message is
    returned. Raises :class:`NotFound` for an unknown recipient (including any
    agent of another workspace) and :class:`InvalidRequest` for a bad body or a
    message to oneself."""
    if not isinstance(body, str) or not body.strip() or len(body) > MAX_BODY_CHARS:
        raise InvalidRequest(f"A message needs a body of 1 to {MAX_BODY_CHARS:,} characters.",
                             details=[{"field": "body", "message": f"1 to {MAX_BODY_CHARS} characters"}])
    if not ids.is_id(message_id):
        raise ValueError("message_id must be a ULID-shaped id")
    with tenant_scope(workspace_id):
        existing = AgentMessage.get_or_none(*AgentMessage.key(workspace_id, message_id))
        if existing is not None:
            return existing
        recipient = find_agent(workspace_id, to_agent_ref)
        if recipient.id == from_agent_id:
            raise InvalidRequest("An agent cannot send a message to itself.",
                                 details=[{"field": "to_agent", "message": "is the sender"}])
        message = AgentMessage(
            *AgentMessage.key(workspace_id, message_id), id=message_id, workspace_id=workspace_id,
            from_agent_id=from_agent_id, from_run_id=from_run_id, to_agent_id=recipient.id, body=body,
            created_at=clock.now(),
            gsi1pk=AgentMessage.inbox(workspace_id, recipient.id), gsi1sk=f"AMSG#{message_id}",
        )
        try:
            message.save(condition=AgentMessage.pk.does_not_exist())
        except PutError:
            existing = AgentMessage.get_or_none(*AgentMessage.key(workspace_id, message_id))  # a concurrent retry stored it first
            if existing is None:
                raise
            return existing
        return message


def list_messages(principal: Principal, agent_id: str | None, cursor: str | None, limit: int) -> Page:
    """The workspace's messages, newest first; with ``agent_id``, that agent's inbox."""
    principal.require(Scope.runs_read)
    workspace_id = principal.workspace_id
    with tenant_scope(workspace_id):
        if agent_id is None:
            return workspace_page(AgentMessage, workspace_id, "AMSG#", message_view, cursor, limit,
                                  scan_index_forward=False)
        if not ids.is_id(agent_id):
            raise InvalidRequest("agent_id is not an agent id.",
                                 details=[{"field": "agent_id", "in": "query", "message": "not an agent id"}])
        inbox = AgentMessage.inbox(workspace_id, agent_id)
        return page(lambda start: AgentMessage.gsi1.query(inbox, AgentMessage.gsi1sk.startswith("AMSG#"),
                                                          scan_index_forward=False, limit=limit,
                                                          last_evaluated_key=start),
                    message_view, cursor, partition=inbox, sk_prefix="AMSG#", index="gsi1")


def inbox_line(message: AgentMessage) -> str:
    """How a message is shown to the run that receives it (one line of its first message)."""
    return f"- from agent {message.from_agent_id}: {clip(message.body, INBOX_MESSAGE_CHARS)}"


def line_bytes(message: AgentMessage) -> int:
    """What the message's line adds to the stored first message (with its line break)."""
    return json_text_bytes(inbox_line(message)) + 2


def take_inbox(workspace_id: str, agent_id: str, run_id: str, limit: int = INBOX_BATCH,
               room_bytes: int | None = None) -> list[AgentMessage]:
    """Hand the agent's undelivered messages (at most ``limit``, oldest first) to
    its run ``run_id``, marking each delivered to it.

    With ``room_bytes``, only as many as fit that room (their :func:`line_bytes`)
    are taken, in order: the first one that does not fit and every later one
    stay undelivered, for the agent's next run. No message is marked delivered
    that the run's first message could not hold.

    Retry-safe: if messages were already handed to ``run_id`` (an earlier
    attempt of the same step), exactly those are returned and no new ones are
    taken, so a retried step sees the list the first attempt took. A message
    another run took meanwhile is skipped."""
    inbox = AgentMessage.inbox(workspace_id, agent_id)
    open_or_ours = AgentMessage.delivered_run_id.does_not_exist() | (AgentMessage.delivered_run_id == run_id)
    with tenant_scope(workspace_id):
        # No Limit on the query: every message already ours must be found, wherever it sorts.
        candidates = list(AgentMessage.gsi1.query(inbox, AgentMessage.gsi1sk.startswith("AMSG#"),
                                                  filter_condition=open_or_ours))
        ours = [m for m in candidates if m.delivered_run_id == run_id]
        if ours:
            return _in_order(ours)
        taken = []
        room = room_bytes
        for message in _in_order(candidates)[:limit]:
            if room is not None:
                room -= line_bytes(message)
                if room < 0:
                    break  # this one and the later ones wait for the next run, in order
            try:
                message.update(actions=[AgentMessage.delivered_run_id.set(run_id)],
                               condition=AgentMessage.pk.exists() & open_or_ours)
            except UpdateError:
                continue  # another run took it (or it is gone)
            taken.append(message)
        return taken


def _in_order(messages: list[AgentMessage]) -> list[AgentMessage]:
    return sorted(messages, key=lambda m: (m.created_at, m.id))
