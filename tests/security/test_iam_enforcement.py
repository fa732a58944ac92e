"""IAM is enforced in the local cloud: a call a role's policy does not allow is
refused as AWS refuses it, whoever makes it — a function with its own role, a
function or test with the tenant role's credentials.

The functions' calls are made from inside real invocations: a function's
handler is swapped (for one test) for one that attempts the calls, and the
function is invoked through the local API Gateway or the Lambda runtime.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import GetError, PutError, QueryError, TransactWriteError

from agenthq import ids
from agenthq.store import global_scope, tenant_scope, transaction
from agenthq.store.items import ApiKey, Note, User, Workspace
from local.lambda_runtime import in_process
from tests.handlers import health_role_attempts
from tests.support import assert_error, signup, with_api_key

DENIED = "AccessDeniedException"


def attempt(call) -> str:
    """'ok', or the AWS error code and message the call got."""
    try:
        call()
    except ClientError as error:
        return f"{error.response['Error']['Code']}: {error.response['Error']['Message']}"
    except (GetError, PutError, QueryError, TransactWriteError) as error:  # PynamoDB wraps the ClientError
        cause = error.cause
        return f"{cause.response['Error']['Code']}: {cause.response['Error']['Message']}"
    return "ok"


def test_a_function_gets_access_denied_for_what_its_policy_does_not_allow(cloud, api, handler_of):
    """The health function may read the HEALTH item and describe the state machine; nothing else."""

    def handler(event, context):
        results = health_role_attempts(**{"a user item, through the data layer": lambda: attempt(
            lambda: _get_user("someone"))})
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(results)}

    handler_of("HealthFunction", handler)
    response = api.get("/health")  # through the local API Gateway, as any request
    assert response.status_code == 200, response.text
    results = response.json()
    _assert_held_to_the_health_role(cloud, results)
    assert results["a user item, through the data layer"] == results["a user item"]


def test_a_function_in_its_own_worker_process_is_held_to_its_policy_too(cloud, api):
    """The same calls from the health function's worker process (its own process, its own credentials):
    its enforcer there knows it by the Lambda environment's credentials."""
    with cloud.runtime.handler_replaced("HealthFunction", "tests.handlers:attempts"):
        assert not cloud.runtime.runs_in_process("HealthFunction")
        response = api.get("/health")
    assert response.status_code == 200, response.text
    _assert_held_to_the_health_role(cloud, response.json())


def _assert_held_to_the_health_role(cloud, results: dict[str, str]) -> None:
    """What ``tests.handlers.health_role_attempts`` got as the health function: its two allowed calls
    work; every other is refused with AWS's error, naming the function's session and the action."""
    assert results["health item"] == "ok"
    assert results["describe state machine"] == "ok"
    session = "arn:aws:sts::123456789012:assumed-role/agenthq-HealthFunctionRole/agenthq-HealthFunction"
    table = f"arn:aws:dynamodb:us-east-1:123456789012:table/{cloud.config.stack.table_name}"
    assert results["a user item"] == (
        f"{DENIED}: User: {session} is not authorized to perform: dynamodb:GetItem on resource: {table} "
        "because no identity-based policy allows the dynamodb:GetItem action")
    assert results["start an execution"].startswith(f"{DENIED}: User: {session} is not authorized to perform: "
                                                    "states:StartExecution on resource: arn:aws:states:")
    assert results["the model's secret"].startswith(f"{DENIED}: User: {session} is not authorized to perform: "
                                                    "secretsmanager:GetSecretValue")
    assert results["the tenant role"].startswith(f"AccessDenied: User: {session} is not authorized to perform: "
                                                 "sts:AssumeRole")


def _get_user(user_id: str) -> None:
    with global_scope():
        try:
            User.get(*User.key(user_id))
        except User.DoesNotExist:
            pass


def test_the_tenant_role_is_assumed_only_with_a_workspace_tag(cloud, handler_of):
    """The agents function may assume the tenant role; its trust policy still wants the tag."""

    def handler(event, context):
        sts = boto3.client("sts")
        role = os.environ["TENANT_ROLE_ARN"]
        return {
            "untagged": attempt(lambda: sts.assume_role(RoleArn=role, RoleSessionName="untagged")),
            "tagged": attempt(lambda: sts.assume_role(RoleArn=role, RoleSessionName="tagged",
                                                      Tags=[{"Key": "workspace_id", "Value": ids.new_id()}])),
        }

    handler_of("AgentsFunction", handler)
    results = cloud.runtime.invoke("AgentsFunction", {})
    assert results["tagged"] == "ok"
    assert results["untagged"].startswith(
        "AccessDenied: User: arn:aws:sts::123456789012:assumed-role/agenthq-AgentsFunctionRole/agenthq-AgentsFunction "
        "is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/agenthq-TenantDataRole")


def test_the_tenant_role_cannot_touch_another_workspaces_items(cloud, api):
    a, b = signup(api, tag="iam-a", workspace_name="A"), signup(api, tag="iam-b", workspace_name="B")
    b_before = _raw(cloud, *Workspace.key(b.workspace_id))
    note = Note(*Note.key(a.workspace_id, "plan"), name="plan", content="A's", updated_at=datetime.now(UTC))
    with tenant_scope(a.workspace_id):  # the tenant role, tagged workspace_id=A, as the functions use it
        # its own workspace: allowed
        assert attempt(lambda: Workspace.get(*Workspace.key(a.workspace_id), consistent_read=True)) == "ok"
        assert attempt(lambda: list(Workspace.query(Workspace.key(a.workspace_id)[0]))) == "ok"
        # B's: refused, for a GetItem, a Query, and an item of a transaction
        assert attempt(lambda: Workspace.get(*Workspace.key(b.workspace_id))).startswith(
            f"{DENIED}: User: arn:aws:sts::123456789012:assumed-role/agenthq-TenantDataRole/ws-{a.workspace_id} "
            "is not authorized to perform: dynamodb:GetItem")
        assert attempt(lambda: list(Workspace.query(Workspace.key(b.workspace_id)[0]))).startswith(
            f"{DENIED}: User: arn:aws:sts::123456789012:assumed-role/agenthq-TenantDataRole/")

        def a_note_and_bs_workspace():
            with transaction() as tx:
                tx.save(note)
                tx.update(Workspace(*Workspace.key(b.workspace_id)), actions=[Workspace.name.set("Taken over")])

        outcome = attempt(a_note_and_bs_workspace)
        assert outcome.startswith(f"{DENIED}: ") and "dynamodb:UpdateItem" in outcome, outcome
        # a key that merely starts like A's is another workspace's too
        assert attempt(lambda: Workspace.get(f"WS#{a.workspace_id}X", "META")).startswith(f"{DENIED}: ")
        # and global items are out of reach
        assert attempt(lambda: User.get(*User.key(a.user_id))).startswith(f"{DENIED}: ")
    assert _raw(cloud, *Note.key(a.workspace_id, "plan")) is None, "the refused transaction wrote nothing"
    assert _raw(cloud, *Workspace.key(b.workspace_id)) == b_before


def _raw(cloud, pk: str, sk: str) -> dict | None:
    """An item as the operator sees it (not a function: unchecked)."""
    table = boto3.client("dynamodb", region_name="us-east-1")
    return table.get_item(TableName=cloud.config.stack.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                          ConsistentRead=True).get("Item")


def test_api_keys_are_created_and_revoked_with_least_privilege(cloud, api):
    """The key item is written with the tenant role, its global lookup with the
    workspaces function's own role (whose policy names no WS# key)."""
    owner = with_api_key(signup(api, tag="iam-keys", tier="pro"), scopes=("workspace:read",))
    assert api.get(owner.path(), headers=owner.key_headers).status_code == 200
    assert owner.api.delete(owner.path(f"/api-keys/{owner.api_key_id}"), headers=owner.headers).status_code == 204
    assert_error(api.get(owner.path(), headers=owner.key_headers), 401)
    key = _raw(cloud, *ApiKey.key(owner.workspace_id, owner.api_key_id))
    assert key is not None and "revoked_at" in key


def test_a_key_whose_lookup_cannot_be_written_is_not_left_behind(cloud, api):
    """If the second write of create_api_key fails, the first is undone: no key is
    listed that never worked. (The failure is an IAM refusal, here injected by
    narrowing the workspaces function's policy for one request.)"""
    owner = signup(api, tag="iam-rollback", tier="pro")
    role = cloud.iam.roles.of_function["WorkspacesFunction"]
    narrowed = _without_global_writes(role)
    cloud.iam.roles.of_function["WorkspacesFunction"] = narrowed
    try:
        with in_process():  # the narrowed policy is this process's enforcer's
            response = owner.post("/api-keys", json={"name": "doomed", "scopes": ["runs:read"]})
    finally:
        cloud.iam.roles.of_function["WorkspacesFunction"] = role
    assert_error(response, 500)
    listed = owner.get("/api-keys")
    assert listed.status_code == 200 and listed.json()["items"] == []


def _without_global_writes(role):
    from dataclasses import replace

    policies = [{**p, "Statement": [s for s in p["Statement"] if "dynamodb:PutItem" not in s.get("Action", [])]}
                for p in role.policies]
    return replace(role, policies=tuple(policies))


def _as_an_execution_of(state_machine: str, call):
    """``call`` from a thread of moto's interpreter working for ``state_machine`` (it signs with its own key)."""
    import threading

    from local.lambda_runtime import _THREAD_STATE_MACHINE

    thread = threading.current_thread()
    setattr(thread, _THREAD_STATE_MACHINE, state_machine)
    try:
        return call()
    finally:
        delattr(thread, _THREAD_STATE_MACHINE)


@pytest.mark.parametrize(("machine", "role", "allowed"), [
    ("agenthq-agent-run", "AgentRunStateMachine", "RunStepsFunction"),
    ("agenthq-offboarding", "OffboardingStateMachine", "OffboardingFunction"),
])
def test_each_state_machine_may_invoke_its_own_function_only(cloud, machine, role, allowed):
    """moto's Step Functions interpreter signs its Lambda calls with its own key: they are the calls of
    the state machine whose execution the thread works for."""
    as_the_state_machine = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="ak",
                                        aws_secret_access_key="sk")
    outcome = _as_an_execution_of(machine, lambda: attempt(
        lambda: as_the_state_machine.invoke(FunctionName="agenthq-AgentsFunction", Payload=b"{}")))
    assert outcome == (
        f"{DENIED}: User: arn:aws:sts::123456789012:assumed-role/agenthq-{role}Role/"
        f"{role}-execution is not authorized to perform: lambda:InvokeFunction on resource: "
        "arn:aws:lambda:us-east-1:123456789012:function:agenthq-AgentsFunction because no identity-based policy "
        "allows the lambda:InvokeFunction action")
    other = "OffboardingFunction" if allowed == "RunStepsFunction" else "RunStepsFunction"
    outcome = _as_an_execution_of(machine, lambda: attempt(
        lambda: as_the_state_machine.invoke(FunctionName=f"agenthq-{other}", Payload=b"{}")))
    assert outcome.startswith(f"{DENIED}: User: arn:aws:sts::123456789012:assumed-role/agenthq-{role}Role/")
    assert _as_an_execution_of(machine, lambda: attempt(  # allowed (the handler refuses the empty event)
        lambda: as_the_state_machine.invoke(FunctionName=f"agenthq-{allowed}", Payload=b"{}"))) == "ok"


def test_a_function_cannot_use_tenant_credentials_it_could_not_have_assumed(cloud, api, handler_of):
    """The functions share one process, and agenthq caches tenant credentials per
    workspace; on AWS a function gets them only by assuming the role itself."""
    owner = signup(api, tag="iam-cache")
    with tenant_scope(owner.workspace_id):  # the credentials are now in the process's cache
        Workspace.get(*Workspace.key(owner.workspace_id))

    def handler(event, context):
        with tenant_scope(owner.workspace_id):
            return attempt(lambda: Workspace.get(*Workspace.key(owner.workspace_id)))

    handler_of("HealthFunction", handler)  # no sts:AssumeRole in its policy
    assert cloud.runtime.invoke("HealthFunction", {}).startswith(  # refused as the DynamoDB call it is
        f"{DENIED}: User: arn:aws:sts::123456789012:assumed-role/agenthq-HealthFunctionRole/agenthq-HealthFunction "
        "is not authorized to perform: sts:AssumeRole")
    handler_of("AgentsFunction", handler)  # may assume it
    assert cloud.runtime.invoke("AgentsFunction", {}) == "ok"


def test_enforcement_is_on_in_the_tests_and_in_make_dev(cloud):
    from local.__main__ import parse_args
    from local.cloud import LocalCloudConfig
    from local.iam import active

    assert cloud.iam is not None and active() is cloud.iam
    assert LocalCloudConfig().iam and not parse_args([]).no_iam
