"""Tenant-scoped credentials: workspace data is reached with the tenant role,
assumed per workspace with a workspace_id session tag, whose IAM policy admits
only that workspace's partition keys.

This proves the code really switches to the tagged credentials for workspace
data and that the role is assumed only with a tag. That the tenant role's
policy then admits exactly its workspace's keys is enforced by the local
cloud's IAM (test_iam_enforcement.py) and unit-tested operator by operator
(tests/unit/test_iam_policy.py).
"""

from __future__ import annotations

import re

import boto3

from local.lambda_runtime import in_process
from local.template import load_template
from tests.support import signup


def test_workspace_requests_use_credentials_assumed_with_the_workspace_tag(cloud, api):
    owner = signup(api)
    assumed: list[dict] = []
    dynamodb_keys: list[str] = []

    def on_assume(params, **_):
        assumed.append(params)

    def on_send(request, **_):
        auth = request.headers.get("Authorization", b"")
        auth = auth.decode() if isinstance(auth, bytes) else auth
        if m := re.search(r"Credential=([^/]+)/", auth):
            dynamodb_keys.append(m.group(1))

    from agenthq.services import Services, get_services, set_services

    session = boto3._get_default_session()
    session.events.register("provide-client-params.sts.AssumeRole", on_assume)
    # A fresh Services so the tenant credentials are assumed (and observed) anew.
    settings = get_services().settings
    set_services(Services(settings))
    try:
        from agenthq.store.base import BaseItem

        BaseItem._connection = None
        with in_process():  # the handlers' calls are observed in this process
            assert api.get(owner.path(), headers=owner.headers).status_code == 200
            scoped = _tenancy_connection(owner.workspace_id)
            scoped.connection.client.meta.events.register("before-send.dynamodb", on_send)
            assert api.get(owner.path("/members"), headers=owner.headers).status_code == 200
    finally:
        session.events.unregister("provide-client-params.sts.AssumeRole", on_assume)
    assert settings.tenant_role_arn, "template.yaml gives every function TENANT_ROLE_ARN"
    tags = [p.get("Tags") for p in assumed if p.get("RoleArn") == settings.tenant_role_arn]
    assert [{"Key": "workspace_id", "Value": owner.workspace_id}] in tags
    creds = _tenancy_credentials(owner.workspace_id)
    assert dynamodb_keys and set(dynamodb_keys) == {creds}, "workspace data went through the tenant credentials"


def _tenancy_connection(workspace_id: str):
    from agenthq.store.base import _tenancy

    return _tenancy._connections[workspace_id][0]


def _tenancy_credentials(workspace_id: str) -> str:
    return _tenancy_connection(workspace_id).connection._aws_access_key_id


def test_tenant_role_can_only_be_assumed_with_a_workspace_tag():
    role = load_template()["Resources"]["TenantDataRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert set(trust["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    assert trust["Condition"] == {
        "ArnLike": {"aws:PrincipalArn": {
            "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}/tenant-data/*"}},
        "StringLike": {"aws:RequestTag/workspace_id": "?" * 26},  # a workspace id (a ULID)
        "ForAllValues:StringEquals": {"aws:TagKeys": ["workspace_id"]},
    }
