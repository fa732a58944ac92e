"""Live status end to end on the local cloud: WebSocket connect (JWT, API key,
ticket) → subscribe with replay → DynamoDB Local's stream → broadcaster →
@connections → the client; cut-offs, many subscribers, bad input."""

from __future__ import annotations

import json
import threading
import time

import pytest
from websockets.exceptions import InvalidStatus

from tests.support import (
    LiveClient,
    create_agent,
    events_of,
    launch,
    shown_in_order,
    signup,
    until,
    wait_for,
    with_api_key,
)

pytestmark = pytest.mark.slow

TOOL_RUN = 'What is 6 * 7?\n/tool calculator {"expression": "6 * 7"}'


def _connection_of(cloud, subject: str, known: set[str] = frozenset()) -> str:
    """The id of the front's (newest) connection whose principal is ``subject``."""
    for _ in range(100):
        found = [c.id for c in list(cloud.websocket.connections.values())
                 if c.authorizer.get("subject") == subject and c.id not in known]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError("no such connection")


def test_a_subscriber_receives_every_event_of_a_run_in_order(api, cloud):
    tenant = signup(api, "live-order", tier="pro")
    agent = create_agent(tenant, "watched", "sre")
    client = LiveClient(cloud.ws_url, tenant.headers)
    try:
        run = launch(tenant, agent["id"], TOOL_RUN, key="order-1").json()
        client.send({"action": "subscribe", "run_id": run["id"], "after": 0})
        frames = client.run_events(run["id"])
        stored = [e["seq"] for e in events_of(tenant, run["id"])]
        assert shown_in_order(frames) == stored
        assert sorted({f["seq"] for f in frames}) == stored
        assert [f["event"]["type"] for f in frames if f["seq"] == stored[-1]][0] == "run.succeeded"
        by_seq = {e["seq"]: e for e in events_of(tenant, run["id"])}
        assert all(f["event"] == by_seq[f["seq"]] for f in frames)
    finally:
        client.close()


def test_replay_after_the_run_ended_and_from_any_seq(api, cloud):
    tenant = signup(api, "live-replay", tier="pro")
    agent = create_agent(tenant, "done", "sre")
    run = launch(tenant, agent["id"], TOOL_RUN, key="replay-1").json()
    wait_for(tenant, run["id"])
    stored = [e["seq"] for e in events_of(tenant, run["id"])]
    client = LiveClient(cloud.ws_url, tenant.headers)
    try:
        client.send({"action": "subscribe", "run_id": run["id"], "after": 3})
        frames = client.run_events(run["id"], after=3)
        assert [f["seq"] for f in frames] == stored[3:]
        ack = client.next(type_="subscribed")
        assert ack == {"type": "subscribed", "run_id": run["id"], "after": 3, "through": stored[-1], "more": False}
    finally:
        client.close()


def test_a_client_cut_off_mid_run_reconnects_with_after_without_gap_or_duplicate(api, cloud):
    tenant = signup(api, "live-cut", tier="pro")
    agent = create_agent(tenant, "cut", "sre")
    tools = "\n".join(f'/tool calculator {{"expression": "{n} + 1"}}' for n in range(4))
    first = LiveClient(cloud.ws_url, tenant.headers)
    connection = _connection_of(cloud, tenant.user_id)
    run = launch(tenant, agent["id"], f"Count.\n{tools}", key="cut-1").json()
    first.send({"action": "subscribe", "run_id": run["id"], "after": 0})
    before = first.run_events(run["id"], until_seq=2)
    assert cloud.websocket.cut(connection)  # the network drops it: no close frame
    deadline = time.monotonic() + 10
    while first.closed is None and time.monotonic() < deadline:
        time.sleep(0.05)
    last = shown_in_order(before)[-1]
    second = LiveClient(cloud.ws_url, tenant.headers)
    try:
        second.send({"action": "subscribe", "run_id": run["id"], "after": last})
        after = second.run_events(run["id"], after=last)
    finally:
        second.close()
    stored = [e["seq"] for e in events_of(tenant, run["id"])]
    shown = shown_in_order(before)[:last] + shown_in_order(after, after=last)
    assert shown == stored
    assert all(f["seq"] > last for f in after)


def test_two_hundred_subscribers_all_receive_everything_and_a_stuck_client_delays_no_one(api, cloud):
    tenant = signup(api, "live-many", tier="pro")
    agent = create_agent(tenant, "popular", "sre")
    run = launch(tenant, agent["id"], "Wait for the crowd.\n" + "\n".join(
        f'/tool calculator {{"expression": "{n} * 2"}}' for n in range(3)), key="many-1").json()
    clients: list[LiveClient] = []
    lock = threading.Lock()

    def join() -> None:
        client = LiveClient(cloud.ws_url, tenant.headers)
        client.send({"action": "subscribe", "run_id": run["id"], "after": 0})
        with lock:
            clients.append(client)

    before = set(cloud.websocket.connections)
    threads = [threading.Thread(target=join) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # (the front registers a connection just after its handshake: each of the 200 is known before the next)
    until(lambda: len(set(cloud.websocket.connections) - before) >= 200, "the 200 connections registered")
    known = set(cloud.websocket.connections)
    stuck = LiveClient(cloud.ws_url, tenant.headers)
    stuck.reading = False  # subscribed during the whole run, and reads nothing
    stuck.send({"action": "subscribe", "run_id": run["id"], "after": 0})
    until(lambda: set(cloud.websocket.connections) - known, "the stuck client's connection registered")
    stuck_id = next(c for c in cloud.websocket.connections if c not in known)
    try:
        wait_for(tenant, run["id"])
        stored = [e["seq"] for e in events_of(tenant, run["id"])]
        for client in clients:
            assert shown_in_order(client.run_events(run["id"], timeout=120)) == stored
        # Its frames wait in its own bounded queue; once that is full it is closed and gone (410).
        posted = 0
        while cloud.websocket.post(stuck_id, b"x" * 30_000):
            posted += 1
            assert posted <= cloud.config.ws_send_queue_frames + 1000
        assert cloud.websocket.describe(stuck_id) is None
        stuck.reading = True
        deadline = time.monotonic() + 30
        while stuck.closed is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stuck.closed in (1008, 1006)  # 1006: the close frame could not get past what it never read
    finally:
        for client in clients + [stuck]:
            client.close()


def test_workspace_subscribers_get_status_changes_of_their_workspace_only(api, cloud):
    a = signup(api, "live-ws-a", tier="pro")
    b = signup(api, "live-ws-b", tier="pro")
    agent_a = create_agent(a, "a", "sre")
    agent_b = create_agent(b, "b", "sre")
    watcher = LiveClient(cloud.ws_url, a.headers)
    try:
        watcher.send({"action": "subscribe", "workspace": True})
        assert watcher.next(type_="subscribed") == {"type": "subscribed", "workspace": True}
        run_b = launch(b, agent_b["id"], TOOL_RUN, key="ws-b").json()
        run_a = launch(a, agent_a["id"], TOOL_RUN, key="ws-a").json()
        frames = watcher.run_events(run_a["id"], after=None)
        wait_for(b, run_b["id"])
        frames += watcher.unread()
        assert {f.get("run_id") for f in frames if f.get("type") == "run.event"} == {run_a["id"]}
        assert all(f["event"]["type"].startswith("run.") for f in frames if f.get("type") == "run.event")
    finally:
        watcher.close()


# --------------------------------------------------------------------------- bad input


def test_bad_frames_get_error_frames_and_the_connection_stays(api, cloud):
    tenant = signup(api, "live-bad", tier="pro")
    client = LiveClient(cloud.ws_url, tenant.headers)
    try:
        for frame in ["not json", "[1, 2]", "null", json.dumps({"action": 7}), json.dumps({"action": "dance"}),
                      json.dumps({"action": "$connect"}), json.dumps({"action": "$disconnect"})]:
            client.send(frame)
            assert client.next(10)["code"] == "unknown_action", frame
        for frame in [{"action": "subscribe"}, {"action": "subscribe", "run_id": "../x"},
                      {"action": "subscribe", "run_id": "01ABC", "after": -1},
                      {"action": "subscribe", "run_id": "01ABC", "after": "1"},
                      {"action": "subscribe", "run_id": "01ABC", "workspace": True},
                      {"action": "subscribe", "run_id": ["x"]}, {"action": "unsubscribe"}]:
            client.send(frame)
            error = client.next(10)
            assert (error["type"], error["code"]) == ("error", "invalid_request"), frame
        client.send({"action": "subscribe", "run_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"})
        assert client.next(10)["code"] == "not_found"
        client.send({"action": "ping"})
        assert client.next(10) == {"type": "pong"}
    finally:
        client.close()


def test_an_oversize_frame_closes_the_connection_with_1009(api, cloud):
    tenant = signup(api, "live-big", tier="pro")
    client = LiveClient(cloud.ws_url, tenant.headers)
    try:
        client.send(json.dumps({"action": "ping", "pad": "x" * 40_000}))
        deadline = time.monotonic() + 10
        while client.closed is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.closed == 1009
    finally:
        client.close()


def test_another_workspaces_run_is_refused_like_a_missing_one_and_never_leaks(api, cloud):
    a = signup(api, "live-iso-a", tier="pro")
    b = with_api_key(signup(api, "live-iso-b", tier="pro"))
    agent_b = create_agent(b, "secret", "sre")
    run_b = launch(b, agent_b["id"], TOOL_RUN, key="iso-b").json()
    intruder = LiveClient(cloud.ws_url, a.headers)
    try:
        intruder.send({"action": "subscribe", "run_id": run_b["id"], "after": 0})
        refused = intruder.next(10)
        intruder.send({"action": "subscribe", "run_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"})
        missing = intruder.next(10)
        assert refused == missing == {"type": "error", "code": "not_found", "message": refused["message"]}
        wait_for(b, run_b["id"])
        leaked = intruder.unread()
        assert leaked == []
    finally:
        intruder.close()


def test_connect_needs_a_credential_and_a_ticket_works_once_within_60_s(api, cloud):
    tenant = with_api_key(signup(api, "live-auth", tier="pro"))
    for headers, query in [({}, ""), ({"Authorization": "Bearer nope"}, ""), ({"x-api-key": "ahq_wrong"}, ""),
                           ({}, f"ticket=wst_{'x' * 43}"), ({}, f"x-api-key={tenant.api_key}"),
                           ({}, f"token={tenant.access_token}")]:
        with pytest.raises(InvalidStatus) as refused:
            LiveClient(cloud.ws_url, headers, query)
        assert refused.value.response.status_code == 401, (headers, query)
    LiveClient(cloud.ws_url, tenant.key_headers).close()

    ticket = api.post("/ws-tickets", headers=tenant.headers)
    assert ticket.status_code == 201, ticket.text
    assert ticket.json()["expires_in"] == 60
    client = LiveClient(cloud.ws_url, query=f"ticket={ticket.json()['ticket']}")
    client.send({"action": "ping"})
    assert client.next(10) == {"type": "pong"}
    client.close()
    with pytest.raises(InvalidStatus) as reused:
        LiveClient(cloud.ws_url, query=f"ticket={ticket.json()['ticket']}")
    assert reused.value.response.status_code == 401

    assert api.post("/ws-tickets").status_code == 401


def test_a_revoked_key_can_no_longer_connect(api, cloud):
    tenant = with_api_key(signup(api, "live-revoke", tier="pro"))
    LiveClient(cloud.ws_url, tenant.key_headers).close()
    ticket = api.post("/ws-tickets", headers=tenant.key_headers).json()["ticket"]
    assert tenant.api.delete(tenant.path(f"/api-keys/{tenant.api_key_id}"), headers=tenant.headers).status_code == 204
    for headers, query in [(tenant.key_headers, ""), ({}, f"ticket={ticket}")]:
        with pytest.raises(InvalidStatus) as refused:
            LiveClient(cloud.ws_url, headers, query)
        assert refused.value.response.status_code == 401


def test_revoking_a_key_or_logging_out_closes_the_connections_it_opened(api, cloud):
    tenant = with_api_key(signup(api, "live-revoke", tier="pro"))
    revoked_key = tenant.api_key_id
    by_key = LiveClient(cloud.ws_url, tenant.key_headers)
    by_token = LiveClient(cloud.ws_url, tenant.headers)
    other = LiveClient(cloud.ws_url, with_api_key(tenant, scopes=("runs:read",)).key_headers)  # a second key
    for client in (by_key, by_token, other):
        client.send({"action": "ping"})
        assert client.next(type_="pong")

    assert tenant.api.delete(tenant.path(f"/api-keys/{revoked_key}"), headers=tenant.headers).status_code == 204
    _wait_closed(by_key)
    assert by_token.closed is None and other.closed is None, "only what that key opened is closed"

    assert tenant.api.post("/auth/logout", headers=tenant.headers).status_code == 204
    _wait_closed(by_token)
    assert other.closed is None
    other.close()


def _wait_closed(client: LiveClient, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while client.closed is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.closed is not None, "the connection was closed by the server"
