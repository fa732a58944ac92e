"""Live access ends when access ends, and the replay seam, on the local cloud with raw WebSocket
clients (the ``websockets`` package, not the CLI's watcher).

- A removed member's, a demoted member's, a revoked session's (refresh-token reuse) and a revoked
  API key's open connection is closed, and receives no frame of a run launched after the change —
  also when the close itself fails (the @connections DELETE answers 500): the broadcaster checks the
  principal again before it sends, and a subscribe is refused.
- An API key without ``usage:read`` gets no ``usage.alert`` on a workspace subscription.
- 50 clients subscribing to one run at ``after: 0`` while it runs each receive exactly the stored
  sequence: no duplicate, no gap, in order (DESIGN §3's seam).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from agenthq.security.secrets import secret_hash
from agenthq.store import global_scope
from agenthq.store.items import RefreshToken
from tests.support import (
    PASSWORD,
    LiveClient,
    Tenant,
    bearer,
    create_agent,
    events_of,
    launch,
    set_tier,
    signup,
    wait_for,
    with_api_key,
)

pytestmark = pytest.mark.slow

TOOL_RUN = 'What is 6 * 7?\n/tool calculator {"expression": "6 * 7"}'


def _member_of(owner: Tenant, role: str) -> dict[str, str]:
    """Another user, made a member of ``owner``'s workspace with ``role``, signed in to it: its tokens."""
    other = signup(owner.api, f"live-{role}")
    added = owner.post("/members", json={"email": other.email, "role": role})
    assert added.status_code == 201, added.text
    login = owner.api.post("/auth/login", json={"email": other.email, "password": PASSWORD,
                                                "workspace_id": owner.workspace_id})
    assert login.status_code == 200, login.text
    return {"user_id": other.user_id, **login.json()}


def _watching(cloud: Any, headers: dict[str, str], run_id: str) -> LiveClient:
    """A connection subscribed to the workspace (every run's status changes) and to ``run_id``."""
    client = LiveClient(cloud.ws_url, headers)
    client.send({"action": "subscribe", "workspace": True})
    assert client.next(type_="subscribed") == {"type": "subscribed", "workspace": True}
    client.send({"action": "subscribe", "run_id": run_id, "after": 0})
    return client


def _wait_closed(client: LiveClient, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while client.closed is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.closed is not None, "the server closed the connection"


def _frames_of_a_run_launched_now(cloud: Any, owner: Tenant, agent_id: str, client: LiveClient,
                                  key: str) -> list[dict]:
    """Launch a run as the owner, wait for its end and for the broadcaster to have fanned out its
    last event (the owner's own watcher receives it), then every frame ``client`` got meanwhile."""
    client.unread(settle=0)
    witness = LiveClient(cloud.ws_url, owner.headers)
    try:
        witness.send({"action": "subscribe", "workspace": True})
        witness.next(type_="subscribed")
        run = launch(owner, agent_id, TOOL_RUN, key=key).json()
        wait_for(owner, run["id"])
        witness.run_events(run["id"], after=None)  # its run.succeeded went out to the workspace's watchers
    finally:
        witness.close()
    time.sleep(0.5)  # a frame posted to `client` in the same fan-out has reached its reader thread
    return [f for f in client.unread(settle=0) if f.get("run_id") == run["id"] or f.get("type") == "usage.alert"]


@pytest.fixture()
def owner_and_agent(api):
    owner = signup(api, "live-owner", tier="pro")
    agent = create_agent(owner, "watched", "sre")
    first = launch(owner, agent["id"], TOOL_RUN, key="first").json()
    wait_for(owner, first["id"])
    return owner, agent, first


def _sees_the_workspace(client: LiveClient, first_run: dict) -> None:
    """Before the change it works: the replay of the first run arrives."""
    frames = client.run_events(first_run["id"])  # its replay (and status changes the workspace subscription got)
    assert "run.succeeded" in {f["event"]["type"] for f in frames}
    assert client.next(type_="subscribed")["run_id"] == first_run["id"]


@pytest.mark.parametrize("change", ["removed", "demoted", "session_revoked", "left"])
def test_a_members_connection_ends_with_its_access_and_gets_no_later_frame(cloud, owner_and_agent, change):
    owner, agent, first = owner_and_agent
    member = _member_of(owner, "member")
    client = _watching(cloud, bearer(member["access_token"]), first["id"])
    _sees_the_workspace(client, first)

    if change == "removed":
        assert owner.api.delete(owner.path(f"/members/{member['user_id']}"), headers=owner.headers).status_code == 204
    elif change == "left":
        assert owner.api.delete(owner.path(f"/members/{member['user_id']}"),
                                headers=bearer(member["access_token"])).status_code == 204
    elif change == "demoted":
        changed = owner.api.patch(owner.path(f"/members/{member['user_id']}"), headers=owner.headers,
                                  json={"role": "viewer"})
        assert changed.status_code == 200 and changed.json()["role"] == "viewer", changed.text
    else:  # a rotated refresh token used again: the whole session is revoked
        rotated = owner.api.post("/auth/refresh", json={"refresh_token": member["refresh_token"]})
        assert rotated.status_code == 200, rotated.text
        _age_refresh_token(member["refresh_token"])
        assert owner.api.post("/auth/refresh", json={"refresh_token": member["refresh_token"]}).status_code == 401

    _wait_closed(client)
    assert _frames_of_a_run_launched_now(cloud, owner, agent["id"], client, key=f"after-{change}") == []


def test_a_revoked_keys_connection_ends_and_gets_no_later_frame(cloud, owner_and_agent):
    owner, agent, first = owner_and_agent
    with_api_key(owner)
    client = _watching(cloud, owner.key_headers, first["id"])
    _sees_the_workspace(client, first)
    assert owner.api.delete(owner.path(f"/api-keys/{owner.api_key_id}"), headers=owner.headers).status_code == 204
    _wait_closed(client)
    assert _frames_of_a_run_launched_now(cloud, owner, agent["id"], client, key="after-revoke") == []


@pytest.mark.parametrize("change", ["removed", "key_revoked"])
def test_when_the_close_fails_the_connection_still_gets_nothing_and_cannot_subscribe(cloud, owner_and_agent,
                                                                                    change):
    owner, agent, first = owner_and_agent
    if change == "removed":
        member = _member_of(owner, "viewer")
        headers = bearer(member["access_token"])
    else:
        headers = with_api_key(owner).key_headers
    client = _watching(cloud, headers, first["id"])
    _sees_the_workspace(client, first)
    cloud.websocket.failing_closes = True  # every @connections DELETE answers 500
    try:
        if change == "removed":
            gone = owner.api.delete(owner.path(f"/members/{member['user_id']}"), headers=owner.headers)
        else:
            gone = owner.api.delete(owner.path(f"/api-keys/{owner.api_key_id}"), headers=owner.headers)
        assert gone.status_code == 204, gone.text  # access ended; the failed close does not fail the request
        assert client.closed is None, "the close failed: the socket is still open"

        assert _frames_of_a_run_launched_now(cloud, owner, agent["id"], client, key=f"missed-{change}") == []
        client.send({"action": "subscribe", "run_id": first["id"], "after": 0})
        answered = [client.next()]
        while answered[-1].get("type") not in ("error", "subscribed"):
            answered.append(client.next())
        assert answered[-1]["type"] == "error" and answered[-1]["code"] == "unauthorized", answered
        assert [f for f in answered + client.unread(settle=0) if f.get("run_id") == first["id"]] == [], "no replay"
    finally:
        cloud.websocket.failing_closes = False
        client.close()


def test_a_key_without_usage_read_gets_no_usage_alert(cloud, api):
    owner = signup(api, "live-alerts", tier="pro")
    set_tier(api, owner.workspace_id, "enterprise", limit_overrides={"runs_per_day": 2, "api_rps": 1000,
                                                                     "api_burst": 1000})
    agent = create_agent(owner, "alerting", "sre")
    runs_only = LiveClient(cloud.ws_url, with_api_key(owner, scopes=("runs:read",)).key_headers)
    usage_too = LiveClient(cloud.ws_url, with_api_key(owner, scopes=("runs:read", "usage:read")).key_headers)
    try:
        for client in (runs_only, usage_too):
            client.send({"action": "subscribe", "workspace": True})
            client.next(type_="subscribed")
        for n in range(2):  # 2 of 2 runs a day: the 80% and the 100% alerts
            wait_for(owner, launch(owner, agent["id"], TOOL_RUN, key=f"alert-{n}").json()["id"])
        alerts = [usage_too.next(type_="usage.alert", timeout=60) for _ in range(2)]
        assert sorted(a["alert"]["threshold_percent"] for a in alerts) == [80, 100]
        time.sleep(0.5)
        got = runs_only.unread(settle=0)
        assert [f for f in got if f.get("type") == "usage.alert"] == []
        assert any(f.get("type") == "run.event" for f in got), "it still gets the runs' status changes"
    finally:
        runs_only.close()
        usage_too.close()


def test_fifty_clients_subscribing_at_zero_while_a_run_runs_each_get_exactly_the_stored_sequence(cloud, api):
    tenant = signup(api, "live-seam", tier="pro")
    agent = create_agent(tenant, "seam", "sre")
    tools = "\n".join(f'/tool calculator {{"expression": "{n} + 1"}}' for n in range(6))
    clients = [LiveClient(cloud.ws_url, tenant.headers) for _ in range(50)]
    try:
        start = threading.Barrier(len(clients) + 1)

        def subscribe(client: LiveClient) -> None:
            start.wait()
            client.send({"action": "subscribe", "run_id": run["id"], "after": 0})

        run = launch(tenant, agent["id"], f"Count.\n{tools}", key="seam-1").json()
        threads = [threading.Thread(target=subscribe, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        start.wait()  # all 50 subscribe at once, right after the launch, while the run runs
        for thread in threads:
            thread.join()
        assert wait_for(tenant, run["id"])["status"] == "succeeded"
        stored = [e["seq"] for e in events_of(tenant, run["id"])]
        assert len(stored) >= 10
        received = [[f["seq"] for f in _until_the_end(client, run["id"])] for client in clients]
        time.sleep(1.0)  # anything sent twice would have arrived by now
        for seqs, client in zip(received, clients, strict=True):
            seqs += [f["seq"] for f in client.unread(settle=0) if f.get("type") == "run.event"]
        exact = sum(1 for seqs in received if seqs == stored)
        assert exact == len(clients), (f"{exact} of {len(clients)} got exactly {stored}; others got",
                                       [seqs for seqs in received if seqs != stored][:5])
    finally:
        for client in clients:
            client.close()


def _until_the_end(client: LiveClient, run_id: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Every ``run.event`` frame of ``run_id`` as received, duplicates included, up to its last event."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = client.next(timeout=deadline - time.monotonic())
        if frame.get("type") == "run.event" and frame.get("run_id") == run_id:
            got.append(frame)
            if frame["event"]["type"] in ("run.succeeded", "run.failed", "run.cancelled", "run.timed_out"):
                return got
    raise AssertionError(f"timed out with {[f['seq'] for f in got]}")


def _age_refresh_token(token: str) -> None:
    """Move a rotated token's use back past the grace period for racing retries (as test_auth_flow does)."""
    from datetime import timedelta

    with global_scope():
        item = RefreshToken.get(*RefreshToken.key(secret_hash(token)), consistent_read=True)
        item.update(actions=[RefreshToken.used_at.set(item.used_at - timedelta(minutes=5))])


def test_offboarding_closes_every_connection_of_the_workspace(cloud, owner_and_agent):
    owner, agent, first = owner_and_agent
    member = _member_of(owner, "viewer")
    by_owner = _watching(cloud, owner.headers, first["id"])
    by_member = _watching(cloud, bearer(member["access_token"]), first["id"])
    by_key = _watching(cloud, with_api_key(owner).key_headers, first["id"])
    elsewhere = signup(owner.api, "live-elsewhere", tier="pro")
    unrelated = LiveClient(cloud.ws_url, elsewhere.headers)
    try:
        for client in (by_owner, by_member, by_key):
            _sees_the_workspace(client, first)
        assert owner.api.delete(owner.path(), headers=owner.headers).status_code == 202
        for client in (by_owner, by_member, by_key):
            _wait_closed(client, timeout=120)
        unrelated.send({"action": "ping"})
        assert unrelated.next(type_="pong") and unrelated.closed is None, "another workspace's stays open"
    finally:
        unrelated.close()
