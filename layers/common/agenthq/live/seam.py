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

Subscribing twice (:func:`claim`): a connection has one subscription item per
run (session, the workspace), and a subscribe writes it only on the condition
that it does not exist. A subscribe that finds it is a no-op — the connection
already follows it: its replay is under way in another invocation, or it is
live — and sends nothing, so two subscribes handled at once by two invocations
still make one stream. The replaying subscribe holds a lease on the item
(``replay_until``, :data:`REPLAY_LEASE_SECONDS` past its start, longer than the
ws function's Timeout, so the invocation that holds it is over by then). A
replay that stops without handing over — at its page (``more``: the client
subscribes again from ``through``), or on an error — gives its lease up; a
subscribe that finds a replaying subscription without a current lease takes it
over with one conditional update (``replaying`` still the token it read, the
lease still absent or past): a new token, its own ``after``, and it replays.
The replay it replaced can no longer hand over (its token is gone), so it
sends nothing more once its current ``send`` returns — and it gave its lease up
only after its last send, or died with it.
"""

from __future__ import annotations

from collections.abc import Callable

from pynamodb.exceptions import PutError, UpdateError

from agenthq import ids
from agenthq.adapters.connections import ConnectionGone
from agenthq.live.protocol import run_event_frame, session_event_frame
from agenthq.observability import logger
from agenthq.runs import session_events
from agenthq.runs.records import event_view, iter_events, load_run
from agenthq.store.items import LiveSubscription, Run

#: How often a replay tries to hand over while events keep arriving before it answers ``more``.
HAND_OVER_ATTEMPTS = 20
#: How often the broadcaster re-reads a subscription that changed under it (a new subscribe each time).
MARK_ATTEMPTS = 5
#: How long a subscribe's replay holds its subscription (seconds): longer than the ws function's Timeout
#: (29 s in template.yaml; tests/unit/test_live_claim.py keeps them so), so its invocation is over by then.
REPLAY_LEASE_SECONDS = 30
#: How often a subscribe tries to claim a subscription that changes under it before it answers as joined.
CLAIM_ATTEMPTS = 5


def new_token() -> str:
    """The token of one subscribe's replay (``LiveSubscription.replaying``)."""
    return ids.new_id()


def claim(subscription: LiveSubscription, now: float) -> bool:
    """Write a new subscription, or take over a replaying one no invocation holds: True, this subscribe
    replays (a run's or a session's) or made the workspace subscription. False: the connection already
    follows it (live, or replayed by another subscribe under way) and this subscribe does nothing.
    ``subscription`` is the item as this subscribe would write it (its token, its ``after``); ``now``
    is epoch seconds."""
    if subscription.replaying is not None:
        subscription.replay_until = now + REPLAY_LEASE_SECONDS
    for _ in range(CLAIM_ATTEMPTS):
        try:
            subscription.save(condition=LiveSubscription.pk.does_not_exist())
            return True
        except PutError as exc:
            if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                raise
        if subscription.replaying is None:
            return False  # the workspace's: there is nothing to replay, it is followed already
        found = LiveSubscription.get_or_none(subscription.pk, subscription.sk)
        if found is None:
            continue  # unsubscribed meanwhile: write it anew
        held = found.replay_until is not None and float(found.replay_until) > now
        if found.replaying is None or held:
            return False  # live, or another subscribe's replay is under way: it is the connection's one stream
        try:  # a replay that stopped at its page, failed, or whose invocation is over: this subscribe's now
            LiveSubscription(subscription.pk, subscription.sk).update(
                actions=[LiveSubscription.replaying.set(subscription.replaying),
                         LiveSubscription.replay_until.set(subscription.replay_until),
                         LiveSubscription.after.set(int(subscription.after or 0)),
                         LiveSubscription.missed.remove()],
                condition=(LiveSubscription.replaying == found.replaying)
                & (LiveSubscription.replay_until.does_not_exist() | (LiveSubscription.replay_until <= now)))
            subscription.missed = None
            return True
        except UpdateError as exc:
            if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                raise
    return False


def release(subscription: LiveSubscription) -> None:
    """A replay that stops without handing over (its page is full, the client left, an error) gives its
    lease up, so that the client's next subscribe takes the replay over (:func:`claim`)."""
    try:
        LiveSubscription(subscription.pk, subscription.sk).update(
            actions=[LiveSubscription.replay_until.remove()],
            condition=LiveSubscription.replaying == subscription.replaying)
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
            raise  # (failed on its condition: unsubscribed, or taken over — not this replay's any more)


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
    stored (seq, frame) pairs after ``seq``, at most ``count`` of them. A replay that stops without
    handing over gives its lease up (:func:`release`)."""
    try:
        through, more, gone = _replay_events(events_after, reread, subscription, limit, send)
    except BaseException:
        try:
            release(subscription)
        except Exception:  # noqa: BLE001 - the replay's own failure is the one to report; the lease runs out
            logger.warning("could not release subscription %s", subscription.sk, exc_info=True)
        raise
    if more or gone:
        release(subscription)
    return through, more, gone


def _replay_events(events_after: Callable[[int, int], list[tuple[int, bytes]]], reread: Callable[[], None],
                   subscription: LiveSubscription, limit: int,
                   send: Callable[[bytes], None]) -> tuple[int, bool, bool]:
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
                             LiveSubscription.missed.remove(), LiveSubscription.replay_until.remove()],
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
