"""Replay, then live, with no gap and no duplicate at the seam (DESIGN §3).

A run subscription is written with ``replaying`` set to a token of the
subscribe that wrote it. While it is set the broadcaster sends it nothing;
the subscribe sends the run's stored events after ``after`` in seq order and
then **hands over**: one conditional update of the subscription that sets
``after`` to the last seq it sent and clears ``replaying`` — on the condition
that ``replaying`` is still its token and that the broadcaster left it no
later event (``missed``, see below). When the condition fails because of
``missed``, the subscribe reads and sends what came meanwhile, and tries again.

The broadcaster, for a run event ``seq`` and a subscription it reads as
replaying, does not send; it records ``missed = seq`` on the condition that
the same replay still holds it (:func:`takes_live`). If that fails, it reads
the subscription again: handed over meanwhile, it is live.

Why each seq arrives once and in order: the broadcaster reads a subscription
(consistently) only after the event it sends was stored.
- If the read shows it handed over with ``after`` = N, the replay sent exactly
  the seqs up to N, all before the hand-over, so before anything the
  broadcaster sends; the broadcaster sends the seqs above N (the stream hands
  it a run's events in order).
- If the read shows it replaying and ``missed = seq`` is written, the hand-over
  can only succeed with N ≥ seq: the replay sends it, the broadcaster does not.
  If the write fails because the replay handed over meanwhile, the previous
  case applies to the fresh read.
Only the subscription item is written: a run's own writes never wait on or
conflict with its watchers.

A session's cursor (``subscribe`` with ``session_id``) goes through the same
seam (:func:`replay_session`): its events are the session's copies, with the
session's dense seq.

Left to the client: a second subscribe to the same run on the same connection
while the first still replays replays twice (the later one wins the hand-over).
"""

from __future__ import annotations

from collections.abc import Callable

from pynamodb.exceptions import UpdateError

from agenthq import ids
from agenthq.adapters.connections import ConnectionGone
from agenthq.live.protocol import run_event_frame, session_event_frame
from agenthq.runs import session_events
from agenthq.runs.records import event_view, iter_events, load_run
from agenthq.store.items import LiveSubscription, Run

#: How often a replay tries to hand over while events keep arriving before it answers ``more``.
HAND_OVER_ATTEMPTS = 20
#: How often the broadcaster re-reads a subscription that changed under it (a new subscribe each time).
MARK_ATTEMPTS = 5


def new_token() -> str:
    """The token of one subscribe's replay (``LiveSubscription.replaying``)."""
    return ids.new_id()


def replay(run: Run, subscription: LiveSubscription, limit: int,
           send: Callable[[bytes], None]) -> tuple[int, bool, bool]:
    """Send the run's stored events after the subscription's ``after`` (at most ``limit``), then hand
    the subscription over to the broadcaster. Returns (through: the last seq sent, more: the limit
    was reached first and the client must subscribe again from ``through``, gone: the client left)."""
    current = [run]

    def events_after(through: int, count: int) -> list[tuple[int, bytes]]:
        return [(int(e.seq), run_event_frame(run.id, event_view(e))) for e in iter_events(current[0], through, count)]

    def reread() -> None:  # the broadcaster left it a later event: read the run's last seq again
        current[0] = load_run(run.workspace_id, run.id)

    return replay_events(events_after, reread, subscription, limit, send)


def replay_session(workspace_id: str, session_id: str, subscription: LiveSubscription, limit: int,
                   send: Callable[[bytes], None]) -> tuple[int, bool, bool]:
    """:func:`replay` for a session's cursor: its stored session events after ``after``, then live."""

    def events_after(through: int, count: int) -> list[tuple[int, bytes]]:
        return [(int(e.seq), session_event_frame(session_id, session_events.event_view(e)))
                for e in session_events.events_after(workspace_id, session_id, through, count)]

    return replay_events(events_after, lambda: None, subscription, limit, send)


def replay_events(events_after: Callable[[int, int], list[tuple[int, bytes]]], reread: Callable[[], None],
                  subscription: LiveSubscription, limit: int,
                  send: Callable[[bytes], None]) -> tuple[int, bool, bool]:
    """The replay of :func:`replay`, over any dense sequence: ``events_after(seq, count)`` gives the
    stored (seq, frame) pairs after ``seq``, at most ``count`` of them."""
    token = subscription.replaying
    through, sent = int(subscription.after or 0), 0
    for _ in range(HAND_OVER_ATTEMPTS):
        for seq, frame in events_after(through, limit - sent + 1):
            if sent == limit:
                return through, True, False
            try:
                send(frame)
            except ConnectionGone:
                return through, False, True
            through, sent = seq, sent + 1
        handed = _hand_over(subscription, token, through)
        if handed is not None:
            return through, False, False
        reread()
    return through, True, False


def _hand_over(subscription: LiveSubscription, token: str | None, through: int) -> bool | None:
    """True: the broadcaster sends what comes after ``through``; False: the subscription is no longer
    this replay's (unsubscribed, or a newer subscribe replays it); None: an event came meanwhile."""
    item = LiveSubscription(subscription.pk, subscription.sk)
    try:
        item.update(actions=[LiveSubscription.after.set(through), LiveSubscription.replaying.remove(),
                             LiveSubscription.missed.remove()],
                    condition=(LiveSubscription.replaying == token)
                    & (LiveSubscription.missed.does_not_exist() | (LiveSubscription.missed <= through)))
        return True
    except UpdateError:
        fresh = LiveSubscription.get_or_none(subscription.pk, subscription.sk)
        if fresh is None or fresh.replaying != token:
            return False
        return None


def takes_live(subscription: LiveSubscription, seq: int) -> bool:
    """Whether the broadcaster sends run event ``seq`` to this run subscription: it is live and
    ``seq`` is after its ``after``. One still replaying gets ``missed`` instead (its replay sends
    ``seq``); ``subscription`` is refreshed in place when it changed under the broadcaster."""
    for _ in range(MARK_ATTEMPTS):
        if seq <= int(subscription.after or 0):
            return False  # the client has it (a replay never sends it either)
        token = getattr(subscription, "replaying", None)
        if token is None:
            return True
        try:
            LiveSubscription(subscription.pk, subscription.sk).update(
                actions=[LiveSubscription.missed.set(seq)],
                condition=(LiveSubscription.replaying == token)
                & (LiveSubscription.missed.does_not_exist() | (LiveSubscription.missed < seq)))
            return False
        except UpdateError:
            fresh = LiveSubscription.get_or_none(subscription.pk, subscription.sk)
            if fresh is None:  # unsubscribed or forgotten meanwhile
                subscription.replaying, subscription.after = None, 10 ** 12
                return False
            if fresh.replaying == token:
                return False  # its replay already has a later ``missed``: it sends this one too
            subscription.replaying, subscription.after = fresh.replaying, fresh.after
            subscription.missed = fresh.missed
    return False
