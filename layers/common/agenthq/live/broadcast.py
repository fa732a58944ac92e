"""The broadcaster: a table stream record → frames to the connections subscribed to it.

The stream's event-source mapping hands over only new RunEvent, SessionEvent and
Alert items (a filter in template.yaml). For each record:

- a RunEvent goes to every connection subscribed to its run, and — when it is
  a change of the run's status (``run.*``) — to the workspace's subscribers;
- a SessionEvent (a session's copy of its runs' events, with the session's
  seq) goes, as ``session.event``, to every connection subscribed to the session;
- an Alert goes, as ``usage.alert``, to the workspace's subscribers.

Subscribers are read with a consistent Query of the workspace's ``LIVE``
partition after the record was stored: a run subscription still replaying is
left to its replay (``seam`` says why that closes the replay seam), and each
subscriber's principal is checked again (``standing``, one consistent read
per batch): one whose access ended since it connected — or that may not see
this record (``usage.alert`` needs ``usage:read``) — is sent nothing, and a
connection whose access ended is closed and forgotten. Posts to
different connections run in parallel (bounded); one record is posted to all
before the next, so each connection receives a run's events in seq order.
A 410 (the client left) deletes the connection's items; a 429 is retried with
backoff; a record that could not reach every live subscriber fails
(``ReportBatchItemFailures``), and so does every later record of the batch for
the connections it missed — they are sent nothing more until the mapping's
retry, which starts from the failed record, reaches them: order holds even
then. Clients drop the seqs they already have.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agenthq.adapters.connections import ConnectionGone, SendThrottled
from agenthq.context import Scope
from agenthq.live import limits, seam
from agenthq.live.protocol import alert_frame, run_event_frame, session_event_frame
from agenthq.live.standing import Holder, scopes_held
from agenthq.observability import logger
from agenthq.runs import session_events
from agenthq.runs.records import event_view
from agenthq.store import global_scope
from agenthq.store.items import Alert, LiveConnection, LiveSubscription, RunEvent, SessionEvent
from agenthq.usage.alerts import alert_view

if TYPE_CHECKING:
    from agenthq.services import Services

SEND_ATTEMPTS = 5


_pool: ThreadPoolExecutor | None = None


def pool(services: Services) -> ThreadPoolExecutor:
    """The process's posting threads (LIVE_BROADCAST_PARALLELISM), made on first use and kept while warm."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=services.settings.live_broadcast_parallelism,
                                   thread_name_prefix="broadcast")
    return _pool


class DeliveryFailed(Exception):
    """A record did not reach every subscriber that is still connected."""


@dataclass(frozen=True)
class Delivery:
    """One stream record as frames: what to send, to whom (subscription key prefixes)."""

    workspace_id: str
    data: bytes
    audiences: tuple[str, ...]  # LiveSubscription prefixes: a run's, the workspace's
    seq: int = 0  # a run event's seq: a run subscription gets only those after its ``after``
    needs: Scope = Scope.runs_read  # what a subscriber's principal must hold to be sent it


def delivery_of(new_image: dict[str, Any]) -> Delivery | None:
    """What a stream record's new image asks to send, if anything."""
    kind = (new_image.get("type") or {}).get("S")
    pk = (new_image.get("pk") or {}).get("S", "")
    parts = pk.split("#")
    if kind == "RunEvent" and len(parts) == 4 and parts[0] == "WS" and parts[2] == "RUN":
        workspace_id, run_id = parts[1], parts[3]
        view = event_view(RunEvent.from_raw_data(new_image))
        audiences = [LiveSubscription.prefix(run_id)]
        if str(view["type"]).startswith(("run.", "approval.")):  # status changes, and approvals to decide
            audiences.append(LiveSubscription.prefix(None))
        return Delivery(workspace_id, run_event_frame(run_id, view), tuple(audiences), seq=int(view["seq"]))
    if kind == "SessionEvent" and len(parts) == 4 and parts[0] == "WS" and parts[2] == "CONVERSATION":
        workspace_id, session_id = parts[1], parts[3]
        event = session_events.event_view(SessionEvent.from_raw_data(new_image))
        return Delivery(workspace_id, session_event_frame(session_id, event),
                        (LiveSubscription.conversation_prefix(session_id),), seq=int(event["seq"]))
    if kind == "Alert" and len(parts) == 2 and parts[0] == "WS":
        return Delivery(parts[1], alert_frame(parts[1], alert_view(Alert.from_raw_data(new_image))),
                        (LiveSubscription.prefix(None),), needs=Scope.usage_read)
    return None


def deliver_record(services: Services, record: dict[str, Any], pool: ThreadPoolExecutor,
                   sleep: Callable[[float], None] = time.sleep, batch: Batch | None = None) -> int:
    """Send one stream record to its subscribers; the number reached. Raises DeliveryFailed.
    Records of one ``batch`` share their subscriber reads (one Query per run and workspace)."""
    if record.get("eventName") != "INSERT":
        return 0
    delivery = delivery_of(((record.get("dynamodb") or {}).get("NewImage")) or {})
    if delivery is None:
        return 0
    batch = batch if batch is not None else Batch()
    subscribers = _entitled(services, delivery, _subscribers(delivery, batch), batch)
    key = (str(record.get("eventID") or ""), delivery.seq)
    reached = _reached.get(key, set()) if key[0] else set()  # a retried record goes only where it did not get
    todo = [sub for sub in subscribers if sub.connection_id not in reached]
    waiting = [sub for sub in todo if sub.connection_id in batch.behind]  # missed an earlier record: keep order
    todo = [sub for sub in todo if sub.connection_id not in batch.behind]
    results = list(pool.map(lambda sub: _send(services, delivery.workspace_id, sub, delivery.data, sleep), todo))
    missed = [sub.connection_id for sub, result in zip(todo, results, strict=True) if result is None]
    missed += [sub.connection_id for sub in waiting]
    if missed:
        batch.behind.update(missed)
        if key[0]:
            _remember(key, reached | {sub.connection_id for sub, result in zip(todo, results, strict=True) if result})
        raise DeliveryFailed(f"{len(missed)} of {len(todo) + len(waiting)} connections throttled or behind")
    _reached.pop(key, None)
    return sum(1 for r in results if r)


#: Records that reached only some of their subscribers (stream event id, seq → connection ids), so
#: the mapping's retry of the batch does not post them again to every connection: a burst of events
#: to many watchers throttled once would otherwise be sent again in full each retry. Best effort —
#: a cold container sends to all again, and clients drop seqs they have.
_reached: OrderedDict[tuple[str, int], set[str]] = OrderedDict()
_REACHED_RECORDS = 1000


def _remember(key: tuple[str, int], connections: set[str]) -> None:
    _reached[key] = connections
    _reached.move_to_end(key)
    while len(_reached) > _REACHED_RECORDS:
        _reached.popitem(last=False)


class Batch:
    """The subscriptions read while one batch of stream records is delivered. Reading
    them once per batch is safe: every record of a batch was stored before the batch
    was handed over, so a subscription made after these reads replays them itself."""

    def __init__(self) -> None:
        self._read: dict[tuple[str, str], list[LiveSubscription]] = {}
        #: Connections a record of this batch did not reach: the batch's later records skip them
        #: (and fail too), so the mapping's retry sends them the missed one first, then the rest.
        self.behind: set[str] = set()
        #: What each subscriber's principal still holds (read once per batch, after its records were stored).
        self.held: dict[Holder, frozenset[Scope]] = {}
        #: Connections found without access in this batch (closed once).
        self.ended: set[str] = set()

    def subscriptions(self, partition: str, prefix: str) -> list[LiveSubscription]:
        if (partition, prefix) not in self._read:
            self._read[partition, prefix] = list(_query(partition, prefix))
        return self._read[partition, prefix]


def _subscribers(delivery: Delivery, batch: Batch) -> list[LiveSubscription]:
    seen: set[str] = set()
    found: list[LiveSubscription] = []
    partition = LiveConnection.partition(delivery.workspace_id)
    with global_scope():  # the broadcaster's own role reads WS#*#LIVE, every workspace's (no role per tenant)
        for prefix in delivery.audiences:
            for sub in batch.subscriptions(partition, prefix):
                if sub.connection_id in seen:
                    continue
                seen.add(sub.connection_id)  # a connection's run subscription decides for it, not its workspace one
                if (sub.run_id or sub.conversation_id) and not seam.takes_live(sub, delivery.seq):
                    continue  # it has this seq already, or its replay sends it
                found.append(sub)
    return found


def _entitled(services: Services, delivery: Delivery, subscribers: list[LiveSubscription],
              batch: Batch) -> list[LiveSubscription]:
    """The subscribers whose principal still holds what this record needs. A connection whose access
    ended (or that records no principal) is closed and forgotten, once per batch."""
    holders = {sub.connection_id: Holder.recorded(delivery.workspace_id, sub) for sub in subscribers}
    unread = {h for h in holders.values() if h is not None and h not in batch.held}
    if unread:
        batch.held.update(scopes_held(unread))
    entitled: list[LiveSubscription] = []
    for sub in subscribers:
        holder = holders[sub.connection_id]
        held = batch.held.get(holder, frozenset()) if holder is not None else frozenset()
        if delivery.needs in held:
            entitled.append(sub)
        elif not held and sub.connection_id not in batch.ended:
            batch.ended.add(sub.connection_id)
            _end(services, delivery.workspace_id, sub)
    return entitled


def _end(services: Services, workspace_id: str, sub: LiveSubscription) -> None:
    """A connection whose principal lost its access: closed (best effort) and forgotten."""
    try:
        services.connections.close(sub.connection_id)
    except Exception:  # noqa: BLE001 - it is sent nothing either way; the next record tries again
        logger.warning("could not close connection %s", sub.connection_id, exc_info=True)
        return
    _forget(workspace_id, sub)


def _query(partition: str, prefix: str) -> Iterable[LiveSubscription]:
    return LiveSubscription.query(partition, LiveSubscription.sk.startswith(prefix), consistent_read=True)


def _send(services: Services, workspace_id: str, sub: LiveSubscription, data: bytes,
          sleep: Callable[[float], None]) -> bool | None:
    """True: sent; False: the connection is gone (and forgotten); None: still throttled after backoff."""
    for attempt in range(SEND_ATTEMPTS):
        try:
            services.connections.send(sub.connection_id, data)
            return True
        except ConnectionGone:
            _forget(workspace_id, sub)
            return False
        except SendThrottled:
            sleep(min(2.0, 0.05 * 2 ** attempt) * random.uniform(0.5, 1.0))  # nosec B311  # backoff jitter
    logger.warning("connection %s still throttled after %d attempts", sub.connection_id, SEND_ATTEMPTS)
    return None


def _forget(workspace_id: str, sub: LiveSubscription) -> None:
    """A gone connection: this subscription (its others expire or meet their own 410), and its item,
    giving its place among the workspace's live connections back (``limits.release``)."""
    with global_scope():
        try:
            sub.delete()
            limits.release(workspace_id, LiveConnection(*LiveConnection.key(workspace_id, sub.connection_id)))
        except Exception:  # best effort: the TTL removes them anyway (and a full workspace's connect repairs)
            logger.exception("could not forget connection %s", sub.connection_id)
