"""Subscribing twice on one connection, step by step against DynamoDB Local (agenthq.live.seam.claim):
the subscription item is written only where none exists; a subscribe that finds one the connection
follows (live, or replayed under a current lease) does nothing; one that finds a replay without a
lease (stopped at its page, failed, its invocation over) takes it over. The interleavings the
parallel subscribes of tests/e2e/test_live_subscribe_twice.py hit by chance, forced here."""

from __future__ import annotations

import json
import threading
import time

import pytest

from agenthq.context import Role
from agenthq.live import seam
from agenthq.runs.records import load_run
from agenthq.store import tenant_scope
from agenthq.store.items import LiveSubscription
from tests.support import LiveClient, create_agent, events_of, launch, signup, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture()
def ended_run(api):
    tenant = signup(api, "live-claim", tier="pro")
    agent = create_agent(tenant, "claimed", "sre")
    run = launch(tenant, agent["id"], 'Add.\n/tool calculator {"expression": "6 * 7"}', key="claim-1").json()
    wait_for(tenant, run["id"])
    return tenant, run["id"], len(events_of(tenant, run["id"]))


@pytest.fixture()
def connection(cloud, ended_run):
    tenant = ended_run[0]
    known = set(cloud.websocket.connections)
    client = LiveClient(cloud.ws_url, tenant.headers)
    try:
        for _ in range(200):
            fresh = [c for c in cloud.websocket.connections if c not in known]
            if fresh:
                yield fresh[0]
                return
            time.sleep(0.05)
        raise AssertionError("no connection")
    finally:
        client.close()


def _subscription(tenant, run_id: str, connection_id: str, after: int = 0) -> LiveSubscription:
    """A run subscription as one subscribe would write it (its own token)."""
    import jwt

    session = str(jwt.decode(tenant.access_token, options={"verify_signature": False})["sid"])
    return LiveSubscription(*LiveSubscription.key(tenant.workspace_id, run_id, connection_id),
                            connection_id=connection_id, run_id=run_id, after=after, replaying=seam.new_token(),
                            subject=tenant.user_id, kind="user", session_id=session, role=Role.owner.value)


def _stored(tenant, item: LiveSubscription) -> LiveSubscription | None:
    with tenant_scope(tenant.workspace_id):
        return LiveSubscription.get_or_none(item.pk, item.sk)


def _replay(tenant, run_id: str, sub: LiveSubscription, limit: int = 1000) -> tuple[list[int], tuple]:
    sent: list[int] = []
    with tenant_scope(tenant.workspace_id):
        result = seam.replay(load_run(tenant.workspace_id, run_id), sub, limit,
                             lambda data: sent.append(json.loads(data)["seq"]))
    return sent, result


def test_a_subscribe_while_another_replays_or_after_it_handed_over_does_nothing(ended_run, connection):
    tenant, run_id, stored = ended_run
    now = time.time()
    first, second, third = (_subscription(tenant, run_id, connection) for _ in range(3))
    with tenant_scope(tenant.workspace_id):
        assert seam.claim(first, now)
        assert not seam.claim(second, now + 1), "the first one's replay is under way: the second joins it"
    assert _stored(tenant, first).replaying == first.replaying
    sent, result = _replay(tenant, run_id, first)
    assert sent == list(range(1, stored + 1)) and result == (stored, False, False)
    with tenant_scope(tenant.workspace_id):
        assert not seam.claim(third, now + 2), "live: nothing to replay again"
    item = _stored(tenant, first)
    assert (item.after, item.replaying, item.replay_until) == (stored, None, None)


def test_a_replay_stopped_at_its_page_is_taken_over_by_the_next_subscribe_from_its_after(ended_run, connection):
    tenant, run_id, stored = ended_run
    now = time.time()
    first = _subscription(tenant, run_id, connection)
    with tenant_scope(tenant.workspace_id):
        assert seam.claim(first, now)
    sent, result = _replay(tenant, run_id, first, limit=2)
    assert sent == [1, 2] and result == (2, True, False)
    assert _stored(tenant, first).replay_until is None, "its page is full: it gave its lease up"
    page = _subscription(tenant, run_id, connection, after=2)
    with tenant_scope(tenant.workspace_id):
        assert seam.claim(page, now + 1), "the client's subscribe from `through` replays the next page"
    sent, result = _replay(tenant, run_id, page)
    assert sent == list(range(3, stored + 1)) and result == (stored, False, False)
    with tenant_scope(tenant.workspace_id):  # the replaced replay can no longer hand over
        assert seam._hand_over(first, first.replaying, 2) is False


def test_a_replay_whose_lease_ran_out_is_taken_over_and_the_old_one_cannot_hand_over(ended_run, connection):
    tenant, run_id, stored = ended_run
    now = time.time()
    dead, late = _subscription(tenant, run_id, connection), _subscription(tenant, run_id, connection)
    with tenant_scope(tenant.workspace_id):
        assert seam.claim(dead, now)  # ... and its invocation timed out mid-replay
        assert not seam.claim(late, now + seam.REPLAY_LEASE_SECONDS - 1), "still within its lease"
        assert seam.claim(late, now + seam.REPLAY_LEASE_SECONDS + 1)
    sent, result = _replay(tenant, run_id, dead)
    assert result[2] is False and _stored(tenant, dead).replaying == late.replaying, "the old one handed nothing over"
    sent, result = _replay(tenant, run_id, late)
    assert sent == list(range(1, stored + 1)) and result == (stored, False, False)


@pytest.mark.parametrize("paged", [False, True])
def test_of_ten_subscribes_claiming_at_once_exactly_one_replays(ended_run, connection, paged):
    tenant, run_id, stored = ended_run
    now = time.time()
    if paged:  # a replay stopped at its page: ten subscribes from `through` at once
        first = _subscription(tenant, run_id, connection)
        with tenant_scope(tenant.workspace_id):
            assert seam.claim(first, now)
        assert _replay(tenant, run_id, first, limit=1)[1] == (1, True, False)
    subs = [_subscription(tenant, run_id, connection, after=1 if paged else 0) for _ in range(10)]
    start = threading.Barrier(len(subs))
    claimed: list[bool] = []

    def claim(sub: LiveSubscription) -> None:
        start.wait()
        with tenant_scope(tenant.workspace_id):
            claimed.append(seam.claim(sub, now + 1))

    threads = [threading.Thread(target=claim, args=(sub,)) for sub in subs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == [False] * 9 + [True]
    winner = _stored(tenant, subs[0])
    assert winner.replaying in {s.replaying for s in subs} and winner.after == (1 if paged else 0)
