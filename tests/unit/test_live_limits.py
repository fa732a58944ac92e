"""Live limits without the cloud: the tier column and its overrides, the stage's route throttles as
the local WebSocket front reads and applies them."""

from __future__ import annotations

from agenthq.tiers import limits_for
from local.template import load_template, websocket_api
from local.websocket import _RouteThrottle


def test_live_connections_is_a_tier_column_enterprise_overrides():
    assert [limits_for(t).live_connections for t in ("free", "starter", "pro")] == [10, 100, 500]
    assert limits_for("enterprise", {"live_connections": 5000}).live_connections == 5000
    assert limits_for("enterprise").live_connections == 500


def test_the_stage_throttles_subscribe_apart_and_every_other_route_by_default():
    api = websocket_api(load_template())
    assert api is not None
    assert api.throttle_of("subscribe") == (100.0, 250)
    assert api.throttle_of("ping") == api.throttle_of("$connect") == (500.0, 1000)


def test_a_route_bucket_refuses_past_its_burst_and_refills_at_its_rate(monkeypatch):
    import local.websocket as front

    api = websocket_api(load_template())
    assert api is not None
    now = [1000.0]
    monkeypatch.setattr(front.time, "monotonic", lambda: now[0])
    throttle = _RouteThrottle(api)
    assert all(throttle.take("subscribe") for _ in range(250))
    assert not throttle.take("subscribe")
    assert throttle.take("ping"), "each route has its own bucket"
    now[0] += 0.1  # 100 a second: 10 more
    assert sum(throttle.take("subscribe") for _ in range(15)) == 10
    assert throttle.throttled["subscribe"] == 6
