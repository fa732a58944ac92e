"""What live status may cost a workspace (DESIGN §9, docs/decisions.md "Hardening: live limits").

- **Connections**: a workspace holds at most its tier's ``live_connections``
  WebSocket connections. ``$connect`` stores the connection and adds 1 to the
  workspace's ``LiveConnectionCount`` in one transaction, on the condition that
  the count is below the limit: parallel connects cannot pass it together, and
  a refused connect stores nothing (the handshake is refused, 429). Forgetting
  a connection (``$disconnect``, a 410 met by the broadcaster, a close when
  access ends) deletes its item and takes 1 off in one transaction, only if
  the item was there. ``$disconnect`` is best effort, so the count can stay
  high; a connect that finds the workspace full **repairs** the count first:
  it reads the connection items, forgets those past their TTL and those the
  ``@connections`` API says are gone (the oldest few, never one younger than a
  ``$connect`` can take), and sets the count to what is left — on the
  condition that nothing changed it since it was read (``version``).
- **Subscribes**: at most ``LIVE_SUBSCRIBES_PER_WINDOW`` per connection per
  ``LIVE_SUBSCRIBE_WINDOW_SECONDS`` (a fixed window on the connection item);
  beyond, an ``error`` frame ``rate_limited`` and the connection stays. A warm
  environment remembers a used-up window (and a used-up day of API calls), so
  a flood of refused messages costs it no DynamoDB call. Each
  replays at most ``LIVE_REPLAY_LIMIT`` events (``more: true``: subscribe
  again from ``through``).
- **Messages are API calls**: every message a client sends (but a subscribe
  refused by its connection's window) counts one API call against the day's
  ``api_calls_per_day`` (the day's ``Quota`` item, a conditional ADD; beyond,
  an ``error`` frame ``quota_exceeded``) and in the workspace's usage counters
  (``api_calls``); so does every frame a subscribe's replay sends
  (``count_replayed``, after the fact).
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import DeleteError, PynamoDBException, TransactWriteError, UpdateError

from agenthq.errors import NotFound, QuotaExceeded, RateLimited
from agenthq.observability import logger
from agenthq.store import tenant_scope, transaction
from agenthq.store.items import LiveConnection, LiveConnectionCount, LiveSubscription, Quota, UsageCounter
from agenthq.tiers import TierLimits
from agenthq.usage import counters
from agenthq.usage.counters import next_day
from agenthq.usage.quota import workspace_limits
from agenthq.usage.vector import Usage

if TYPE_CHECKING:
    from agenthq.context import Principal
    from agenthq.services import Services

WORKSPACE = "*"  # the workspace's subscription, in LiveConnection.subscriptions

#: A connection younger than this may still be in its ``$connect`` (API Gateway's integration timeout
#: is 29 s): the @connections API does not know it yet, so a repair never probes it.
CONNECT_GRACE = timedelta(seconds=60)
#: The most connections one repair asks the @connections API about (the oldest first).
REPAIR_PROBES = 25
#: A full workspace's count is repaired at most this often (a flood of refused connects reads little).
REPAIR_INTERVAL = timedelta(seconds=5)


class LiveConnectionsUsedUp(QuotaExceeded):
    """The workspace holds as many WebSocket connections as its tier allows."""


def _failed_condition(exc: PynamoDBException) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


# --------------------------------------------------------------------------- connections


def admit(services: Services, workspace_id: str, connection: LiveConnection, limit: int) -> None:
    """Store the workspace's connection and count it against ``limit`` in one transaction, or raise
    LiveConnectionsUsedUp (nothing stored). A full workspace's count is repaired once first."""
    for attempt in range(2):
        if _transact(lambda tx: (
                tx.save(connection, condition=LiveConnection.pk.does_not_exist()),
                tx.update(_count(workspace_id),
                          actions=[LiveConnectionCount.open.add(1), LiveConnectionCount.version.add(1),
                                   LiveConnectionCount.type.set(LiveConnectionCount)],
                          condition=LiveConnectionCount.open.does_not_exist() | (LiveConnectionCount.open < limit)))):
            return
        if attempt == 0 and not repair(services, workspace_id, alive=lambda cid: _alive(services, cid)):
            break
    raise LiveConnectionsUsedUp(f"This workspace holds {limit} live connections, its plan's limit: "
                                "close one (or wait for one to end) and connect again.", retry_after=5)


def release(workspace_id: str, connection: LiveConnection) -> bool:
    """Forget the workspace's connection item and give its place back, in one transaction; False when
    it was already forgotten (so a place is given back once however many paths forget it)."""
    if _transact(lambda tx: (
            tx.delete(connection, condition=LiveConnection.pk.exists()),
            tx.update(_count(workspace_id), actions=[LiveConnectionCount.open.add(-1),
                                                     LiveConnectionCount.version.add(1)],
                      condition=LiveConnectionCount.open > 0))):
        return True
    try:  # gone already, or counted by no one (stored before counting began): delete it if it is there
        connection.delete(condition=LiveConnection.pk.exists())
    except DeleteError as exc:
        if _failed_condition(exc):
            return False
        raise
    return True


def _transact(write: Callable[[Any], object], attempts: int = 12) -> bool:
    """Run one transaction (``write(tx)``), retried while it conflicts with another on the same items;
    False when a condition failed."""
    for attempt in range(attempts):
        try:
            with transaction() as tx:
                write(tx)
            return True
        except TransactWriteError as exc:
            codes = [r.code if r is not None else None for r in (exc.cancellation_reasons or [])]
            if "ConditionalCheckFailed" in codes:
                return False
            if "TransactionConflict" not in codes and exc.cause_response_code != "TransactionConflictException" \
                    or attempt + 1 == attempts:
                raise
        time.sleep(random.uniform(0.005, 0.03) * (attempt + 1))  # nosec B311  # backoff jitter, not a secret
    return False


def open_connections(workspace_id: str) -> int:
    """The connections the workspace holds, as counted (what ``GET …/usage`` shows)."""
    count = LiveConnectionCount.get_or_none(*LiveConnectionCount.key(workspace_id))
    return max(0, int(count.open)) if count is not None else 0


def repair(services: Services, workspace_id: str, alive: Callable[[str], bool]) -> bool:
    """Set the count to the connections that still exist (see the module's docstring); True when it
    was set. At most once per REPAIR_INTERVAL per workspace."""
    now = services.now()
    count = LiveConnectionCount.get_or_none(*LiveConnectionCount.key(workspace_id))
    if count is not None and count.repaired_at is not None and now - count.repaired_at < REPAIR_INTERVAL:
        return False
    version = int(count.version) if count is not None else 0
    stored = list(LiveConnection.query(LiveConnection.partition(workspace_id), LiveConnection.sk.startswith("CONN#"),
                                       consistent_read=True))
    dead = [c for c in stored if c.expires_at is not None and c.expires_at <= now]
    settled = sorted((c for c in stored if c not in dead and c.connected_at <= now - CONNECT_GRACE),
                     key=lambda c: c.connected_at)
    dead += [c for c in settled[:REPAIR_PROBES] if not alive(c.connection_id)]
    for connection in dead:
        forget_gone(workspace_id, connection)
    held = len(stored) - len(dead)
    try:
        _count(workspace_id).update(
            actions=[LiveConnectionCount.open.set(held), LiveConnectionCount.version.add(1),
                     LiveConnectionCount.repaired_at.set(now),
                     LiveConnectionCount.type.set(LiveConnectionCount)],
            condition=LiveConnectionCount.version.does_not_exist() if count is None
            else LiveConnectionCount.version == version)
    except UpdateError as exc:  # a connect or disconnect moved it meanwhile: the next full connect repairs
        if not _failed_condition(exc):
            raise
        return False
    return True


def forget_gone(workspace_id: str, connection: LiveConnection) -> None:
    """A connection that no longer exists: its subscriptions, then its item (the count is set after)."""
    forget_subscriptions(workspace_id, connection)
    try:
        connection.delete(condition=LiveConnection.pk.exists())
    except DeleteError as exc:
        if not _failed_condition(exc):
            raise


def forget_subscriptions(workspace_id: str, connection: LiveConnection) -> None:
    """Delete the connection's subscriptions (its ``subscriptions`` set names them)."""
    with LiveSubscription.batch_write() as batch:
        for target in connection.subscriptions or set():
            batch.delete(LiveSubscription(*LiveSubscription.target_key(workspace_id, target,
                                                                       connection.connection_id)))


def _alive(services: Services, connection_id: str) -> bool:
    """Whether the @connections API knows the connection; one it cannot tell about (throttled, an
    error) is taken as alive: a repair never frees a place it is not sure of."""
    try:
        return services.connections.exists(connection_id)
    except Exception:
        logger.warning("could not tell whether connection %s is open", connection_id, exc_info=True)
        return True


def _count(workspace_id: str) -> LiveConnectionCount:
    return LiveConnectionCount(*LiveConnectionCount.key(workspace_id))


# --------------------------------------------------------------------------- refusals a warm environment remembers

#: Refusals that stay true for a while, remembered by a warm environment, so a flood of messages that
#: will be refused costs no DynamoDB call: a connection's used-up subscribe window (until the window
#: ends: exact), a workspace's used-up API calls of the day (until midnight, at most
#: QUOTA_MEMORY_SECONDS: the operator may raise the tier meanwhile). Key → refused until (epoch s).
_refused: OrderedDict[str, float] = OrderedDict()
MAX_REMEMBERED = 10_000
QUOTA_MEMORY_SECONDS = 60


def _remember(key: str, until: float) -> None:
    _refused[key] = until
    _refused.move_to_end(key)
    while len(_refused) > MAX_REMEMBERED:
        _refused.popitem(last=False)


def _refused_until(key: str, now: float) -> float | None:
    until = _refused.get(key)
    if until is None or until <= now:
        _refused.pop(key, None)
        return None
    return until


# --------------------------------------------------------------------------- subscribes


def take_subscribe(services: Services, workspace_id: str, connection_id: str) -> None:
    """One subscribe of the connection's window (one conditional UpdateItem of its item), or
    RateLimited (an ``error`` frame; the connection stays); NotFound when the connection is gone."""
    settings = services.settings
    length = settings.live_subscribe_window_seconds
    now = services.clock()
    window = int(now) // length
    key = f"connection:{connection_id}"
    if _refused_until(key, now) is None:
        connection = LiveConnection(*LiveConnection.key(workspace_id, connection_id))
        if _update_if(connection, [LiveConnection.rate_count.add(1)],
                      LiveConnection.pk.exists() & (LiveConnection.rate_window == window)
                      & (LiveConnection.rate_count < settings.live_subscribes_per_window)):
            return
        if _update_if(connection, [LiveConnection.rate_window.set(window), LiveConnection.rate_count.set(1)],
                      LiveConnection.pk.exists() & (LiveConnection.rate_window.does_not_exist()
                                                    | (LiveConnection.rate_window < window))):
            return
        if LiveConnection.get_or_none(*LiveConnection.key(workspace_id, connection_id)) is None:
            raise NotFound("This connection is no longer known; connect again.")
        _remember(key, (window + 1) * length)
    raise RateLimited(f"At most {settings.live_subscribes_per_window} subscribes per connection every "
                      f"{length} s; subscribe again later.", retry_after=(window + 1) * length - int(now))


def _update_if(item: LiveConnection, actions: list[Any], condition: Any) -> bool:
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as exc:
        if not _failed_condition(exc):
            raise
        return False
    return True


# --------------------------------------------------------------------------- messages as API calls


def meter_message(services: Services, principal: Principal, connection_id: str, *, subscribing: bool) -> None:
    """A client message on the connection, before it is acted on: a subscribe takes its place in the
    connection's window first (a message refused there is not an API call, as API Gateway does not
    count a throttled request); then the message counts as an API call (``count_message``)."""
    workspace_id = principal.workspace_id
    with tenant_scope(workspace_id):
        if subscribing:
            take_subscribe(services, workspace_id, connection_id)
        now = services.clock()
        key = f"api_calls:{workspace_id}"
        until = _refused_until(key, now)
        if until is not None:
            raise QuotaExceeded("Today's API calls are used up (WebSocket messages count as API calls).",
                                retry_after=int(until - now) + 1)
        try:
            count_message(services, workspace_id, workspace_limits(workspace_id))
        except QuotaExceeded:
            _remember(key, min(now + QUOTA_MEMORY_SECONDS, next_day(services.now()).timestamp()))
            raise


def count_message(services: Services, workspace_id: str, limits: TierLimits) -> None:
    """Count one client message as an API call of the workspace (the day's quota and the usage
    counters, one transaction); QuotaExceeded when the day's API calls are used up."""
    at: datetime = services.now()
    try:
        _count_calls(services, workspace_id, 1, at,
                     Quota.api_calls.does_not_exist() | (Quota.api_calls < limits.api_calls_per_day))
    except PynamoDBException as exc:
        reasons = getattr(exc, "cancellation_reasons", None) or []
        if reasons and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed":
            retry = int((next_day(at) - at).total_seconds()) + 1
            raise QuotaExceeded(f"The {limits.api_calls_per_day} API calls of today are used up "
                                "(WebSocket messages count as API calls).", retry_after=retry) from None
        raise


def count_replayed(services: Services, workspace_id: str, frames: int) -> None:
    """Count the frames a subscribe's replay sent as API calls (API Gateway bills each frame it sends;
    a replay of 100 events is 100 messages). Counted after they were sent, without a condition: the
    day's quota may pass its limit by at most the replays under way, and the next message is refused."""
    if frames > 0:
        _count_calls(services, workspace_id, frames, services.now(), None)


def _count_calls(services: Services, workspace_id: str, calls: int, at: datetime, condition: Any) -> None:
    shard = random.randrange(services.settings.usage_counter_shards)  # nosec B311  # spreads writes, not a secret
    with transaction() as tx:
        tx.update(Quota(*Quota.key(workspace_id, counters.day(at))), actions=[Quota.api_calls.add(calls)],
                  condition=condition)
        for period in (counters.day(at), counters.month(at)):
            tx.update(UsageCounter(*UsageCounter.key(workspace_id, period, shard)),
                      actions=[*Usage(api_calls=calls).add_actions(UsageCounter), UsageCounter.period.set(period),
                               UsageCounter.type.set(UsageCounter)])
