"""Each role holds only what its code needs (issue 18, item 3): proven by the local cloud's IAM
enforcement, which refuses a call outside a role's policy as AWS does (docs/security.md, "Least privilege").

Each test swaps a function's handler for one that attempts calls from inside a real invocation (with the
function's own role), as tests/security/test_iam_enforcement.py does, and checks what is allowed and what
is refused. The functions' real paths (signup, login, /me, the authorizers, the operator's routes) keep
working under the narrowed roles: their own tests run under the same enforcement.
"""

from __future__ import annotations

import os

import boto3
import pytest

from agenthq import ids
from agenthq.admin.workspaces import OPERATOR_ATTRIBUTES
from agenthq.authorizer import AUTHORIZER_ATTRIBUTES
from agenthq.services import get_services
from agenthq.store import global_scope
from agenthq.store.items import Agent, Member, Quota, Run, RunBody, UsageCounter, Workspace
from local.iam.calls import Call
from local.iam.enforcer import AccessDenied, Principal
from local.iam.roles import Role
from local.template import ACCOUNT_ID
from tests.security.test_iam_enforcement import DENIED, attempt
from tests.support import PASSWORD, signup


def _refused(outcome: str, role: str, action: str) -> bool:
    return outcome.startswith(f"{DENIED}: User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/agenthq-{role}Role/") \
        and f"perform: {action} " in outcome


# --------------------------------------------------------------------------- the tenant role's trust


def _assume(principal: Principal, role_arn: str, tags: dict[str, str]) -> str:
    """AssumeRole by ``principal`` (a role of the account that is not a function's), as the local IAM decides it."""
    from local.iam import active

    iam = active()
    assert iam is not None
    call = Call("sts", "sts", "AssumeRole", {"RoleArn": role_arn, "RoleSessionName": "s",
                                             "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]},
                "us-east-1", ACCOUNT_ID)
    try:
        iam.authorize(principal, call)
    except AccessDenied as denied:
        return f"AccessDenied: {denied}"
    return "ok"


def test_the_tenant_role_trusts_only_this_stacks_functions_with_one_workspace_tag(cloud, handler_of):
    """Another role of the account, whatever its own policies allow (AdministratorAccess, a CI role with
    sts:* on *), cannot assume TenantDataRole; the functions that need it can, with one workspace_id tag
    holding a workspace id and no other tag. On main the trust policy admitted the account's root with any
    non-empty tag."""
    tenant_role = next(r for r in cloud.iam.roles.by_arn.values() if r.logical_id == "TenantDataRole")
    workspace_id = ids.new_id()
    anything = ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},)
    ci = Principal(Role(logical_id="CiRole", name="ci-deployer", policies=anything), "ci")
    assert _assume(ci, tenant_role.arn, {"workspace_id": workspace_id}).startswith(
        "AccessDenied: User: arn:aws:sts::123456789012:assumed-role/ci-deployer/ci is not authorized to perform: "
        "sts:AssumeRole on resource: arn:aws:iam::123456789012:role/agenthq-TenantDataRole")
    # a role named like the functions' but off their path is no better
    lookalike = Principal(Role(logical_id="X", name="agenthq-AgentsFunctionRole-x", policies=anything), "x")
    assert _assume(lookalike, tenant_role.arn, {"workspace_id": workspace_id}).startswith("AccessDenied: ")

    def handler(event, context):
        sts = boto3.client("sts")
        role = os.environ["TENANT_ROLE_ARN"]

        def tagged(tags: dict[str, str]) -> str:
            return attempt(lambda: sts.assume_role(RoleArn=role, RoleSessionName="probe",
                                                   Tags=[{"Key": k, "Value": v} for k, v in tags.items()]))

        return {"workspace": tagged({"workspace_id": workspace_id}),
                "not a workspace id": tagged({"workspace_id": "not-a-workspace"}),
                "another tag too": tagged({"workspace_id": workspace_id, "team": "x"})}

    handler_of("AgentsFunction", handler)
    results = cloud.runtime.invoke("AgentsFunction", {})
    assert results["workspace"] == "ok"
    assert results["not a workspace id"].startswith("AccessDenied: ")
    assert results["another tag too"].startswith("AccessDenied: ")
    # the functions that work on workspace data carry the path the trust policy names; the others do not
    on_path = {f for f, r in cloud.iam.roles.of_function.items() if r.path == "/agenthq/tenant-data/"}
    assert on_path == {"AuthFunction", "WorkspacesFunction", "AgentsFunction", "UsageFunction", "AdminFunction",
                       "RunStepsFunction", "OffboardingFunction", "PeriodResetFunction", "LiveFunction",
                       "SchedulesFunction", "ScheduleFireFunction", "WebhooksFunction", "WebhookDeliveryFunction",
                       "McpServersFunction"}


# --------------------------------------------------------------------------- the authorizers


@pytest.mark.parametrize("function", ["AuthorizerFunction", "LiveAuthorizerFunction"])
def test_the_authorizers_read_what_they_check_and_no_run_input(cloud, handler_of, function):
    """Both authorizers read members, sessions and API keys in workspace partitions; on main they could
    read every item there and in the runs' partitions: a run's input and output, an agent's prompt."""
    wid, rid, aid, uid = ids.new_id(), ids.new_id(), ids.new_id(), ids.new_id()

    def handler(event, context):
        with global_scope():
            return {
                "member, what it checks": attempt(lambda: Member.get_or_none(
                    *Member.key(wid, uid), attributes=AUTHORIZER_ATTRIBUTES)),
                "a run item": attempt(lambda: Run.get_or_none(*Run.key(wid, rid))),
                "a run's output": attempt(lambda: Run.get_or_none(*Run.key(wid, rid), attributes=["pk", "output"])),
                "a run's input": attempt(lambda: RunBody.get_or_none(*RunBody.key(wid, rid), attributes=["input"])),
                "an agent": attempt(lambda: Agent.get_or_none(*Agent.key(wid, aid))),
                "a member whole": attempt(lambda: Member.get_or_none(*Member.key(wid, uid))),
            }

    handler_of(function, handler)
    results = cloud.runtime.invoke(function, {})
    assert results["member, what it checks"] == "ok"
    for name in ("a run item", "a run's output", "a run's input", "an agent", "a member whole"):
        assert _refused(results[name], function, "dynamodb:GetItem"), (name, results[name])


# --------------------------------------------------------------------------- the auth function


def test_the_auth_function_writes_a_workspaces_own_partition_only_and_lists_no_plans_keys(cloud, handler_of):
    """Signup writes a workspace's first items with its own role; on main that role could also write
    every WS#* partition (runs' partitions, usage counters, quotas), read and update whole workspace items
    (their gateway key value, their tier), and list every API Gateway key with its value (GET /apikeys, and
    GET /usageplans/*/keys).
    (Its PutItem into a workspace's own partition stays: IAM cannot tell items of one partition apart.)"""
    wid, rid = ids.new_id(), ids.new_id()

    def handler(event, context):
        keys = get_services().gateway_keys
        client = keys.client
        dynamodb, table = boto3.client("dynamodb"), os.environ["TABLE_NAME"]

        def key(pk: str, sk: str) -> dict:
            return {"pk": {"S": pk}, "sk": {"S": sk}}

        def put(pk: str, sk: str) -> None:
            dynamodb.put_item(TableName=table, Item=key(pk, sk))

        with global_scope():
            return {
                "a run's input": attempt(lambda: put(*RunBody.key(wid, rid))),
                "a quota": attempt(lambda: dynamodb.update_item(
                    TableName=table, Key=key(*Quota.key(wid, "MONTH#2026-12")),
                    UpdateExpression="SET committed_micro_usd = :z", ExpressionAttributeValues={":z": {"N": "0"}})),
                "usage counters": attempt(lambda: put(*UsageCounter.key(wid, "MONTH#2026-12", 0))),
                "a workspace whole": attempt(lambda: list(Workspace.batch_get([Workspace.key(wid)]))),
                "a workspace's name": attempt(lambda: list(Workspace.batch_get(
                    [Workspace.key(wid)], attributes_to_get=["pk", "sk", "type", "id", "name"]))),
                "a workspace's tier": attempt(lambda: dynamodb.update_item(
                    TableName=table, Key=key(*Workspace.key(wid)), UpdateExpression="SET tier = :t",
                    ExpressionAttributeValues={":t": {"S": "pro"}})),
                "a plan's keys": attempt(lambda: client.get_usage_plan_keys(usagePlanId=keys.tier_plan("free"))),
                "list keys": attempt(lambda: client.get_api_keys(nameQuery=f"ws-{wid}", includeValues=True)),
            }

    handler_of("AuthFunction", handler)
    results = cloud.runtime.invoke("AuthFunction", {})
    assert results["a workspace's name"] == "ok"
    assert _refused(results["a run's input"], "AuthFunction", "dynamodb:PutItem"), results["a run's input"]
    assert _refused(results["a quota"], "AuthFunction", "dynamodb:UpdateItem"), results["a quota"]
    assert _refused(results["usage counters"], "AuthFunction", "dynamodb:PutItem"), results["usage counters"]
    assert _refused(results["a workspace whole"], "AuthFunction", "dynamodb:BatchGetItem")
    assert _refused(results["a workspace's tier"], "AuthFunction", "dynamodb:UpdateItem")
    assert _refused(results["a plan's keys"], "AuthFunction", "apigateway:GET"), results["a plan's keys"]
    assert _refused(results["list keys"], "AuthFunction", "apigateway:GET"), results["list keys"]


def test_signup_login_refresh_and_me_work_under_the_narrowed_auth_role(api):
    owner = signup(api, tag="narrow-auth", workspace_name="Narrow")
    me = api.get("/me", headers=owner.headers)
    assert me.status_code == 200, me.text
    assert [m["workspace_name"] for m in me.json()["memberships"]] == ["Narrow"]
    login = api.post("/auth/login", json={"email": owner.email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    refreshed = api.post("/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert refreshed.status_code == 200, refreshed.text


# --------------------------------------------------------------------------- the admin function


def test_the_admin_function_reads_what_the_operator_sees_and_no_tenant_content(cloud, handler_of):
    """The operator's own role lists workspaces and their month's usage; on main its Deny covered the runs'
    partitions only, so it could read what a workspace keeps in WS#<wid>: agents' prompts, runs' inputs
    (previews) and outputs, notes, messages."""
    wid, rid, aid = ids.new_id(), ids.new_id(), ids.new_id()

    def handler(event, context):
        with global_scope():
            return {
                "the workspace, as the operator sees it": attempt(lambda: Workspace.get_or_none(
                    *Workspace.key(wid), attributes=OPERATOR_ATTRIBUTES)),
                "month usage": attempt(lambda: list(UsageCounter.query(UsageCounter.key(wid, "MONTH#2026-12", 0)[0]))),
                "the workspace's partition": attempt(lambda: list(Workspace.query(Workspace.key(wid)[0]))),
                "an agent": attempt(lambda: Agent.get_or_none(*Agent.key(wid, aid))),
                "a run's output": attempt(lambda: Run.get_or_none(*Run.key(wid, rid), attributes=["pk", "sk", "output"])),
                "the gateway key value": attempt(lambda: Workspace.get_or_none(
                    *Workspace.key(wid), attributes=["pk", "sk", "usage_key"])),
            }

    handler_of("AdminFunction", handler)
    results = cloud.runtime.invoke("AdminFunction", {})
    assert results["the workspace, as the operator sees it"] == "ok"
    assert results["month usage"] == "ok"
    assert _refused(results["the workspace's partition"], "AdminFunction", "dynamodb:Query")
    for name in ("an agent", "a run's output", "the gateway key value"):
        assert _refused(results[name], "AdminFunction", "dynamodb:GetItem"), (name, results[name])


def test_a_workspace_whose_key_id_was_never_stored_gets_a_new_key_without_listing_keys(cloud, api):
    """The auth function may not list API Gateway keys (a listing shows every key's value), so a signup
    that died between creating its key and storing the key's id cannot look that key up: the next login
    creates a key with a new value and stores it on the workspace and its member. (On main it looked the
    key up by name, with values.)"""
    from agenthq.store import tenant_scope

    owner = signup(api, tag="lost-key")
    with tenant_scope(owner.workspace_id):
        lost = Workspace.get(*Workspace.key(owner.workspace_id), consistent_read=True)
        lost.update(actions=[Workspace.gateway_key_id.remove()])  # as if the process died before this write
    login = api.post("/auth/login", json={"email": owner.email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    with tenant_scope(owner.workspace_id):
        workspace = Workspace.get(*Workspace.key(owner.workspace_id), consistent_read=True)
        member = Member.get(*Member.key(owner.workspace_id, owner.user_id), consistent_read=True)
    assert workspace.gateway_key_id and workspace.gateway_key_id != lost.gateway_key_id
    assert workspace.usage_key != lost.usage_key and member.usage_key == workspace.usage_key
    apigw = cloud.client("apigateway")
    new_key = apigw.get_api_key(apiKey=workspace.gateway_key_id, includeValue=True)
    assert new_key["value"] == workspace.usage_key and new_key["name"] == f"ws-{owner.workspace_id}"
    assert [p["id"] for p in apigw.get_usage_plans(keyId=workspace.gateway_key_id)["items"]] == [
        get_services().gateway_keys.tier_plan("free")]
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert api.get(f"/workspaces/{owner.workspace_id}", headers=headers).status_code == 200
