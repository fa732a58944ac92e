"""Schedules hold to least privilege in the local cloud as IAM holds them on AWS: the schedules
function manages schedules of the deployment's group only and passes only the role made for
Scheduler; that role may invoke the fire function and nothing else; and a fire acts as the
workspace, for a schedule that still exists and is enabled."""

from __future__ import annotations

from tests.security.test_iam_enforcement import DENIED, attempt
from tests.support import create_agent, signup


def test_the_schedules_function_manages_its_groups_schedules_and_passes_only_the_schedulers_role(cloud, handler_of):
    group = cloud.scheduler.groups[0]
    target = cloud.resolver.get_att("ScheduleFireFunction", "Arn")
    scheduler_role = cloud.resolver.get_att("ScheduleTargetRole", "Arn")
    tenant_role = cloud.resolver.get_att("TenantDataRole", "Arn")

    def handler(event, context):
        import boto3

        scheduler = boto3.client("scheduler", region_name="us-east-1")

        def create(group_name: str, role: str, name: str) -> str:
            return attempt(lambda: scheduler.create_schedule(
                Name=name, GroupName=group_name, ScheduleExpression="cron(0 9 * * ? *)",
                FlexibleTimeWindow={"Mode": "OFF"}, Target={"Arn": target, "RoleArn": role, "Input": "{}"}))

        results = {"its group, Scheduler's role": create(group, scheduler_role, "iam-allowed"),
                   "the default group": create("default", scheduler_role, "iam-default-group"),
                   "another role": create(group, tenant_role, "iam-another-role"),
                   "delete": attempt(lambda: scheduler.delete_schedule(Name="iam-allowed", GroupName=group)),
                   "list": attempt(lambda: scheduler.list_schedules(GroupName=group))}
        return results

    handler_of("SchedulesFunction", handler)
    results = cloud.runtime.invoke("SchedulesFunction", {})
    assert results["its group, Scheduler's role"] == "ok" and results["delete"] == "ok"
    assert results["the default group"].startswith(DENIED) and "scheduler:CreateSchedule" in results["the default group"]
    assert results["another role"].startswith(DENIED) and "iam:PassRole" in results["another role"]
    assert results["list"].startswith(DENIED)


def test_schedulers_role_may_invoke_the_fire_function_only(cloud):
    role = cloud.resolver.get_att("ScheduleTargetRole", "Arn")
    assert cloud._role_may_invoke(role, cloud.resolver.get_att("ScheduleFireFunction", "Arn"))
    assert not cloud._role_may_invoke(role, cloud.resolver.get_att("AgentsFunction", "Arn"))
    assert not cloud._role_may_invoke(cloud.resolver.get_att("TenantDataRole", "Arn"),
                                      cloud.resolver.get_att("ScheduleFireFunction", "Arn"))


def test_a_fire_launches_only_for_an_enabled_schedule_of_that_workspace_as_the_workspace(cloud, api):
    owner = signup(api, tag="fire-guard", tier="pro")
    other = signup(api, tag="fire-other", tier="pro")
    agent = create_agent(owner, "guarded", "sre")
    schedule = owner.post(f"/agents/{agent['id']}/schedules",
                          json={"cron": "0 4 * * *", "timezone": "UTC", "input": "Guarded.", "enabled": False}).json()
    fire = {"schedule_id": schedule["id"], "scheduled_time": "2026-12-09T04:00:00Z"}
    assert cloud.runtime.invoke("ScheduleFireFunction", {**fire, "workspace_id": owner.workspace_id}) == {
        "status": "ignored"}  # disabled
    assert cloud.runtime.invoke("ScheduleFireFunction", {**fire, "workspace_id": other.workspace_id}) == {
        "status": "ignored"}  # not that workspace's
    assert cloud.runtime.invoke("ScheduleFireFunction", {**fire, "workspace_id": "../../x"}) == {"status": "ignored"}
    assert owner.api.patch(owner.path(f"/schedules/{schedule['id']}"), headers=owner.headers,
                           json={"enabled": True}).status_code == 200
    launched = cloud.runtime.invoke("ScheduleFireFunction", {**fire, "workspace_id": owner.workspace_id})
    assert launched["status"] == "launched"
    run = owner.get(f"/runs/{launched['run_id']}").json()
    assert run["agent_id"] == agent["id"]
    assert owner.api.delete(owner.path(f"/schedules/{schedule['id']}"), headers=owner.headers).status_code == 204
    later = {**fire, "workspace_id": owner.workspace_id, "scheduled_time": "2026-12-10T04:00:00Z"}
    assert cloud.runtime.invoke("ScheduleFireFunction", later) == {"status": "ignored"}  # deleted
    assert [r["id"] for r in owner.get("/runs").json()["items"]] == [launched["run_id"]]
