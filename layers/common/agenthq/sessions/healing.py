"""Sessions that heal: no session stays ``running`` behind a run that has ended.

A session turn's run ends in one transaction that also writes a ``SessionHandOn`` mark
(``runs.turns.hand_on_owed``); the hand-on after it (``runs.turns.on_end``: the turn done, its
answer in the transcript and its usage on the session, the next turn started or ``session.idle``)
deletes the mark when it is through. A process that dies in between — a run worker past its
retries, a cancel request, a period reset — leaves the mark. The minute schedule
(:func:`hand_on_overdue`) hands on for every mark older than :data:`GRACE`, as the ending process
would have: each of the hand-on's writes is conditional (a turn is done once, the session goes idle
once) and answering a task token a second time is refused by Step Functions, so a hand-on done twice
— by the schedule and a late ending process, or by two schedules — starts no turn twice. The marks
are in the sparse gsi1 partitions ``SESSION_HANDONS#<0-7>`` (sharded by the run id: every session turn's
end writes and deletes one, so a single partition would be a hot key at scale), sorted by when the run
ended: the schedule reads only the overdue ones (eight Queries a minute), usually none. Its start, if
it ever races a start the hand-on answers, is conditional too (``runs.engine.start``: on ``queued``)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from agenthq.observability import logger
from agenthq.runs import turns
from agenthq.store import global_scope, tenant_scope
from agenthq.store.items import Run, SessionHandOn

if TYPE_CHECKING:
    from agenthq.services import Services

#: The ending process hands on within its own invocation (seconds); a mark older than this was left behind.
GRACE = timedelta(minutes=1)
#: Marks handed on per invocation at most (the next minute's run takes the rest).
MAX_PER_SWEEP = 200


def hand_on_overdue(services: Services) -> dict[str, int]:
    """Hand on for every session run that ended more than :data:`GRACE` ago and whose hand-on was never
    finished; what it did."""
    bound = (services.now() - GRACE).strftime("%Y-%m-%dT%H:%M:%S") + "~"  # (``~`` sorts after ``#``)
    owed: list[SessionHandOn] = []
    with global_scope():
        for shard in range(SessionHandOn.SHARDS):
            owed += SessionHandOn.gsi1.query(SessionHandOn.shard(shard), SessionHandOn.gsi1sk < bound,
                                             limit=MAX_PER_SWEEP // SessionHandOn.SHARDS)
    done = {"sessions_handed_on": 0, "session_hand_on_failures": 0}
    for marker in owed:
        try:
            with tenant_scope(marker.workspace_id):
                hand_on_after(services, marker.workspace_id, marker.session_id, marker.run_id)
            done["sessions_handed_on"] += 1
        except Exception:  # noqa: BLE001 - one session's trouble does not stop the others; the next minute tries again
            done["session_hand_on_failures"] += 1
            logger.exception("could not hand on a session", extra={"run_id": marker.run_id})
    if owed:
        logger.warning("session hand-ons were left behind and are done now", extra=done)
    return done


def hand_on_after(services: Services, workspace_id: str, session_id: str, run_id: str) -> None:
    """The hand-on after the end of session run ``run_id`` (idempotent), and its mark gone."""
    run = Run.get_or_none(*Run.key(workspace_id, run_id))
    if run is not None and run.session_id == session_id and run.session_turn:
        turns.on_end(services, run)  # (deletes the mark when through)
    else:  # its workspace is being offboarded: nothing to hand on
        SessionHandOn(*SessionHandOn.key(workspace_id, session_id, run_id)).delete()
