"""Subscribing twice on one connection (DESIGN §3's seam; docs/decisions.md, "Subscribing twice"): a
subscribe to what the connection already follows changes nothing — one stream, each seq once, in
order, no gap — also when the subscribes are handled at once by parallel invocations of the ws
function (the local front runs them in parallel workers, as API Gateway does). A run followed both
on its own and through its session comes once in each stream, each frame naming its subscription.
Raw WebSocket clients (the ``websockets`` package), not the CLI's watcher."""

from __future__ import annotations

import queue
import time
from typing import Any

import pytest

from tests.support import LiveClient, create_agent, events_of, launch, signup, wait_for

pytestmark = pytest.mark.slow

TERMINAL = ("run.succeeded", "run.failed", "run.cancelled", "run.timed_out")


def _frames(client: LiveClient, quiet: float = 1.5, timeout: float = 120,
            done: Any = None) -> list[dict[str, Any]]:
    """Every frame received until ``done(frames)`` holds and then ``quiet`` seconds pass without one
    (anything sent twice would have arrived by then)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    finished = False
    while time.monotonic() < deadline:
        try:
            got.append(client.next(timeout=quiet if finished else min(5.0, deadline - time.monotonic())))
        except queue.Empty:
            if finished:
                return got
            continue
        finished = finished or bool(done and done(got))
    raise AssertionError(f"timed out with {got}")


def _ended(run_id: str, acks: int):
    def done(frames: list[dict[str, Any]]) -> bool:
        return sum(1 for f in frames if f.get("type") == "subscribed") >= acks and any(
            f.get("type") == "run.event" and f.get("run_id") == run_id and f["event"]["type"] in TERMINAL
            for f in frames)
    return done


def test_ten_subscribes_to_one_run_at_once_on_one_connection_give_each_seq_once_in_order(api, cloud):
    tenant = signup(api, "live-twice", tier="pro")
    agent = create_agent(tenant, "twice", "sre")
    tools = "\n".join(f'/tool calculator {{"expression": "{n} + 1"}}' for n in range(6))
    client = LiveClient(cloud.ws_url, tenant.headers)
    try:
        run = launch(tenant, agent["id"], f"Count.\n{tools}", key="twice-1").json()
        for _ in range(10):  # back to back: the front hands them to parallel invocations while the run runs
            client.send({"action": "subscribe", "run_id": run["id"], "after": 0})
        frames = _frames(client, done=_ended(run["id"], 10))
        assert wait_for(tenant, run["id"])["status"] == "succeeded"
        stored = [e["seq"] for e in events_of(tenant, run["id"])]
        assert len(stored) >= 10
        assert [f["type"] for f in frames if f["type"] not in ("run.event", "subscribed")] == []
        received = [f["seq"] for f in frames if f["type"] == "run.event"]
        assert received == stored, "each seq once, in order, no gap: one stream however often it subscribed"
        acks = [f for f in frames if f["type"] == "subscribed"]
        assert len(acks) == 10
        assert sum(1 for a in acks if a.get("already_subscribed")) == 9, "one subscribe replays, the others join it"
        assert all(a == {"type": "subscribed", "run_id": run["id"], "after": 0, "already_subscribed": True,
                         "more": False} for a in acks if a.get("already_subscribed"))
    finally:
        client.close()


def test_a_subscribe_to_a_run_the_connection_already_follows_replays_nothing(api, cloud):
    tenant = signup(api, "live-again", tier="pro")
    agent = create_agent(tenant, "again", "sre")
    run = launch(tenant, agent["id"], 'Add.\n/tool calculator {"expression": "1 + 1"}', key="again-1").json()
    wait_for(tenant, run["id"])
    stored = [e["seq"] for e in events_of(tenant, run["id"])]
    client = LiveClient(cloud.ws_url, tenant.headers)
    try:
        client.send({"action": "subscribe", "run_id": run["id"], "after": 0})
        first = _frames(client, done=lambda fs: any(f["type"] == "subscribed" for f in fs))
        assert [f["seq"] for f in first if f["type"] == "run.event"] == stored
        client.send({"action": "subscribe", "run_id": run["id"], "after": 0})
        client.send({"action": "subscribe", "workspace": True})
        client.send({"action": "subscribe", "workspace": True})
        again = _frames(client, done=lambda fs: sum(f["type"] == "subscribed" for f in fs) == 3)
        assert [f for f in again if f["type"] != "subscribed"] == [], "nothing sent twice"
        assert {"type": "subscribed", "run_id": run["id"], "after": 0, "already_subscribed": True,
                "more": False} in again
        workspace = sorted((f for f in again if f.get("workspace")), key=lambda f: "already_subscribed" in f)
        assert workspace == [{"type": "subscribed", "workspace": True},
                             {"type": "subscribed", "workspace": True, "already_subscribed": True}]

        # Unsubscribed, a subscribe replays again (the way to read a run again on one connection).
        client.send({"action": "unsubscribe", "run_id": run["id"]})
        assert client.next(10, "unsubscribed") == {"type": "unsubscribed", "run_id": run["id"]}
        client.send({"action": "subscribe", "run_id": run["id"], "after": 0})
        replayed = _frames(client, done=lambda fs: any(f["type"] == "subscribed" for f in fs))
        assert [f["seq"] for f in replayed if f["type"] == "run.event"] == stored
    finally:
        client.close()


def test_a_run_followed_on_its_own_and_through_its_session_comes_once_in_each_stream(api, cloud):
    tenant = signup(api, "live-both", tier="pro")
    agent = create_agent(tenant, "both", "sre")
    session = tenant.post(f"/agents/{agent['id']}/sessions", json={}).json()
    client = LiveClient(cloud.ws_url, tenant.headers)
    try:
        for _ in range(5):  # the session subscribed at once, five times
            client.send({"action": "subscribe", "session_id": session["id"], "after": 0})
        acks = [client.next(15, "subscribed") for _ in range(5)]
        assert sum(1 for a in acks if not a.get("already_subscribed")) == 1
        turn = tenant.post(f"/sessions/{session['id']}/messages",
                           json={"input": 'Add.\n/tool calculator {"expression": "2 + 3"}'}).json()
        client.send({"action": "subscribe", "run_id": turn["id"], "after": 0})
        assert wait_for(tenant, turn["id"])["status"] == "succeeded"
        run_seqs = [e["seq"] for e in events_of(tenant, turn["id"])]
        page = tenant.get(f"/sessions/{session['id']}/events", params={"after": 0, "limit": 500}).json()
        session_seqs = [e["seq"] for e in page["items"]]

        def done(frames: list[dict[str, Any]]) -> bool:
            return ({f["seq"] for f in frames if f["type"] == "run.event"} >= set(run_seqs)
                    and {f["seq"] for f in frames if f["type"] == "session.event"} >= set(session_seqs))

        frames = _frames(client, done=done)
        runs = [f for f in frames if f["type"] == "run.event"]
        sessions = [f for f in frames if f["type"] == "session.event"]
        assert [f["seq"] for f in runs] == run_seqs, "the run's stream: each run seq once, in order"
        assert [f["seq"] for f in sessions] == session_seqs, "the session's stream: each session seq once, in order"
        assert all(f["run_id"] == turn["id"] and "session_id" not in f for f in runs)
        assert all(f["session_id"] == session["id"] and "run_id" not in f for f in sessions)
        # the same events, once in each stream: the session's copy names its run and the run's seq
        assert [f["event"]["run_seq"] for f in sessions if f["event"]["run_seq"] is not None] == run_seqs
    finally:
        client.close()


def test_fifty_clients_each_subscribing_three_times_at_once_while_a_run_runs_get_exactly_the_stored_sequence(
        api, cloud):
    """Issue 17's figure (50 clients at ``after: 0`` while the run runs), each client sending its subscribe
    three times at once, as a client that retries would: every one receives exactly the stored sequence."""
    import threading

    tenant = signup(api, "live-fifty-thrice", tier="pro")
    agent = create_agent(tenant, "crowd", "sre")
    tools = "\n".join(f'/tool calculator {{"expression": "{n} + 1"}}' for n in range(6))
    clients = [LiveClient(cloud.ws_url, tenant.headers) for _ in range(50)]
    try:
        start = threading.Barrier(len(clients) + 1)

        def subscribe(client: LiveClient) -> None:
            start.wait()
            for _ in range(3):
                client.send({"action": "subscribe", "run_id": run["id"], "after": 0})

        run = launch(tenant, agent["id"], f"Count.\n{tools}", key="fifty-1").json()
        threads = [threading.Thread(target=subscribe, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        start.wait()
        for thread in threads:
            thread.join()
        assert wait_for(tenant, run["id"])["status"] == "succeeded"
        stored = [e["seq"] for e in events_of(tenant, run["id"])]
        assert len(stored) >= 10
        frames = [_frames(client, quiet=0, done=_ended(run["id"], 3)) for client in clients]
        time.sleep(1.5)  # anything sent twice would have arrived by now
        for got, client in zip(frames, clients, strict=True):
            while not client.frames.empty():
                got.append(client.frames.get())
        received = [[f["seq"] for f in got if f["type"] == "run.event"] for got in frames]
        exact = sum(1 for seqs in received if seqs == stored)
        assert exact == len(clients), (f"{exact} of {len(clients)} got exactly {stored}; others got",
                                       [seqs for seqs in received if seqs != stored][:5])
    finally:
        for client in clients:
            client.close()
