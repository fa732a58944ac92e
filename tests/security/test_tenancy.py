"""Tenant-scoped credentials: workspace data is reached with the tenant role,
assumed per workspace with a workspace_id session tag, whose IAM policy admits
only that workspace's partition keys.

IAM itself is not emulated locally (DynamoDB Local accepts any credentials),
so this proves the two halves that are ours: the code really switches to the
tagged credentials for workspace data, and the policy in template.yaml admits
exactly the workspace's keys.
"""

from __future__ import annotations

import fnmatch
import re

import boto3

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


def _leading_key_patterns() -> list[str]:
    role = load_template()["Resources"]["TenantDataRole"]["Properties"]
    (statement,) = role["Policies"][0]["PolicyDocument"]["Statement"]
    condition = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    return condition


def allowed(patterns: list[str], workspace_tag: str, partition_key: str) -> bool:
    """IAM StringLike (* and ?) with ${aws:PrincipalTag/workspace_id} substituted."""
    rendered = [p.replace("${aws:PrincipalTag/workspace_id}", workspace_tag) for p in patterns]
    return any(fnmatch.fnmatchcase(partition_key, p) for p in rendered)


def test_tenant_role_policy_admits_only_the_tagged_workspace():
    patterns = _leading_key_patterns()
    a = "01AAAAAAAAAAAAAAAAAAAAAAAA"
    assert allowed(patterns, a, f"WS#{a}")
    assert allowed(patterns, a, f"WS#{a}#RUN#01BBBBBBBBBBBBBBBBBBBBBBBB")
    assert allowed(patterns, a, f"WS#{a}#USAGE")
    assert not allowed(patterns, a, "WS#01CCCCCCCCCCCCCCCCCCCCCCCC")
    assert not allowed(patterns, a, f"WS#{a}X")  # a longer id sharing the prefix
    assert not allowed(patterns, a, f"USER#{a}")
    assert not allowed(patterns, a, "APIKEY#abc")


def test_tenant_role_can_only_be_assumed_with_a_workspace_tag():
    role = load_template()["Resources"]["TenantDataRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert set(trust["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    assert trust["Condition"] == {"StringLike": {"aws:RequestTag/workspace_id": "?*"}}
