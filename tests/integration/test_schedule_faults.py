"""Schedules when a dependency fails: EventBridge Scheduler unreachable at creation leaves nothing behind;
Step Functions unreachable at a fire makes the fire fail (so it is delivered again), and the redelivery
launches the one run — never a second."""

from __future__ import annotations

from typing import Any

import pytest

from agenthq.adapters.scheduler import EventBridgeScheduler
from local.lambda_runtime import FunctionError
from tests.support import UnreachableStepFunctions, assert_error, create_agent, services_with, signup, wait_for


class UnreachableScheduler(EventBridgeScheduler):
    """EventBridge Scheduler that cannot be reached (the real adapter's interface)."""

    def __init__(self) -> None:
        super().__init__(client=None, group_name="", target_arn="", role_arn="")
        self.calls = 0

    def put(self, name: str, expression: str, timezone: str, target_input: dict[str, Any], enabled: bool) -> None:
        self.calls += 1
        raise ConnectionError("scheduler.us-east-1.amazonaws.com: connection refused")


def test_a_schedule_scheduler_refuses_is_not_created(cloud, api):
    owner = signup(api, tag="scheduler-down", tier="pro")
    agent = create_agent(owner, "cron", "sre")
    unreachable = UnreachableScheduler()
    with services_with(scheduler=unreachable):
        refused = owner.post(f"/agents/{agent['id']}/schedules",
                             json={"cron": "0 9 * * *", "timezone": "UTC", "input": "Morning."})
    assert_error(refused, 503, "service_unavailable")
    assert unreachable.calls == 1
    assert owner.get("/schedules").json()["items"] == []
    assert owner.get("/usage").json()["limits"]["schedules"]["used"] == 0


def test_a_fire_step_functions_refuses_fails_and_its_redelivery_launches_the_one_run(cloud, api):
    owner = signup(api, tag="fire-retry", tier="pro")
    agent = create_agent(owner, "cron", "sre")
    schedule = owner.post(f"/agents/{agent['id']}/schedules",
                          json={"cron": "0 4 29 2 *", "timezone": "UTC", "input": "Leap day."}).json()
    fire = {"workspace_id": owner.workspace_id, "schedule_id": schedule["id"], "scheduled_time": "2028-02-29T04:00:00Z"}
    with services_with(orchestrator=UnreachableStepFunctions()), pytest.raises(FunctionError) as failed:
        cloud.runtime.invoke("ScheduleFireFunction", fire)
    assert "could not be started" in failed.value.message
    assert owner.get(f"/schedules/{schedule['id']}").json()["last_fire"] is None  # not skipped: delivered again
    again = cloud.runtime.invoke("ScheduleFireFunction", fire)
    assert again["status"] == "launched"
    assert wait_for(owner, again["run_id"])["status"] == "succeeded"
    assert [r["id"] for r in owner.get("/runs").json()["items"]] == [again["run_id"]]
