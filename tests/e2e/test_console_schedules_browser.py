"""Schedules in the web console (headless Chromium against the local cloud): a member adds a
schedule and sees its next fire; when the local Scheduler's clock reaches it, the page shows the
fire launched, with its run (live: the workspace's run status changes reload the list); switched
off, it has no next fire; deleted, it is gone from EventBridge Scheduler too."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.support import PASSWORD, create_agent, signup, wait_for

pytestmark = pytest.mark.slow


def _when(iso: str) -> str:
    """How the console shows a time of the API."""
    return f"{iso.replace('T', ' ')[:19]} UTC"


def test_schedules_show_their_next_and_last_fire(cloud, api, page):
    owner = signup(api, workspace_name="Cron Works", tier="starter")
    create_agent(owner, "night-owl", "sre")
    page.sign_in(owner.email, PASSWORD)
    page.go("Schedules")
    page.until(lambda: page.text("#schedules") == "No schedules yet: add one below.", message="the empty list")

    page.choose("#add-schedule select[name=agent]", "night-owl")
    page.fill("#add-schedule input[name=cron]", "45 23 * * *")
    page.fill("#add-schedule input[name=timezone]", "Pacific/Auckland")
    page.fill("#add-schedule textarea[name=input]", "Summarise the day.")
    page.find("#add-schedule button[type=submit]").click()
    page.until(lambda: page.text("#add-schedule .message").startswith("Schedule added"), message="the new schedule")
    schedule = owner.get("/schedules").json()["items"][0]
    row = f"#schedules tr[data-schedule='{schedule['id']}']"
    page.until(lambda: page.text(f"{row} th") == "night-owl", message="the schedule's row")
    assert page.text(f"{row} .cron") == "45 23 * * * Pacific/Auckland"
    assert page.text(f"{row} .next-fire") == _when(schedule["next_fire"])
    assert page.text(f"{row} .last-fire") == "not yet"
    page.screenshot("added")

    refused = "*/1 * * * *"
    page.fill("#add-schedule input[name=cron]", refused)
    page.fill("#add-schedule textarea[name=input]", "Too often.")
    page.find("#add-schedule button[type=submit]").click()
    page.until(lambda: "at most every 5 minutes" in page.text("#add-schedule .message"), message="the refusal")

    next_fire = datetime.fromisoformat(schedule["next_fire"])
    fired = [f for f in cloud.scheduler.advance(max(next_fire - cloud.scheduler.now(), timedelta(0))
                                                + timedelta(seconds=1)) if f["name"].endswith(schedule["id"])]
    assert [f["result"]["status"] for f in fired] == ["launched"], fired
    run_id = fired[0]["result"]["run_id"]
    wait_for(owner, run_id)
    # the list reloads as the run's status changes (live): every check reads it afresh
    page.until(lambda: page.text(f"{row} .last-fire").startswith(f"{_when(next_fire.isoformat())} launched"),
               timeout=90, message="the fire, live")  # (a loaded machine: the run's events, then a reload)
    page.until(lambda: page.find(f"{row} .last-fire a").get_attribute("title") == run_id, message="its run")
    page.until(lambda: page.text(f"{row} .next-fire") == _when((next_fire + timedelta(days=1)).isoformat()),
               message="the next fire, a day later")
    page.screenshot("fired")

    page.until(lambda: page.find(f"{row} button[name=toggle]").click() or True, message="switch it off")
    page.until(lambda: page.text(f"{row} .next-fire") == "switched off", message="switched off")
    page.until(lambda: page.find(f"{row} button[name=delete]").click() or True, message="delete it")
    page.until(lambda: page.text("#schedules") == "No schedules yet: add one below.", message="deleted")
    assert owner.get("/schedules").json()["items"] == []
