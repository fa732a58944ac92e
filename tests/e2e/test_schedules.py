"""Schedules on the local cloud: an agent's runs on a cron in a time zone, through EventBridge
Scheduler (moto's, fired by the local cloud as Scheduler fires them, on a clock the tests move),
launched by the launch path of every run, within the tier's limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from moto.scheduler.models import scheduler_backends

from local.template import ACCOUNT_ID
from tests.support import assert_error, create_agent, set_tier, signup, wait_for


def _scheduler_schedules(cloud, workspace_id: str | None = None) -> dict[str, dict]:
    """EventBridge Scheduler's schedules (moto's) in the deployment's group, by name."""
    backend = scheduler_backends[ACCOUNT_ID][cloud.config.stack.region]
    found = {}
    for group in cloud.scheduler.groups:
        for name, schedule in backend.schedule_groups[group].schedules.items():
            if workspace_id is None or name.startswith(workspace_id):
                found[name] = schedule.to_dict()
    return found


def _fires_of(fired: list[dict], schedule_id: str) -> list[dict]:
    return [f for f in fired if f["name"].endswith(schedule_id)]


def _advance_to(cloud, moment: datetime) -> list[dict]:
    """Move the local Scheduler's clock to ``moment`` (if it is ahead); the fires that came due."""
    delta = moment - cloud.scheduler.now()
    return cloud.scheduler.advance(max(delta, timedelta(0)))


@pytest.fixture()
def tenant(api):
    owner = signup(api, tag="scheduler", tier="pro")
    owner.extra["agent"] = create_agent(owner, "nightly", "sre")
    return owner


def test_a_schedule_fires_at_its_next_cron_time_in_its_time_zone(cloud, tenant):
    agent = tenant.extra["agent"]
    created = tenant.post(f"/agents/{agent['id']}/schedules",
                          json={"cron": "30 9 * * *", "timezone": "Asia/Tokyo", "input": "Morning report."})
    assert created.status_code == 201, created.text
    schedule = created.json()
    next_fire = datetime.fromisoformat(schedule["next_fire"])
    local = next_fire.astimezone(ZoneInfo("Asia/Tokyo"))
    assert (local.hour, local.minute) == (9, 30) and next_fire.astimezone(UTC).hour == 0  # 09:30 JST = 00:30 UTC
    assert schedule["last_fire"] is None and schedule["enabled"] is True
    in_scheduler = _scheduler_schedules(cloud, tenant.workspace_id)
    assert [s["ScheduleExpression"] for s in in_scheduler.values()] == ["cron(30 9 * * ? *)"]
    assert [s["ScheduleExpressionTimezone"] for s in in_scheduler.values()] == ["Asia/Tokyo"]
    assert "Morning report" not in str(in_scheduler)  # the target's input carries ids only

    due = next_fire  # when the local Scheduler fires it: its clock, which other tests move, may be days ahead
    while due <= cloud.scheduler.now():
        due += timedelta(days=1)  # 09:30 in Tokyo (no daylight-saving time) comes every 24 hours
    assert _fires_of(_advance_to(cloud, due - timedelta(seconds=30)), schedule["id"]) == []
    fired = _fires_of(_advance_to(cloud, due + timedelta(seconds=30)), schedule["id"])
    assert [(f["at"], f["result"]["status"]) for f in fired] == [(due, "launched")], fired

    run = wait_for(tenant, fired[0]["result"]["run_id"])
    assert run["status"] == "succeeded" and run["agent_id"] == agent["id"] and run["input"] == "Morning report."
    seen = tenant.get(f"/schedules/{schedule['id']}").json()
    assert seen["last_fire"] == {"at": due.isoformat(), "status": "launched", "reason": None, "message": None,
                                 "run_id": run["id"]}
    assert datetime.fromisoformat(seen["next_fire"]) > datetime.now(UTC)


# The fires below are delivered by hand (as Scheduler would), for schedules whose own fires are years
# away: the local Scheduler's clock, which other tests move, never fires them meanwhile.


def test_a_redelivered_fire_launches_once(cloud, tenant):
    agent = tenant.extra["agent"]
    schedule = tenant.post(f"/agents/{agent['id']}/schedules",
                           json={"cron": "0 4 29 2 *", "timezone": "UTC", "input": "Leap day check."}).json()
    fire = {"workspace_id": tenant.workspace_id, "schedule_id": schedule["id"], "scheduled_time": "2026-12-08T10:00:00Z"}
    first = cloud.runtime.invoke("ScheduleFireFunction", fire)
    again = cloud.runtime.invoke("ScheduleFireFunction", fire)
    assert first["status"] == "launched" and again == first
    runs = tenant.get("/runs", params={"agent_id": agent["id"]}).json()["items"]
    assert [r["id"] for r in runs] == [first["run_id"]]


def test_a_fire_past_runs_per_day_is_skipped_with_a_reason_and_an_alert(cloud, api, tenant):
    set_tier(api, tenant.workspace_id, "enterprise", limit_overrides={"runs_per_day": 1})
    agent = tenant.extra["agent"]
    schedule = tenant.post(f"/agents/{agent['id']}/schedules",
                           json={"cron": "0 4 29 2 *", "timezone": "UTC", "input": "Leap day check."}).json()
    fire = {"workspace_id": tenant.workspace_id, "schedule_id": schedule["id"]}
    launched = cloud.runtime.invoke("ScheduleFireFunction", {**fire, "scheduled_time": "2026-12-08T10:00:00Z"})
    assert launched["status"] == "launched"
    skipped = cloud.runtime.invoke("ScheduleFireFunction", {**fire, "scheduled_time": "2026-12-08T10:05:00Z"})
    assert skipped == {"status": "skipped", "reason": "quota_exceeded"}
    # delivered again, it is skipped again: never retried into the limit, never a second alert
    assert cloud.runtime.invoke("ScheduleFireFunction", {**fire, "scheduled_time": "2026-12-08T10:05:00Z"}) == skipped

    seen = tenant.get(f"/schedules/{schedule['id']}").json()
    assert seen["last_fire"]["status"] == "skipped" and seen["last_fire"]["reason"] == "quota_exceeded"
    assert seen["last_fire"]["at"] == "2026-12-08T10:05:00+00:00" and seen["last_fire"]["run_id"] is None
    assert len(tenant.get("/runs").json()["items"]) == 1
    alerts = [a for a in tenant.get("/alerts").json()["items"] if a.get("schedule_id") == schedule["id"]]
    assert [(a["limit"], a["reason"], a["period"]) for a in alerts] == [("runs_per_day", "quota_exceeded", "DAY#2026-12-08")]


def test_the_free_tier_allows_one_hourly_schedule(cloud, api):
    owner = signup(api, tag="free-scheduler")
    agent = create_agent(owner, "hourly", "sre")
    path = f"/agents/{agent['id']}/schedules"
    too_often = owner.post(path, json={"cron": "*/30 * * * *", "timezone": "UTC", "input": "Too often."})
    assert assert_error(too_often, 403, "plan_limit")["details"][0]["field"] == "cron"
    # 00:15, 00:30, 23:15, 23:30: fifteen minutes apart
    assert_error(owner.post(path, json={"cron": "15,30 0,23 * * *", "timezone": "UTC", "input": "x"}), 403, "plan_limit")
    hourly = owner.post(path, json={"cron": "0 * * * *", "timezone": "Europe/Paris", "input": "Hourly."})
    assert hourly.status_code == 201, hourly.text
    second = owner.post(path, json={"cron": "0 12 * * *", "timezone": "UTC", "input": "A second one."})
    assert "1 schedule" in assert_error(second, 403, "plan_limit")["message"]
    patched = owner.api.patch(owner.path(f"/schedules/{hourly.json()['id']}"), headers=owner.headers,
                              json={"cron": "*/5 * * * *"})
    assert_error(patched, 403, "plan_limit")
    usage = owner.get("/usage").json()["limits"]["schedules"]
    assert usage == {"period": None, "used": 1, "min_interval_seconds": 3600, "limit": 1, "percent": 100.0,
                     "resets_at": None}
    assert len(_scheduler_schedules(cloud, owner.workspace_id)) == 1


@pytest.mark.parametrize("body, field", [
    ({"cron": "0 9 * *", "timezone": "UTC", "input": "x"}, "cron"),
    ({"cron": "61 9 * * *", "timezone": "UTC", "input": "x"}, "cron"),
    ({"cron": "0 9 1 * MON", "timezone": "UTC", "input": "x"}, "cron"),
    ({"cron": "0 9 * * *", "timezone": "Mars/Olympus", "input": "x"}, "timezone"),
    ({"cron": "0 9 * * *", "timezone": "../../etc/passwd", "input": "x"}, "timezone"),
    ({"cron": "0 9 * * *", "timezone": "UTC", "input": "  "}, "input"),
])
def test_a_bad_cron_or_time_zone_is_refused_before_anything_is_written(cloud, tenant, body, field):
    agent = tenant.extra["agent"]
    error = assert_error(tenant.post(f"/agents/{agent['id']}/schedules", json=body), 400, "invalid_request")
    assert field in str(error["details"])
    assert tenant.get("/schedules").json()["items"] == []
    assert _scheduler_schedules(cloud, tenant.workspace_id) == {}


def test_change_disable_and_delete_follow_into_the_scheduler(cloud, tenant):
    agent = tenant.extra["agent"]
    schedule = tenant.post(f"/agents/{agent['id']}/schedules",
                           json={"cron": "0 9 * * MON-FRI", "timezone": "Europe/Paris", "input": "Weekdays."}).json()
    name = f"{tenant.workspace_id}-{schedule['id']}"
    changed = tenant.api.patch(tenant.path(f"/schedules/{schedule['id']}"), headers=tenant.headers,
                               json={"cron": "15 8 * * SAT,SUN", "enabled": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["next_fire"] is None and changed.json()["cron"] == "15 8 * * SAT,SUN"
    held = _scheduler_schedules(cloud, tenant.workspace_id)[name]
    assert (held["ScheduleExpression"], held["State"]) == ("cron(15 8 ? * 1,7 *)", "DISABLED")
    listed = tenant.get("/schedules", params={"agent_id": agent["id"]}).json()["items"]
    assert [s["id"] for s in listed] == [schedule["id"]]
    deleted = tenant.api.delete(tenant.path(f"/schedules/{schedule['id']}"), headers=tenant.headers)
    assert deleted.status_code == 204
    assert_error(tenant.get(f"/schedules/{schedule['id']}"), 404, "not_found")
    assert _scheduler_schedules(cloud, tenant.workspace_id) == {}
    assert tenant.get("/usage").json()["limits"]["schedules"]["used"] == 0


def test_parallel_creations_never_pass_the_tiers_schedules(cloud, api, tenant):
    from concurrent.futures import ThreadPoolExecutor

    set_tier(api, tenant.workspace_id, "enterprise", limit_overrides={"schedules": 3})
    agent = tenant.extra["agent"]

    def create(i: int):
        return tenant.post(f"/agents/{agent['id']}/schedules",
                           json={"cron": f"{i} 6 * * *", "timezone": "UTC", "input": f"Report {i}."})

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(create, range(8)))
    assert sorted(r.status_code for r in answers) == [201] * 3 + [403] * 5, [r.text for r in answers]
    for refused in (r for r in answers if r.status_code == 403):
        assert_error(refused, 403, "plan_limit")
    listed = tenant.get("/schedules").json()["items"]
    assert len(listed) == 3 and len(_scheduler_schedules(cloud, tenant.workspace_id)) == 3
    assert tenant.get("/usage").json()["limits"]["schedules"]["used"] == 3


@pytest.mark.parametrize("change, error", [
    ({"ScheduleExpression": "cron(0 9 * * *)"}, "ValidationException"),  # five fields: Scheduler wants six
    ({"ScheduleExpression": "every day"}, "ValidationException"),
    ({"ScheduleExpressionTimezone": "Mars/Olympus"}, "ValidationException"),
    ({"GroupName": "no-such-group"}, "ResourceNotFoundException"),
])
def test_the_local_scheduler_refuses_what_eventbridge_scheduler_refuses(cloud, change, error):
    from botocore.exceptions import ClientError

    request = {"Name": "strict", "GroupName": cloud.scheduler.groups[0], "ScheduleExpression": "cron(0 9 * * ? *)",
               "ScheduleExpressionTimezone": "UTC", "FlexibleTimeWindow": {"Mode": "OFF"},
               "Target": {"Arn": "arn:aws:lambda:us-east-1:123456789012:function:x", "RoleArn": "arn:aws:iam::1:role/x"}}
    with pytest.raises(ClientError) as refused:
        cloud.client("scheduler").create_schedule(**{**request, **change})
    assert refused.value.response["Error"]["Code"] == error


def test_after_a_downgrade_schedules_past_the_new_tier_are_skipped_not_fired(cloud, api, tenant):
    agent = tenant.extra["agent"]

    def create(cron: str) -> dict:
        created = tenant.post(f"/agents/{agent['id']}/schedules", json={"cron": cron, "timezone": "UTC", "input": cron})
        assert created.status_code == 201, created.text
        return created.json()

    kept, too_often, past_the_count = create("0 4 29 2 *"), create("0,30 4 29 2 *"), create("0 5 29 2 *")
    set_tier(api, tenant.workspace_id, "free")  # 1 schedule, hourly at most

    def fire(schedule: dict) -> dict:
        return cloud.runtime.invoke("ScheduleFireFunction", {"workspace_id": tenant.workspace_id,
                                                             "schedule_id": schedule["id"],
                                                             "scheduled_time": "2028-02-29T04:00:00Z"})

    assert fire(kept)["status"] == "launched"
    assert fire(too_often) == fire(past_the_count) == {"status": "skipped", "reason": "plan_limit"}
    seen = {s["id"]: s["last_fire"] for s in tenant.get("/schedules").json()["items"]}
    assert "at most every hour" in seen[too_often["id"]]["message"]
    assert "allows 1 schedule;" in seen[past_the_count["id"]]["message"]
    assert len(tenant.get("/runs").json()["items"]) == 1
    alerts = {(a["schedule_id"], a["limit"]) for a in tenant.get("/alerts").json()["items"] if a.get("schedule_id")}
    assert alerts == {(too_often["id"], "schedule_min_interval_seconds"), (past_the_count["id"], "schedules")}


def test_a_fire_of_a_workspace_awaiting_email_verification_is_skipped(cloud, api):
    with cloud.email_verification(required=True):
        owner = signup(api, tag="unverified-scheduler", tier="pro")
        agent = create_agent(owner, "waiting", "sre")
        schedule = owner.post(f"/agents/{agent['id']}/schedules",
                              json={"cron": "0 4 29 2 *", "timezone": "UTC", "input": "Leap day."}).json()
        fired = cloud.runtime.invoke("ScheduleFireFunction", {"workspace_id": owner.workspace_id,
                                                              "schedule_id": schedule["id"],
                                                              "scheduled_time": "2028-02-29T04:00:00Z"})
        assert fired == {"status": "skipped", "reason": "email_unverified"}
        assert owner.get("/runs").json()["items"] == []
        assert owner.get(f"/schedules/{schedule['id']}").json()["last_fire"]["reason"] == "email_unverified"


def test_a_schedule_into_a_session_posts_the_sessions_next_message_once(cloud, tenant):
    agent = tenant.extra["agent"]
    session = tenant.post(f"/agents/{agent['id']}/sessions", json={"title": "Mornings"}).json()
    other = create_agent(tenant, "someone else", "sre")
    elsewhere = tenant.post(f"/agents/{other['id']}/schedules", json={
        "cron": "0 4 29 2 *", "timezone": "UTC", "input": "x", "session_id": session["id"]})
    assert_error(elsewhere, 400, "invalid_request")
    schedule = tenant.post(f"/agents/{agent['id']}/schedules", json={
        "cron": "0 4 29 2 *", "timezone": "UTC", "input": "Good morning.", "session_id": session["id"]}).json()
    fire = {"workspace_id": tenant.workspace_id, "schedule_id": schedule["id"], "scheduled_time": "2026-12-09T04:00:00Z"}
    first = cloud.runtime.invoke("ScheduleFireFunction", fire)
    assert first["status"] == "launched" and cloud.runtime.invoke("ScheduleFireFunction", fire) == first
    run = wait_for(tenant, first["run_id"])
    assert run["session_id"] == session["id"] and run["status"] == "succeeded"
    transcript = tenant.get(f"/sessions/{session['id']}/messages").json()["items"]
    assert [(m["role"], m["run_id"]) for m in transcript] == [("user", run["id"]), ("assistant", run["id"])]
    assert transcript[0]["text"] == "Good morning."

    assert tenant.api.delete(tenant.path(f"/sessions/{session['id']}"), headers=tenant.headers).status_code == 204
    gone = cloud.runtime.invoke("ScheduleFireFunction", {**fire, "scheduled_time": "2026-12-10T04:00:00Z"})
    assert gone == {"status": "skipped", "reason": "not_found"}
