"""The WebSocket routes: what the ``ws`` function does for each.

Every route after ``$connect`` carries the principal the ``$connect``
authorizer vouched for (API Gateway passes its context to every route of the
connection). Connections and subscriptions are items of the workspace's
``WS#<wid>#LIVE`` partition, written through the tenant role, with a TTL past
API Gateway's 2-hour connection limit ($disconnect is best effort).

Replay without gap or duplicate: ``subscribe`` records the subscription
*before* it reads the backlog, so an event stored before the read is in the
backlog, and one stored after the subscription is seen by the broadcaster
(which reads subscriptions with a consistent Query after the event is
stored). An event stored in between may come both ways: the client drops a
seq it already has (frames carry their seq; the stream is dense).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agenthq.adapters.connections import ConnectionGone
from agenthq.context import Principal, Scope
from agenthq.errors import AppError, NotFound, PlanLimit
from agenthq.live import limits
from agenthq.live.protocol import encode, error_frame, parse_subscription, run_event_frame
from agenthq.runs.records import event_view, iter_events, load_run
from agenthq.store import tenant_scope
from agenthq.store.items import LiveConnection, LiveSubscription
from agenthq.usage.quota import workspace_limits

if TYPE_CHECKING:
    from agenthq.services import Services

WORKSPACE = limits.WORKSPACE  # the workspace's subscription, in LiveConnection.subscriptions


def connect(services: Services, principal: Principal, connection_id: str) -> None:
    """Store the connection and count it against the tier's ``live_connections`` (``limits.admit``);
    refused (LiveConnectionsUsedUp), nothing stays stored."""
    now = services.now()
    item = LiveConnection(*LiveConnection.key(principal.workspace_id, connection_id), connection_id=connection_id,
                          subject=principal.subject, kind=principal.kind.value,
                          session_id=principal.session_id or None, connected_at=now,
                          expires_at=now + timedelta(seconds=services.settings.live_connection_ttl_seconds))
    with tenant_scope(principal.workspace_id):
        limits.admit(services, principal.workspace_id, item, workspace_limits(principal.workspace_id).live_connections)


def disconnect(services: Services, principal: Principal, connection_id: str) -> None:
    """Forget the connection and its subscriptions (a repeated disconnect finds nothing)."""
    wid = principal.workspace_id
    with tenant_scope(wid):
        connection = LiveConnection.get_or_none(*LiveConnection.key(wid, connection_id), consistent_read=False)
        if connection is not None:
            _forget(wid, connection)


def close_connections(services: Services, workspace_id: str, *, session_id: str | None = None,
                      api_key_id: str | None = None) -> int:
    """Close the workspace's open WebSocket connections that a session (logout)
    or an API key (revoked) opened, and forget them: its credentials no longer
    hold, so neither does what they opened. Returns how many were closed."""
    if not services.settings.live_connections_url:
        return 0  # no WebSocket API in this deployment
    with tenant_scope(workspace_id):
        opened = [c for c in LiveConnection.query(LiveConnection.partition(workspace_id),
                                                  LiveConnection.sk.startswith("CONN#"), consistent_read=True)
                  if (session_id and c.session_id == session_id)
                  or (api_key_id and c.kind == "api_key" and c.subject == api_key_id)]
        for connection in opened:
            services.connections.close(connection.connection_id)  # a gone one is already closed
            _forget(workspace_id, connection)
    return len(opened)


def _forget(workspace_id: str, connection: LiveConnection) -> None:
    limits.forget_subscriptions(workspace_id, connection)
    limits.release(workspace_id, connection)  # its place back (once, whoever forgets it first)



def subscribe(services: Services, principal: Principal, connection_id: str, body: str | None) -> dict[str, Any]:
    """Record the subscription, then send the run's stored events after ``after`` in seq order, at most
    LIVE_REPLAY_LIMIT of them; answers ``subscribed`` with the last seq replayed (``more``: send subscribe
    again from there). The connection's subscribe window was taken before (``limits.meter_message``)."""
    frame = parse_subscription(body)
    run_id = frame.target()
    principal.require(Scope.runs_read)
    wid = principal.workspace_id
    with tenant_scope(wid):
        connection = _connection(wid, connection_id)
        run = load_run(wid, run_id) if run_id else None  # another workspace's run: NotFound, like a missing one
        target = run_id or WORKSPACE
        current = connection.subscriptions or set()
        if target not in current and len(current) >= services.settings.live_max_subscriptions:
            raise PlanLimit(f"A connection holds at most {services.settings.live_max_subscriptions} subscriptions.")
        LiveSubscription(*LiveSubscription.key(wid, run_id, connection_id), connection_id=connection_id,
                         run_id=run_id, after=frame.after if run_id else 0, expires_at=connection.expires_at).save()
        connection.update(actions=[LiveConnection.subscriptions.add({target})])
        if run is None:
            return {"type": "subscribed", "workspace": True}
        through, more = frame.after, False
        limit = services.settings.live_replay_limit
        for count, event in enumerate(iter_events(run, frame.after, limit + 1)):
            if count == limit:
                more = True
                break
            try:
                services.connections.send(connection_id, run_event_frame(run.id, event_view(event)))
            except ConnectionGone:
                return {"type": "subscribed", "run_id": run.id, "after": frame.after, "through": through}
            through = int(event.seq)
        limits.count_replayed(services, wid, through - frame.after)  # seqs are dense: the frames just sent
    return {"type": "subscribed", "run_id": run.id, "after": frame.after, "through": through, "more": more}


def unsubscribe(services: Services, principal: Principal, connection_id: str, body: str | None) -> dict[str, Any]:
    frame = parse_subscription(body)
    run_id = frame.target()
    wid = principal.workspace_id
    with tenant_scope(wid):
        connection = _connection(wid, connection_id)
        LiveSubscription(*LiveSubscription.key(wid, run_id, connection_id)).delete()
        connection.update(actions=[LiveConnection.subscriptions.delete({run_id or WORKSPACE})])
    return {"type": "unsubscribed", **({"run_id": run_id} if run_id else {"workspace": True})}


def ping(services: Services, principal: Principal, connection_id: str, body: str | None) -> dict[str, Any]:
    """A heartbeat: the client's frame keeps the connection from its 10-minute idle limit."""
    return {"type": "pong"}


def unknown_action() -> dict[str, Any]:
    """``$default``: a frame no route matched (not JSON, no ``action``, an unknown one)."""
    return error_frame("unknown_action", "Send {\"action\": \"subscribe\" | \"unsubscribe\" | \"ping\", …}.")


def as_error_frame(error: AppError) -> dict[str, Any]:
    frame = error_frame(error.code, error.message, error.details)
    if "Retry-After" in error.headers:  # rate_limited, quota_exceeded: when to send it again, seconds
        frame["retry_after"] = int(error.headers["Retry-After"])
    return frame


def encode_frame(frame: dict[str, Any]) -> str:
    return encode(frame).decode("utf-8")


def _connection(workspace_id: str, connection_id: str) -> LiveConnection:
    connection = LiveConnection.get_or_none(*LiveConnection.key(workspace_id, connection_id))
    if connection is None:  # expired (TTL) or its workspace offboarded: reconnect
        raise NotFound("This connection is no longer known; connect again.")
    if connection.expires_at is not None and connection.expires_at < datetime.now(UTC):
        raise NotFound("This connection is no longer known; connect again.")
    return connection

