"""The WebSocket routes: what the ``ws`` function does for each.

Every route after ``$connect`` carries the principal the ``$connect``
authorizer vouched for (API Gateway passes its context to every route of the
connection). Connections and subscriptions are items of the workspace's
``WS#<wid>#LIVE`` partition, written through the tenant role, with a TTL past
API Gateway's 2-hour connection limit ($disconnect is best effort).

Replay without gap or duplicate: ``subscribe`` records the subscription as
replaying *before* it reads the backlog, sends the backlog, then hands the
subscription over to the broadcaster (``agenthq.live.seam`` says how and why
each seq then arrives exactly once, in order). A subscribe to what the
connection already follows sends nothing (``seam.claim``): one stream per
subscription, however many subscribes arrive at once.

Access: the principal is fixed at ``$connect``, so ``subscribe`` checks it
again against the items that grant it (``agenthq.live.standing``); one whose
access ended is refused and its connection closed. ``close_connections``
closes a member's, a session's, an API key's or a whole workspace's
connections when their access ends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agenthq.context import Principal, Scope
from agenthq.errors import AppError, NotFound, PlanLimit, Unauthorized
from agenthq.live import limits, seam
from agenthq.live.protocol import encode, error_frame, parse_subscription
from agenthq.live.standing import API_KEY, USER, Holder, index_partition, scopes_held, session_prefix
from agenthq.observability import logger
from agenthq.runs.records import load_run
from agenthq.store import BaseItem, tenant_scope
from agenthq.store.items import AgentSession, LiveConnection, LiveSubscription
from agenthq.usage.quota import workspace_limits

if TYPE_CHECKING:
    from agenthq.services import Services

WORKSPACE = limits.WORKSPACE  # the workspace's subscription, in LiveConnection.subscriptions


def connect(services: Services, principal: Principal, connection_id: str) -> None:
    """Store the connection and count it against the tier's ``live_connections`` (``limits.admit``);
    refused (LiveConnectionsUsedUp), nothing stays stored."""
    now = services.now()
    item = LiveConnection(*LiveConnection.key(principal.workspace_id, connection_id), connection_id=connection_id,
                          connected_at=now, **Holder.of(principal).connection_fields(connection_id),
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


def close_connections(services: Services, workspace_id: str, *, user_id: str | None = None,
                      session_id: str | None = None, api_key_id: str | None = None, everyone: bool = False) -> int:
    """Close, and forget, the workspace's open WebSocket connections whose access just ended: a
    member's (removed, or given another role), one login session's of that member (logged out,
    revoked), an API key's (revoked), or ``everyone``'s (offboarding). Each set is one Query (the
    connections' index, or the workspace's LIVE partition). A close that fails is logged and left:
    the connection's principal is checked again before anything is sent to it (``standing``).
    Returns how many were closed."""
    if not services.settings.live_connections_url:
        return 0  # no WebSocket API in this deployment
    with tenant_scope(workspace_id):
        opened = list(_opened(workspace_id, user_id=user_id, session_id=session_id, api_key_id=api_key_id,
                              everyone=everyone))
        closed = 0
        for connection in opened:
            try:
                services.connections.close(connection.connection_id)  # a gone one is already closed
            except Exception:  # noqa: BLE001 - best effort: its access is checked again at every send
                logger.warning("could not close connection %s", connection.connection_id, exc_info=True)
                continue
            _forget(workspace_id, connection)
            closed += 1
    return closed


def _opened(workspace_id: str, *, user_id: str | None, session_id: str | None, api_key_id: str | None,
            everyone: bool) -> list[LiveConnection]:
    if everyone:
        return list(LiveConnection.query(LiveConnection.partition(workspace_id),
                                         LiveConnection.sk.startswith("CONN#"), consistent_read=True))
    if api_key_id:
        found = LiveConnection.gsi1.query(index_partition(workspace_id, API_KEY, api_key_id))
    elif user_id:
        found = LiveConnection.gsi1.query(index_partition(workspace_id, USER, user_id),
                                          BaseItem.gsi1sk.startswith(session_prefix(session_id))
                                          if session_id else None)
    else:
        raise ValueError("name whose connections to close")
    return [c for c in found if isinstance(c, LiveConnection)]


def _forget(workspace_id: str, connection: LiveConnection) -> None:
    limits.forget_subscriptions(workspace_id, connection)
    limits.release(workspace_id, connection)  # its place back (once, whoever forgets it first)



def subscribe(services: Services, principal: Principal, connection_id: str, body: str | None) -> dict[str, Any]:
    """Record the subscription, then send the run's stored events after ``after`` in seq order, at most
    LIVE_REPLAY_LIMIT of them; answers ``subscribed`` with the last seq replayed (``more``: send subscribe
    again from there). The connection's subscribe window was taken before (``limits.meter_message``)."""
    frame = parse_subscription(body)
    run_id, session_id = frame.target(), frame.session()
    principal.require(Scope.runs_read)
    wid = principal.workspace_id
    with tenant_scope(wid):
        connection = _connection(wid, connection_id)
    require_standing(services, principal, connection)
    with tenant_scope(wid):
        run = load_run(wid, run_id) if run_id else None  # another workspace's run: NotFound, like a missing one
        if session_id:  # a session's cursor: another workspace's session is NotFound too
            AgentSession.get_or_404(*AgentSession.key(wid, session_id), "No such session.")
        target = run_id or (LiveSubscription.SESSION_TARGET + session_id if session_id else WORKSPACE)
        current = connection.subscriptions or set()
        if target not in current and len(current) >= services.settings.live_max_subscriptions:
            raise PlanLimit(f"A connection holds at most {services.settings.live_max_subscriptions} subscriptions.")
        replays = run_id is not None or session_id is not None
        subscription = LiveSubscription(*LiveSubscription.target_key(wid, target, connection_id),
                                        connection_id=connection_id, run_id=run_id, conversation_id=session_id,
                                        after=frame.after if replays else 0,
                                        replaying=seam.new_token() if replays else None,
                                        expires_at=connection.expires_at, **Holder.of(principal).fields())
        # named on the connection first: a subscribe that dies between the two writes leaves no item that
        # its connection's disconnect would not find (limits.forget_subscriptions)
        connection.update(actions=[LiveConnection.subscriptions.add({target})])
        claimed = seam.claim(subscription, services.now().timestamp())
        named = {"run_id": run_id} if run_id else {"session_id": session_id} if session_id else {"workspace": True}
        if not claimed:  # the connection follows it already: one stream, nothing sent twice (seam.claim)
            joined = {"after": frame.after, "already_subscribed": True, "more": False} if replays else \
                {"already_subscribed": True}
            return {"type": "subscribed", **named, **joined}
        if not replays:
            return {"type": "subscribed", "workspace": True}

        def send(data: bytes) -> None:
            services.connections.send(connection_id, data)

        if run is not None:
            through, more, gone = seam.replay(run, subscription, services.settings.live_replay_limit, send)
        else:
            through, more, gone = seam.replay_session(wid, str(session_id), subscription,
                                                      services.settings.live_replay_limit, send)
        limits.count_replayed(services, wid, through - frame.after)  # seqs are dense: the frames just sent
    if gone:
        return {"type": "subscribed", **named, "after": frame.after, "through": through}
    return {"type": "subscribed", **named, "after": frame.after, "through": through, "more": more}


def require_standing(services: Services, principal: Principal, connection: LiveConnection) -> None:
    """Refuse, and close, a connection whose principal no longer has the access it connected with
    (removed, another role, session or key revoked, workspace offboarded) or no longer reads runs."""
    holder = Holder.of(principal)
    if Scope.runs_read in scopes_held([holder]).get(holder, frozenset()):
        return
    try:
        services.connections.close(connection.connection_id)
    except Exception:  # noqa: BLE001 - best effort: the broadcaster checks it again
        logger.warning("could not close connection %s", connection.connection_id, exc_info=True)
    with tenant_scope(principal.workspace_id):
        _forget(principal.workspace_id, connection)
    raise Unauthorized("This connection's access has ended; connect again.")


def unsubscribe(services: Services, principal: Principal, connection_id: str, body: str | None) -> dict[str, Any]:
    frame = parse_subscription(body)
    run_id, session_id = frame.target(), frame.session()
    target = run_id or (LiveSubscription.SESSION_TARGET + session_id if session_id else WORKSPACE)
    wid = principal.workspace_id
    with tenant_scope(wid):
        connection = _connection(wid, connection_id)
        LiveSubscription(*LiveSubscription.target_key(wid, target, connection_id)).delete()
        connection.update(actions=[LiveConnection.subscriptions.delete({target})])
    named = {"run_id": run_id} if run_id else {"session_id": session_id} if session_id else {"workspace": True}
    return {"type": "unsubscribed", **named}


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

