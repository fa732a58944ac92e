"""A run's first message: its input, then the messages other agents sent its
agent since its last run (its inbox), as far as they fit one DynamoDB item.

The launch refuses (413) an input whose first message could not be stored even
with no inbox; the start step takes only the inbox messages that fit the room
the input leaves (``messaging.take_inbox`` with ``room_bytes``), so a message is
never marked delivered to a run that could not store it: the rest wait, in
order, for the agent's next run.
"""

from __future__ import annotations

from collections.abc import Sequence

from agenthq.messaging import inbox_line
from agenthq.store.items import AgentMessage, ConversationMessage
from agenthq.store.sizes import ensure_fits, room_in

INBOX_HEADING = "\n\nMessages other agents sent you since your last run:\n"


def opening_message(workspace_id: str, run_id: str, text: str,
                    inbox: Sequence[AgentMessage] = ()) -> ConversationMessage:
    """The run's first message (index 1): the input, then one line per inbox message."""
    if inbox:
        text = text + INBOX_HEADING + "\n".join(inbox_line(m) for m in inbox)
    return ConversationMessage(*ConversationMessage.key(workspace_id, run_id, 1), index=1, role="user",
                               content=[{"type": "text", "text": text}])


def inbox_room(workspace_id: str, run_id: str, text: str) -> int:
    """Bytes the first message has left for inbox lines after the input (and the heading)."""
    return room_in(opening_message(workspace_id, run_id, text + INBOX_HEADING))


def ensure_input_fits(workspace_id: str, run_id: str, text: str) -> None:
    """413 when even the input alone could not be stored as the run's first message."""
    ensure_fits(opening_message(workspace_id, run_id, text), "input", "The input")
