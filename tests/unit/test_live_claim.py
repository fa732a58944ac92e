"""A subscribe's replay lease outlasts the invocation that holds it (agenthq.live.seam.claim): a later
subscribe may take a replay over only when the ws function that ran it can no longer send."""

from __future__ import annotations

from agenthq.live import seam
from local.template import load_template


def test_the_replay_lease_is_longer_than_the_ws_functions_timeout():
    timeout = load_template()["Resources"]["LiveFunction"]["Properties"]["Timeout"]
    assert seam.REPLAY_LEASE_SECONDS > int(timeout)
