"""Live status limits end to end on the local cloud, with raw WebSocket clients: a free workspace's
60 connects, a subscribe flood on one connection, and what the usage API shows."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support import signup

pytestmark = pytest.mark.slow


def _open(url: str, headers: dict[str, str]) -> tuple[Any, int | None]:
    """A raw client's connect: (the connection, None) or (None, the refused handshake's status)."""
    try:
        return connect(url, additional_headers=headers, proxy=None, open_timeout=60, legacy=True), None
    except InvalidStatus as refused:
        return None, refused.response.status_code


def _live_used(tenant: Any) -> dict[str, Any]:
    response = tenant.api.get(tenant.path("/usage"), headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["limits"]["live_connections"]


def _close_with_its_disconnect_lost(cloud: Any, tenant: Any, ws: Any) -> None:
    """Close a connection of the tenant's workspace while its $disconnect fails before it runs (lost, as
    when the function is throttled or times out): the connection's place is left held."""
    from local.lambda_runtime import InvocationFault

    lost = InvocationFault(function="LiveFunction", times=1, when="before",
                           match=lambda event: event.get("requestContext", {}).get("routeKey") == "$disconnect"
                           and event["requestContext"]["authorizer"].get("workspace_id") == tenant.workspace_id)
    cloud.runtime.faults.append(lost)
    try:
        ws.close()
        deadline = time.monotonic() + 30
        while lost.fired == 0:
            assert time.monotonic() < deadline, "the $disconnect ran (and failed)"
            time.sleep(0.1)
    finally:
        cloud.runtime.faults.remove(lost)


def test_sixty_connects_of_a_free_workspace_admit_its_live_connections_and_a_closed_ones_place_comes_back(api, cloud):
    tenant = signup(api, "live-sixty")  # free: live_connections 10
    opened: list[Any] = []
    refused: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(60)

    def one() -> None:
        start.wait()
        ws, status = _open(cloud.ws_url, tenant.headers)
        with lock:
            (opened.append(ws) if ws is not None else refused.append(status))

    threads = [threading.Thread(target=one) for _ in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(opened) == 10, (len(opened), refused)
        assert refused == [429] * 50, "a connect past the limit is a refused handshake, 429"
        assert _live_used(tenant) == {"period": None, "used": 10, "limit": 10, "percent": 100.0, "resets_at": None}
        for ws in opened:  # every accepted one works
            ws.send(json.dumps({"action": "ping"}))
            assert json.loads(ws.recv(timeout=30)) == {"type": "pong"}

        opened.pop().close()  # $disconnect gives its place back
        deadline = time.monotonic() + 30
        while _live_used(tenant)["used"] != 9:
            assert time.monotonic() < deadline, "the closed connection's place came back"
            time.sleep(0.2)
        ws, status = _open(cloud.ws_url, tenant.headers)
        assert status is None
        opened.append(ws)
        assert _open(cloud.ws_url, tenant.headers)[1] == 429
    finally:
        for ws in opened:
            ws.close()


def test_a_subscribe_flood_is_rate_limited_per_connection_and_the_connection_stays(api, cloud):
    tenant = signup(api, "live-flood", tier="pro")
    ws, status = _open(cloud.ws_url, tenant.headers)
    assert status is None
    try:
        for _ in range(25):
            ws.send(json.dumps({"action": "subscribe", "workspace": True}))
        frames = [json.loads(ws.recv(timeout=60)) for _ in range(25)]
        kinds = [f.get("type") or f.get("message") for f in frames]
        # LIVE_SUBSCRIBES_PER_WINDOW (10) per 10 s window; the flood may straddle two windows
        assert 10 <= kinds.count("subscribed") <= 20, kinds
        limited = [f for f in frames if f.get("type") == "error"]
        assert len(limited) == 25 - kinds.count("subscribed") and all(f["code"] == "rate_limited" for f in limited)
        ws.send(json.dumps({"action": "ping"}))
        assert json.loads(ws.recv(timeout=30)) == {"type": "pong"}, "the connection stays"
        usage = tenant.api.get(tenant.path("/usage?period=day"), headers=tenant.headers).json()
        assert usage["usage"]["api_calls"] == kinds.count("subscribed") + 1, \
            "every message is an API call, but a subscribe refused by the connection's window"
    finally:
        ws.close()


def test_a_connection_whose_disconnect_was_lost_gives_its_place_back_when_the_broadcaster_meets_its_410(api, cloud):
    from tests.support import create_agent, launch, wait_for

    tenant = signup(api, "live-lost")
    agent = create_agent(tenant, "watched", "sre")
    ws, status = _open(cloud.ws_url, tenant.headers)
    assert status is None
    ws.send(json.dumps({"action": "subscribe", "workspace": True}))
    assert json.loads(ws.recv(timeout=30))["type"] == "subscribed"
    assert _live_used(tenant)["used"] == 1
    _close_with_its_disconnect_lost(cloud, tenant, ws)
    assert _live_used(tenant)["used"] == 1, "its $disconnect was lost: the place is still held"

    run = launch(tenant, agent["id"], "Hello.", key="lost-1").json()  # its status changes go to the subscriber
    wait_for(tenant, run["id"])
    deadline = time.monotonic() + 60
    while _live_used(tenant)["used"] != 0:  # the broadcaster's 410 forgot it and gave the place back
        assert time.monotonic() < deadline, _live_used(tenant)
        time.sleep(0.5)


def test_a_full_workspace_gets_a_lost_connections_place_back_from_the_connections_api(api, cloud):
    tenant = signup(api, "live-repair")
    opened = [_open(cloud.ws_url, tenant.headers)[0] for _ in range(10)]
    assert all(opened) and _live_used(tenant)["used"] == 10
    _close_with_its_disconnect_lost(cloud, tenant, opened.pop())
    # Every connection is older than a $connect can take (as it would be minutes later).
    ddb = cloud.client("dynamodb")
    table = cloud.config.stack.table_name
    items = ddb.query(TableName=table, KeyConditionExpression="pk = :pk AND begins_with(sk, :conn)",
                      ExpressionAttributeValues={":pk": {"S": f"WS#{tenant.workspace_id}#LIVE"},
                                                 ":conn": {"S": "CONN#"}}, ConsistentRead=True)["Items"]
    assert len(items) == 10 and _live_used(tenant)["used"] == 10, "the lost one still holds its place"
    for item in items:
        ddb.update_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]},
                        UpdateExpression="SET connected_at = :then",
                        ExpressionAttributeValues={":then": {"S": "2020-01-01T00:00:00.000000+0000"}})
    try:
        ws, status = _open(cloud.ws_url, tenant.headers)  # full: the repair asks @connections, which says 410
        assert status is None, status
        opened.append(ws)
        assert _live_used(tenant)["used"] == 10
        assert _open(cloud.ws_url, tenant.headers)[1] == 429
    finally:
        for ws in opened:
            ws.close()
