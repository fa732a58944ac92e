"""A session's one cursor over the WebSocket API (DESIGN §9): subscribe with
``session_id`` and ``after`` — the session's stored events first, then live
ones, with no gap and no duplicate at the seam, across its runs and their
delegated children; another workspace's session is refused like a missing one."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support import LiveClient, create_agent, shown_in_order, signup, wait_for

pytestmark = pytest.mark.slow

DELEGATING = "Ask the helper.\n/tool delegate " + json.dumps(
    {"agent": "helper", "input": 'Add them up.\n/tool calculator {"expression": "2 + 3"}'})


def session_frames(client: LiveClient, session_id: str, through: int, timeout: float = 90) -> list[dict[str, Any]]:
    """``session.event`` frames of the session as received, until every seq up to ``through`` came."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = client.next(timeout=deadline - time.monotonic())
        if frame.get("type") == "session.event" and frame.get("session_id") == session_id:
            got.append(frame)
            if max(f["seq"] for f in got) >= through:
                return got
    raise AssertionError(f"timed out with {[f['seq'] for f in got]}")


def last_seq(tenant, session_id: str) -> int:
    seqs, after = [], 0
    while True:
        page = tenant.get(f"/sessions/{session_id}/events", params={"after": after, "limit": 500}).json()
        seqs += [e["seq"] for e in page["items"]]
        if page["next_after"] is None:
            return max(seqs, default=0)
        after = page["next_after"]


def test_a_session_subscriber_gets_every_event_live_and_resumes_at_any_seq_with_exactly_the_rest(api, cloud):
    tenant = signup(api, "live-session", tier="pro")
    lead = create_agent(tenant, "lead", "coordinator")
    create_agent(tenant, "helper", "sre")
    session = tenant.post(f"/agents/{lead['id']}/sessions", json={}).json()

    watcher = LiveClient(cloud.ws_url, tenant.headers)
    try:
        watcher.send({"action": "subscribe", "session_id": session["id"], "after": 0})
        assert watcher.next(10, "subscribed") == {"type": "subscribed", "session_id": session["id"], "after": 0,
                                                  "through": 0, "more": False}
        first = tenant.post(f"/sessions/{session['id']}/messages", json={"input": DELEGATING}).json()
        second = tenant.post(f"/sessions/{session['id']}/messages", json={"input": "And the total?"}).json()
        assert wait_for(tenant, first["id"])["status"] == "succeeded"
        assert wait_for(tenant, second["id"])["status"] == "succeeded"
        final = last_seq(tenant, session["id"])
        live = session_frames(watcher, session["id"], final)
        assert shown_in_order(live) == list(range(1, final + 1)), "live: every seq of the session, in order"
        runs = {f["event"]["run_id"] for f in live}
        assert len(runs) == 3 and {first["id"], second["id"]} <= runs, "both turns and the delegated child"
    finally:
        watcher.close()

    # Resuming at any seq: the replay is exactly the rest, then nothing (the session is idle).
    for after in sorted({0, 1, final // 3, final // 2, final - 1, final}):
        client = LiveClient(cloud.ws_url, tenant.headers)
        try:
            client.send({"action": "subscribe", "session_id": session["id"], "after": after})
            frames: list[dict[str, Any]] = []
            while True:
                frame = client.next(15)
                if frame["type"] == "subscribed":
                    assert frame["through"] == final and frame["more"] is False
                    break
                frames.append(frame)
            assert [f["seq"] for f in frames] == list(range(after + 1, final + 1)), after
            assert all(f["type"] == "session.event" and f["event"]["seq"] == f["seq"] for f in frames)
        finally:
            client.close()


def test_a_subscriber_joining_mid_turn_gets_the_rest_without_gap_across_the_seam(api, cloud):
    tenant = signup(api, "live-session-seam", tier="pro")
    agent = create_agent(tenant, "slow", "sre")
    session = tenant.post(f"/agents/{agent['id']}/sessions", json={}).json()
    slow = 'Work it out slowly.\n/latency 0.5\n/tool calculator {"expression": "1 + 1"}'
    run = tenant.post(f"/sessions/{session['id']}/messages", json={"input": slow}).json()
    for _ in range(200):
        if last_seq(tenant, session["id"]) >= 3:
            break
        time.sleep(0.05)
    client = LiveClient(cloud.ws_url, tenant.headers)
    try:
        client.send({"action": "subscribe", "session_id": session["id"], "after": 2})
        wait_for(tenant, run["id"])
        final = last_seq(tenant, session["id"])
        frames = session_frames(client, session["id"], final)
        assert shown_in_order(frames, after=2) == list(range(3, final + 1))
        assert min(f["seq"] for f in frames) == 3, "nothing at or before after"
    finally:
        client.close()


def test_another_workspaces_session_is_refused_like_a_missing_one_and_never_leaks(api, cloud):
    a = signup(api, "live-session-a", tier="pro")
    b = signup(api, "live-session-b", tier="pro")
    agent_b = create_agent(b, "secret", "sre")
    session_b = b.post(f"/agents/{agent_b['id']}/sessions", json={}).json()
    intruder = LiveClient(cloud.ws_url, a.headers)
    try:
        intruder.send({"action": "subscribe", "session_id": session_b["id"], "after": 0})
        refused = intruder.next(10)
        intruder.send({"action": "subscribe", "session_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"})
        missing = intruder.next(10)
        assert refused == missing == {"type": "error", "code": "not_found", "message": refused["message"]}
        intruder.send({"action": "subscribe", "session_id": session_b["id"], "run_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"})
        assert intruder.next(10)["code"] == "invalid_request", "one target per frame"
        turn = b.post(f"/sessions/{session_b['id']}/messages", json={"input": "B's secret plan."}).json()
        wait_for(b, turn["id"])
        leaked = intruder.unread()
        assert leaked == []
    finally:
        intruder.close()
