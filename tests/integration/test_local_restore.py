"""After a restart of the local cloud, workspaces kept in DynamoDB Local get their
API Gateway keys back (moto's API Gateway forgets everything on exit).

A restart is simulated on the session's cloud: Workspace items whose keys the
gateway does not know (or whose ``gateway_key_id`` is stale) are written to the
table, then ``_restore_gateway_keys`` — what ``LocalCloud.start`` runs — is called.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone

import pytest

from agenthq.ids import new_id
from agenthq.services import get_services
from agenthq.store.items import Workspace
from local.cloud import LocalCloud


def put_workspace(tier: str, **attributes) -> Workspace:
    get_services()  # binds the models to the local cloud's table
    workspace_id = new_id()  # a ULID as every workspace has (the operator's role reads only WS#<26 characters>)
    workspace = Workspace(*Workspace.key(workspace_id), id=workspace_id, name="Restored", tier=tier,
                          usage_key=secrets.token_urlsafe(24), created_at=datetime.now(timezone.utc),
                          created_by="01USER", **attributes)
    workspace.save()
    return workspace


def gateway_key(cloud: LocalCloud, value: str) -> dict | None:
    keys = cloud.client("apigateway").get_api_keys(includeValues=True)["items"]
    matching = [k for k in keys if k.get("value") == value]
    assert len(matching) <= 1, "one key per value"
    return matching[0] if matching else None


def plans_of(cloud: LocalCloud, key_id: str) -> set[str]:
    return {p["id"] for p in cloud.client("apigateway").get_usage_plans(keyId=key_id)["items"]}


@pytest.mark.parametrize(("tier", "plan"), [("starter", "StarterUsagePlan"), ("enterprise", "ProUsagePlan")])
def test_restore_gives_a_workspace_its_key_in_its_tiers_plan(cloud, tier, plan):
    workspace = put_workspace(tier, gateway_key_id="key-id-from-before-the-restart")
    assert cloud.rest.meter.admit(workspace.usage_key) == "INVALID_API_KEY"

    cloud._restore_gateway_keys()

    key = gateway_key(cloud, workspace.usage_key)
    assert key is not None and key["enabled"] is True
    assert key["name"] == f"ws-{workspace.id}"
    assert plans_of(cloud, key["id"]) == {cloud.config.stack.refs[plan]}
    workspace.refresh(consistent_read=True)
    assert workspace.gateway_key_id == key["id"]
    assert cloud.rest.meter.admit(workspace.usage_key) is None


def test_restore_is_idempotent_and_skips_workspaces_being_deleted(cloud):
    kept = put_workspace("free")
    leaving = put_workspace("pro", deleting=True)

    cloud._restore_gateway_keys()
    first = gateway_key(cloud, kept.usage_key)
    cloud._restore_gateway_keys()  # e.g. two starts on the same moto: nothing doubles
    second = gateway_key(cloud, kept.usage_key)

    assert first is not None and second is not None and first["id"] == second["id"]
    assert plans_of(cloud, first["id"]) == {cloud.config.stack.refs["FreeUsagePlan"]}
    assert gateway_key(cloud, leaving.usage_key) is None
    leaving.refresh(consistent_read=True)
    assert leaving.gateway_key_id is None


def test_functions_see_the_usage_plans_moto_created(cloud):
    refs = cloud.config.stack.refs
    assert json.loads(cloud.environment["USAGE_PLAN_IDS"]) == {
        "free": refs["FreeUsagePlan"], "starter": refs["StarterUsagePlan"],
        "pro": refs["ProUsagePlan"], "enterprise": refs["ProUsagePlan"],
    }
    assert get_services().settings.usage_plan_ids == json.loads(cloud.environment["USAGE_PLAN_IDS"])


def test_restore_makes_an_enterprise_workspaces_own_plan_again(cloud):
    workspace = put_workspace("enterprise", limit_overrides={"api_rps": 42, "api_calls_per_day": 4242},
                              gateway_plan_id="plan-id-from-before-the-restart")

    cloud._restore_gateway_keys()

    key = gateway_key(cloud, workspace.usage_key)
    (plan_id,) = plans_of(cloud, key["id"])
    plan = cloud.client("apigateway").get_usage_plan(usagePlanId=plan_id)
    assert plan["name"] == f"agenthq-ws-{workspace.id}"
    assert plan["throttle"]["rateLimit"] == 42 and int(plan["quota"]["limit"]) == 4242
    workspace.refresh(consistent_read=True)
    assert (workspace.gateway_key_id, workspace.gateway_plan_id) == (key["id"], plan_id)


def test_restore_gives_a_workspace_made_before_the_directory_its_entry(cloud):
    from agenthq.store.items import WorkspaceDirectoryEntry

    workspace = put_workspace("free")
    cloud._restore_gateway_keys()
    entry = WorkspaceDirectoryEntry.get(*WorkspaceDirectoryEntry.key(workspace.id), consistent_read=True)
    assert entry.workspace_id == workspace.id and entry.created_at == workspace.created_at
