"""The replay/live hand-over (agenthq.live.seam) step by step, against DynamoDB Local: the
interleavings the 50-client test in tests/e2e/test_live_access.py hits by chance, forced here.

A run's events are appended as its own commit does (the event and ``Run.seq`` in one transaction);
the "broadcaster" is ``seam.takes_live`` called with a subscription as it read it. Subscriptions
belong to real connections of the local cloud (the real broadcaster sees the appended events too,
and runs the same protocol on the same items)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from agenthq.context import Role
from agenthq.live import broadcast, seam
from agenthq.runs.records import load_run
from agenthq.store import tenant_scope, transaction
from agenthq.store.items import LiveSubscription, Run, RunEvent
from tests.support import LiveClient, create_agent, events_of, launch, signup, wait_for

pytestmark = pytest.mark.slow

TOOL_RUN = 'What is 6 * 7?\n/tool calculator {"expression": "6 * 7"}'


@pytest.fixture()
def ended_run(api):
    tenant = signup(api, "live-seam-steps", tier="pro")
    agent = create_agent(tenant, "stepped", "sre")
    run = launch(tenant, agent["id"], TOOL_RUN, key="steps-1").json()
    wait_for(tenant, run["id"])
    return tenant, run["id"], len(events_of(tenant, run["id"]))


def _connection(cloud, tenant) -> tuple[LiveClient, str]:
    known = set(cloud.websocket.connections)
    client = LiveClient(cloud.ws_url, tenant.headers)
    for _ in range(200):
        fresh = [c for c in cloud.websocket.connections if c not in known]
        if fresh:
            return client, fresh[0]
        time.sleep(0.05)
    raise AssertionError("no connection")


def _replaying(tenant, run_id: str, connection_id: str, session_id: str) -> LiveSubscription:
    """A run subscription as ``subscribe`` writes it, before its replay."""
    item = LiveSubscription(*LiveSubscription.key(tenant.workspace_id, run_id, connection_id),
                            connection_id=connection_id, run_id=run_id, after=0, replaying=seam.new_token(),
                            subject=tenant.user_id, kind="user", session_id=session_id, role=Role.owner.value)
    with tenant_scope(tenant.workspace_id):
        item.save()
    return item


@contextmanager
def _replaying_on_a_connection(cloud, tenant, run_id: str) -> Iterator[LiveSubscription]:
    """The tenant's run subscription (``_replaying``) on a WebSocket connection of its own, closed after."""
    client, connection_id = _connection(cloud, tenant)
    try:
        yield _replaying(tenant, run_id, connection_id, _session_of(tenant))
    finally:
        client.close()


def _append(tenant, run_id: str, seq: int) -> None:
    """A new event, as the run's commit stores it."""
    with tenant_scope(tenant.workspace_id), transaction() as tx:
        tx.save(RunEvent(*RunEvent.key(tenant.workspace_id, run_id, seq), seq=seq, event_type="tool.called",
                         at=datetime.now(UTC), data={"n": seq}), condition=RunEvent.pk.does_not_exist())
        tx.update(Run(*Run.key(tenant.workspace_id, run_id)), actions=[Run.seq.set(seq)], condition=Run.seq == seq - 1)


def _read(tenant, item: LiveSubscription) -> LiveSubscription | None:
    with tenant_scope(tenant.workspace_id):
        return LiveSubscription.get_or_none(item.pk, item.sk)


def _session_of(tenant) -> str:
    import jwt

    return str(jwt.decode(tenant.access_token, options={"verify_signature": False})["sid"])


def test_an_event_the_broadcaster_leaves_during_the_replay_is_sent_by_the_replay_once(cloud, ended_run):
    tenant, run_id, stored = ended_run
    with _replaying_on_a_connection(cloud, tenant, run_id) as sub:
        sent: list[int] = []

        def send(data: bytes) -> None:
            import json

            sent.append(json.loads(data)["seq"])
            if len(sent) == 2:  # an event is stored after the replay read the backlog ...
                _append(tenant, run_id, stored + 1)
                seen = _read(tenant, sub)  # ... and the broadcaster reads the subscription after it
                with tenant_scope(tenant.workspace_id):
                    assert seen is not None and not seam.takes_live(seen, stored + 1), "left to the replay"
                    assert _read(tenant, sub).missed == stored + 1

        with tenant_scope(tenant.workspace_id):
            through, more, gone = seam.replay(load_run(tenant.workspace_id, run_id), sub, 1000, send)
        assert (through, more, gone) == (stored + 1, False, False)
        assert sent == list(range(1, stored + 2)), "each seq once, in order, the late one included"
        after = _read(tenant, sub)
        assert (after.after, after.replaying, after.missed) == (stored + 1, None, None)

        # Handed over: the broadcaster sends what comes after, and nothing the replay sent.
        _append(tenant, run_id, stored + 2)
        with tenant_scope(tenant.workspace_id):
            assert not seam.takes_live(_read(tenant, sub), stored + 1)
            assert seam.takes_live(_read(tenant, sub), stored + 2)


def test_a_broadcaster_that_read_the_subscription_before_the_hand_over_sends_what_comes_after(cloud, ended_run):
    tenant, run_id, stored = ended_run
    with _replaying_on_a_connection(cloud, tenant, run_id) as sub:
        stale = _read(tenant, sub)  # the broadcaster's read, while it replays
        with tenant_scope(tenant.workspace_id):
            through, more, _ = seam.replay(load_run(tenant.workspace_id, run_id), sub, 1000,
                                           lambda data: None)
        assert (through, more) == (stored, False)
        _append(tenant, run_id, stored + 1)  # stored after the hand-over
        with tenant_scope(tenant.workspace_id):
            assert not seam.takes_live(_read(tenant, sub) or stale, stored), "the replay sent it"
            assert seam.takes_live(stale, stored + 1), "its mark fails, it reads again: handed over, it sends"


def test_a_replay_that_reaches_its_limit_stays_off_the_live_feed(cloud, ended_run):
    tenant, run_id, stored = ended_run
    with _replaying_on_a_connection(cloud, tenant, run_id) as sub:
        with tenant_scope(tenant.workspace_id):
            through, more, _ = seam.replay(load_run(tenant.workspace_id, run_id), sub, 3,
                                           lambda data: None)
        assert (through, more) == (3, True), "subscribe again from 3"
        _append(tenant, run_id, stored + 1)
        with tenant_scope(tenant.workspace_id):
            assert not seam.takes_live(_read(tenant, sub), stored + 1), "no live event before the replay ends"


def test_a_connections_run_subscription_decides_for_it_before_its_workspace_one(cloud, ended_run):
    """A run.* event of a run the connection replays does not come through its workspace subscription."""
    tenant, run_id, stored = ended_run
    client, connection_id = _connection(cloud, tenant)
    try:
        session = _session_of(tenant)
        with tenant_scope(tenant.workspace_id):
            LiveSubscription(*LiveSubscription.key(tenant.workspace_id, None, connection_id),
                             connection_id=connection_id, run_id=None, after=0, subject=tenant.user_id,
                             kind="user", session_id=session, role=Role.owner.value).save()
        _replaying(tenant, run_id, connection_id, session)
        delivery = broadcast.Delivery(tenant.workspace_id, b"{}", (LiveSubscription.prefix(run_id),
                                                                   LiveSubscription.prefix(None)), seq=stored + 1)
        _append(tenant, run_id, stored + 1)
        assert [s.connection_id for s in broadcast._subscribers(delivery, broadcast.Batch())] == []
    finally:
        client.close()

