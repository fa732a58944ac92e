"""The load test keeps working: a few users for a few seconds against the session's local cloud (its
figures are printed by `make load`, never asserted; here only that every kind of request happened and
none failed)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_the_load_test_runs_every_kind_of_request_without_an_error(cloud, tmp_path):
    from bench.load import run

    result = run(users=3, spawn_rate=3, seconds=15, url=cloud.rest_url, ws_url=cloud.ws_url, artifacts=tmp_path,
                 quiet=True)
    kinds = {row.kind: row for row in result.rows}
    assert {"POST /auth/signup", "POST /auth/login", "POST /workspaces/{wid}/agents",
            "POST /workspaces/{wid}/agents/{aid}/runs", "WS connect", "WS run: launch → end"} <= set(kinds), kinds
    assert result.errors == 0, result.failures
    assert kinds["POST /auth/signup"].requests == 3
    assert kinds["WS run: launch → end"].requests >= 3  # every user's first run, watched live to its end
    assert all(row.p50 > 0 and row.p99 >= row.p50 for row in result.rows)
    assert result.total is not None and result.total.rps > 0
