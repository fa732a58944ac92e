"""One gapless event cursor per session (DESIGN §9): every event of a session's
runs and of their delegated children is also stored as a ``SessionEvent`` with
the session's next seq, in the same transaction as the run event.

The seq is allocated from the session's ``event_seq`` counter: each writer reads
it (consistently), writes its events at the seqs after it, and moves the
counter on the condition that it is still what was read. Concurrent writers (a
run's step and a cancel, a parent and its child) conflict on that condition and
the loser retries with the new count, so the session's seqs are dense and
gapless and each names exactly one event. A session that is gone (deleted
while idle) indexes nothing more.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pynamodb.exceptions import TransactWriteError

from agenthq.store.items import AgentSession, SessionEvent

LAST_SEQ = 9_999_999_999


def counter(workspace_id: str, session_id: str) -> int | None:
    """The session's last event seq now, or None when the session is gone."""
    session = AgentSession.get_or_none(*AgentSession.key(workspace_id, session_id), consistent_read=True,
                                       attributes=["pk", "sk", "event_seq"])
    return None if session is None else int(session.event_seq or 0)


def counter_moved(after: int, count: int) -> tuple[Any, Any]:
    """The action and condition that move the session's counter from ``after`` past ``count`` events
    (for an update of the session item the caller writes in its transaction)."""
    condition = AgentSession.pk.exists() & (
        (AgentSession.event_seq == after) if after else
        (AgentSession.event_seq.does_not_exist() | (AgentSession.event_seq == 0)))
    return AgentSession.event_seq.set(after + count), condition


def event_copies(workspace_id: str, session_id: str, after: int, run_id: str,
                 events: list[tuple[int, str, datetime, dict[str, Any]]]) -> list[SessionEvent]:
    """The session's copies of a run's ``events`` ((run seq, type, at, data)), at the seqs after ``after``."""
    return [SessionEvent(*SessionEvent.key(workspace_id, session_id, after + offset), seq=after + offset,
                         run_id=run_id, run_seq=run_seq, event_type=event_type, at=at, data=data)
            for offset, (run_seq, event_type, at, data) in enumerate(events, start=1)]


def write(tx: Any, workspace_id: str, session_id: str, after: int, run_id: str,
          events: list[tuple[int, str, datetime, dict[str, Any]]], *, session_actions: list[Any] | None = None,
          session_condition: Any = None) -> int:
    """In a transaction: the events' session copies and the counter's move (with the caller's own
    ``session_actions`` on the session item, which a transaction may touch once). How many writes it
    added: the first is the session's update."""
    action, condition = counter_moved(after, len(events))
    if session_condition is not None:
        condition &= session_condition
    tx.update(AgentSession(*AgentSession.key(workspace_id, session_id)), actions=[action, *(session_actions or [])],
              condition=condition)
    for copy in event_copies(workspace_id, session_id, after, run_id, events):
        tx.save(copy, condition=SessionEvent.pk.does_not_exist())
    return 1 + len(events)


def refused(exc: TransactWriteError, writes: int) -> bool:
    """Whether the session's writes (the transaction's first ``writes``) were among those refused."""
    reasons = getattr(exc, "cancellation_reasons", None) or []
    return any(reason is not None and getattr(reason, "code", "None") not in ("None", None)
               for reason in reasons[:writes])


def events_after(workspace_id: str, session_id: str, after: int, limit: int) -> list[SessionEvent]:
    if after >= LAST_SEQ:
        return []
    return list(SessionEvent.query(
        AgentSession.partition(workspace_id, session_id),
        SessionEvent.sk.between(SessionEvent.key(workspace_id, session_id, after + 1)[1],
                                SessionEvent.key(workspace_id, session_id, LAST_SEQ)[1]),
        limit=limit, consistent_read=True))


def event_view(event: SessionEvent) -> dict[str, Any]:
    return {"seq": int(event.seq), "run_id": event.run_id, "run_seq": int(event.run_seq), "type": event.event_type,
            "at": event.at.isoformat(), "data": event.data}
