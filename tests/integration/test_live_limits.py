"""Live status limits on DynamoDB Local (agenthq.live.limits): a workspace's connections are counted
atomically against its tier's ``live_connections`` under parallel connects, a dead connection's place
comes back (disconnect, 410 cleanup, a repair from the TTL'd items and the @connections API), a
connection's subscribes are rate limited, and every client message counts as an API call."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest

from agenthq.adapters.connections import ConnectionGone
from agenthq.context import ROLE_SCOPES, Principal, PrincipalKind, Role
from agenthq.errors import NotFound, QuotaExceeded, RateLimited
from agenthq.live import connections, limits
from agenthq.live.broadcast import _forget
from agenthq.services import Services, get_services
from agenthq.store import tenant_scope
from agenthq.store.items import LiveConnection, LiveSubscription, Quota
from agenthq.usage import counters, quota
from tests.support import signup

pytestmark = pytest.mark.slow


class FakeConnections:
    """The @connections API: every connection is open unless named gone."""

    def __init__(self) -> None:
        self.gone: set[str] = set()
        self.sent: list[tuple[str, bytes]] = []
        self.asked: list[str] = []

    def send(self, connection_id: str, data: bytes) -> None:
        if connection_id in self.gone:
            raise ConnectionGone()
        self.sent.append((connection_id, data))

    def close(self, connection_id: str) -> None:
        self.gone.add(connection_id)

    def exists(self, connection_id: str) -> bool:
        self.asked.append(connection_id)
        return connection_id not in self.gone


def _services(at: float | None = None, **settings: Any) -> tuple[Services, FakeConnections]:
    fake = FakeConnections()
    real = get_services().settings
    clock = (lambda: at) if at is not None else time.time
    return Services(real.model_copy(update=settings), clock, connections=fake), fake


def _owner(tenant: Any) -> Principal:
    """The tenant's owner as the authorizer gives it: the session of its access token (a connection's
    subscribe checks that the session is still open)."""
    session_id = jwt.decode(tenant.access_token, options={"verify_signature": False})["sid"]
    return Principal(tenant.workspace_id, tenant.user_id, PrincipalKind.user, role=Role.owner,
                     scopes=ROLE_SCOPES[Role.owner], session_id=session_id)


def _stored(workspace_id: str) -> list[str]:
    with tenant_scope(workspace_id):
        return sorted(c.connection_id for c in LiveConnection.query(
            LiveConnection.partition(workspace_id), LiveConnection.sk.startswith("CONN#"), consistent_read=True))


def _count(workspace_id: str) -> int:
    with tenant_scope(workspace_id):
        return limits.open_connections(workspace_id)


def _connect_all(services: Services, principal: Principal, ids: list[str]) -> tuple[list[str], list[str]]:
    admitted: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(ids))

    def one(cid: str) -> None:
        start.wait()
        try:
            connections.connect(services, principal, cid)
        except limits.LiveConnectionsUsedUp:
            with lock:
                refused.append(cid)
            return
        with lock:
            admitted.append(cid)

    threads = [threading.Thread(target=one, args=(cid,)) for cid in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return admitted, refused


def test_parallel_connects_admit_exactly_the_tiers_live_connections(api):
    tenant = signup(api, "live-limit-parallel")  # free: 10 live connections
    services, _ = _services()
    principal = _owner(tenant)
    admitted, refused = _connect_all(services, principal, [f"par{n:02d}" for n in range(30)])
    assert len(admitted) == 10 and len(refused) == 20
    assert _stored(tenant.workspace_id) == sorted(admitted), "a refused connect stores nothing"
    assert _count(tenant.workspace_id) == 10

    for cid in admitted[:3]:  # $disconnect gives the place back, once however often it comes
        connections.disconnect(services, principal, cid)
        connections.disconnect(services, principal, cid)
    assert _count(tenant.workspace_id) == 7
    admitted_again, refused_again = _connect_all(services, principal, [f"again{n}" for n in range(5)])
    assert len(admitted_again) == 3 and len(refused_again) == 2
    assert _count(tenant.workspace_id) == 10 == len(_stored(tenant.workspace_id))


def test_a_dead_connections_place_comes_back(api):
    tenant = signup(api, "live-limit-leak")
    principal = _owner(tenant)
    wid = tenant.workspace_id
    minutes_ago, _ = _services(at=time.time() - 300)
    for n in range(10):
        connections.connect(minutes_ago, principal, f"held{n}")
    services, fake = _services()
    with pytest.raises(limits.LiveConnectionsUsedUp):
        connections.connect(services, principal, "refused")  # a repair ran: every one still open
    assert _count(wid) == 10 and "refused" not in _stored(wid)

    # A 410 met by the broadcaster gives a place back.
    _forget(wid, LiveSubscription(*LiveSubscription.key(wid, None, "held0"), connection_id="held0"))
    assert _count(wid) == 9
    connections.connect(services, principal, "fills-it")

    # Lost $disconnects: one connection is past its TTL (DynamoDB has not deleted it yet), two are gone at
    # API Gateway. A full workspace's connect repairs the count (at most every few seconds) from the items.
    with tenant_scope(wid):
        LiveConnection.get(*LiveConnection.key(wid, "held3")).update(
            actions=[LiveConnection.expires_at.set(services.now() - timedelta(minutes=1))])
    fake.gone.update({"held1", "held2"})
    time.sleep(limits.REPAIR_INTERVAL.total_seconds())
    connections.connect(services, principal, "after-repair")
    assert {"held1", "held2", "held3"}.isdisjoint(_stored(wid))
    assert _count(wid) == len(_stored(wid)) == 8
    assert "fills-it" not in fake.asked, "a connection younger than a $connect can take is never probed"


def test_subscribes_are_rate_limited_per_connection_and_the_connection_stays(api):
    tenant = signup(api, "live-limit-rate")
    principal = _owner(tenant)
    wid = tenant.workspace_id
    at = 1_800_000_005.0
    services, _ = _services(at=at, live_subscribes_per_window=3, live_subscribe_window_seconds=10)
    for cid in ("flooder", "quiet"):
        connections.connect(services, principal, cid)
    body = '{"action": "subscribe", "workspace": true}'

    def subscribe(services: Services, cid: str) -> dict[str, Any]:
        limits.meter_message(services, principal, cid, subscribing=True)  # what the ws function does first
        return connections.subscribe(services, principal, cid, body)

    for _ in range(3):
        assert subscribe(services, "flooder")["type"] == "subscribed"
    for _ in range(2):  # the second refusal comes from the warm environment's memory
        with pytest.raises(RateLimited) as limited:
            subscribe(services, "flooder")
        assert limited.value.code == "rate_limited" and limited.value.headers["Retry-After"] == "5"
    assert subscribe(services, "quiet")["type"] == "subscribed", "per connection"
    assert "flooder" in _stored(wid), "the connection stays"
    later, _ = _services(at=at + 10, live_subscribes_per_window=3, live_subscribe_window_seconds=10)
    assert subscribe(later, "flooder")["type"] == "subscribed", "a new window"
    with tenant_scope(wid):  # refused subscribes are not API calls
        assert counters.read(wid, counters.day(services.now())).api_calls == 5
    with pytest.raises(NotFound):
        limits.meter_message(services, principal, "never-connected", subscribing=True)


def test_a_subscribe_that_loses_the_race_to_open_the_window_takes_its_place_in_it(api, monkeypatch):
    """Two subscribes of one connection at once, in two environments, the window not open yet: one opens
    it, the other's opening fails — it takes its place in the window just opened, it is not refused (nor
    is the refusal remembered by its environment for the rest of the window)."""
    tenant = signup(api, "live-limit-race")
    principal = _owner(tenant)
    services, _ = _services(at=1_800_000_005.0, live_subscribes_per_window=3, live_subscribe_window_seconds=10)
    connections.connect(services, principal, "racing")
    real = limits._update_if
    raced: list[str] = []

    def update_if(item: Any, actions: list[Any], condition: Any) -> bool:
        done = real(item, actions, condition)
        if not done and not raced:  # the first subscribe found no window open: the other opens it now
            raced.append("other")
            limits.take_subscribe(services, tenant.workspace_id, "racing")
        return done

    monkeypatch.setattr(limits, "_update_if", update_if)
    limits.take_subscribe(services, tenant.workspace_id, "racing")  # not RateLimited
    assert raced == ["other"]
    with tenant_scope(tenant.workspace_id):
        stored = LiveConnection.get(*LiveConnection.key(tenant.workspace_id, "racing"))
    assert int(stored.rate_count) == 2, "both in the window"
    limits.take_subscribe(services, tenant.workspace_id, "racing")  # the third of three: nothing remembered
    with pytest.raises(RateLimited):
        limits.take_subscribe(services, tenant.workspace_id, "racing")


def test_messages_count_as_api_calls_against_the_days_quota(api):
    tenant = signup(api, "live-limit-calls")
    wid = tenant.workspace_id
    services, _ = _services()
    with tenant_scope(wid):
        free = quota.workspace_limits(wid)
    tight = free.model_copy(update={"api_calls_per_day": 5})
    done = []

    def call() -> None:
        try:
            with tenant_scope(wid):
                limits.count_message(services, wid, tight)
            done.append(True)
        except QuotaExceeded:
            done.append(False)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert done.count(True) == 5 and done.count(False) == 7
    now = services.now()
    with tenant_scope(wid):
        assert int(Quota.get(*Quota.key(wid, counters.day(now))).api_calls) == 5
        assert counters.read(wid, counters.day(now)).api_calls == 5
        assert counters.read(wid, counters.month(now)).api_calls == 5
    usage = tenant.api.get(tenant.path("/usage?period=day"), headers=tenant.headers).json()
    assert usage["usage"]["api_calls"] == 5
    assert usage["limits"]["live_connections"] == {"period": None, "used": 0, "limit": 10, "percent": 0.0,
                                                   "resets_at": None}


def test_a_subscribe_replays_one_page_and_the_next_subscribe_the_next(api):
    from tests.support import create_agent, events_of, launch, wait_for

    tenant = signup(api, "live-limit-pages", tier="pro")
    agent = create_agent(tenant, "paged", "sre")
    run = launch(tenant, agent["id"], 'Page me.\n/tool calculator {"expression": "6 * 7"}', key="pages-1").json()
    wait_for(tenant, run["id"])
    stored = [e["seq"] for e in events_of(tenant, run["id"])]
    assert len(stored) > 4
    principal = _owner(tenant)
    services, fake = _services(live_replay_limit=2)
    connections.connect(services, principal, "pager")
    got: list[int] = []
    after = 0
    while True:
        answer = connections.subscribe(services, principal, "pager",
                                       json.dumps({"action": "subscribe", "run_id": run["id"], "after": after}))
        page = [json.loads(data)["seq"] for _, data in fake.sent[len(got):]]
        assert len(page) <= 2, "at most LIVE_REPLAY_LIMIT events per subscribe"
        got += page
        assert answer["through"] == (page[-1] if page else after)
        if not answer["more"]:
            break
        after = answer["through"]
    assert got == stored
    with tenant_scope(tenant.workspace_id):  # each replayed frame is an API call (API Gateway bills each frame)
        assert counters.read(tenant.workspace_id, counters.day(services.now())).api_calls == len(stored)
