"""`agenthq schedules add|list|show|disable|enable|remove` against the local cloud, as a member runs it."""

from __future__ import annotations

import json

import pytest

from tests.support import PASSWORD, create_agent, signup

pytestmark = pytest.mark.slow


def test_schedules_are_added_listed_switched_and_removed_from_the_cli(cloud, api, agenthq):
    owner = signup(api, "cli-schedules")  # the free tier: one schedule, hourly at most
    agent = create_agent(owner, "cron-bot", "sre")
    assert agenthq("login", "--email", owner.email, "--password", PASSWORD).returncode == 0

    added = agenthq("schedules", "add", agent["id"], "--cron", "0 7 * * MON-FRI", "--timezone", "Europe/Paris",
                    "--input", "Stand-up notes.")
    assert added.returncode == 0, added.stderr
    schedule = json.loads(added.stdout)
    assert (schedule["cron"], schedule["timezone"], schedule["enabled"]) == ("0 7 * * MON-FRI", "Europe/Paris", True)
    assert owner.get(f"/schedules/{schedule['id']}").json()["next_fire"] == schedule["next_fire"]

    listed = agenthq("schedules", "list")
    assert listed.returncode == 0, listed.stderr
    assert schedule["id"] in listed.stdout and f"next {schedule['next_fire']}" in listed.stdout
    assert "last -" in listed.stdout
    assert [s["id"] for s in json.loads(agenthq("schedules", "list", "--json").stdout)] == [schedule["id"]]

    refused = agenthq("schedules", "add", agent["id"], "--cron", "*/10 * * * *", "--input", "Again.")
    assert refused.returncode == 1 and "403 plan_limit" in refused.stderr

    off = agenthq("schedules", "disable", schedule["id"])
    assert off.returncode == 0 and json.loads(off.stdout)["next_fire"] is None
    assert owner.get(f"/schedules/{schedule['id']}").json()["enabled"] is False
    on = agenthq("schedules", "enable", schedule["id"])
    assert on.returncode == 0 and json.loads(on.stdout)["next_fire"] == schedule["next_fire"]

    removed = agenthq("schedules", "remove", schedule["id"])
    assert removed.returncode == 0 and f"removed {schedule['id']}" in removed.stdout
    assert owner.get("/schedules").json()["items"] == []
    assert agenthq("schedules", "show", schedule["id"]).returncode == 1
