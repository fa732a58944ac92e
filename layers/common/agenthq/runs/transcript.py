"""What a run's conversation stores, within DynamoDB's item size (400 KB, in
UTF-8 bytes: ``agenthq.store.sizes``).

- **The first message**: the input, then the messages other agents sent the
  run's agent since its last run (its inbox), as far as they fit one item. The
  launch refuses (413) an input whose first message could not be stored even
  with no inbox; the start step takes only the inbox messages that fit the room
  the input leaves (``messaging.take_inbox`` with ``room_bytes``), so a message
  is never marked delivered to a run that could not store it: the rest wait, in
  order, for the agent's next run.
- **A turn's tool results** (one user message): each result is bounded, but a
  turn may call many tools (eight reads of one 64 KB note are 512 KB). When they
  do not fit together, the largest are cut to an equal share and say so; each
  tool call keeps its whole result (``ToolCall.result``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agenthq.messaging import inbox_line
from agenthq.store.items import AgentMessage, ConversationMessage
from agenthq.store.sizes import ensure_fits, json_text_bytes, room_in

INBOX_HEADING = "\n\nMessages other agents sent you since your last run:\n"
RESULTS_CUT = "\n… [cut: this turn's tool results were too large to keep together]"


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


def tool_reply(workspace_id: str, run_id: str, index: int, results: list[dict[str, Any]]) -> ConversationMessage:
    """The turn's ``tool_result`` blocks as the next user message, cut to fit one item if they must be."""
    reply = ConversationMessage(*ConversationMessage.key(workspace_id, run_id, index), index=index, role="user",
                                content=results)
    over = -room_in(reply)
    if over <= 0:
        return reply
    sizes = [json_text_bytes(r["content"]) if isinstance(r.get("content"), str) else 0 for r in results]
    budget = sum(sizes) - over - len(results) * json_text_bytes(RESULTS_CUT)
    share = _equal_share(sizes, max(0, budget))
    reply.content = [{**r, "content": clip_bytes(r["content"], share) + RESULTS_CUT} if size > share else r
                     for r, size in zip(results, sizes, strict=True)]
    return reply


def _equal_share(sizes: list[int], budget: int) -> int:
    """The largest cap such that the sizes, each cut to it, add up to at most ``budget``."""
    left, count = budget, len(sizes)
    for size in sorted(sizes):
        if size * count > left:
            return left // count
        left, count = left - size, count - 1
    return max(sizes, default=0)


def clip_bytes(text: str, max_bytes: int) -> str:
    """The longest start of ``text`` that takes at most ``max_bytes`` in a JSON attribute."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if json_text_bytes(text[:middle]) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return text[:low]
