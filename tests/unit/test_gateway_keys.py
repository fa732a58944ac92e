"""A workspace's API Gateway key moves between usage plans as API Gateway allows.

API Gateway keeps a key in at most one usage plan of each API stage (a second
plan on the same stage is a ConflictException); moto does not check that, so
the local cloud holds it to the rule (``hold_moto_to_one_plan_per_stage``) and
these tests run the real adapter (``ApiGatewayKeys``) against that stricter moto:
every tier change leaves the key in exactly one plan, and a change interrupted
between its two API Gateway calls is finished by a retry (docs/decisions.md 170).
"""

from __future__ import annotations

import secrets
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from agenthq.adapters.apigateway import ApiGatewayKeys
from local.usage_plans import hold_moto_to_one_plan_per_stage

REGION = "eu-west-3"  # not the session's local cloud's region: these tests see only their own keys and plans
STAGE = [{"apiId": "api1", "stage": "v1"}]
TIERS = ("free", "starter", "pro")


@pytest.fixture()
def apigw():
    hold_moto_to_one_plan_per_stage()
    with mock_aws():
        yield boto3.client("apigateway", region_name=REGION)


@pytest.fixture()
def plans(apigw) -> dict[str, str]:
    return {tier: apigw.create_usage_plan(name=f"agenthq-{tier}", apiStages=STAGE,
                                          throttle={"rateLimit": 5.0, "burstLimit": 10})["id"] for tier in TIERS}


def key_in(apigw, plan_id: str | None) -> str:
    key_id = apigw.create_api_key(name=f"ws-{secrets.token_hex(4)}", value=secrets.token_urlsafe(24),
                                  enabled=True)["id"]
    if plan_id:
        apigw.create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")
    return key_id


def plans_of(apigw, key_id: str) -> set[str]:
    return {p["id"] for p in apigw.get_usage_plans(keyId=key_id)["items"]}


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


# --------------------------------------------------------------------------- the rule, as the local cloud holds moto to it


def test_a_key_cannot_be_in_two_plans_of_the_same_stage(apigw, plans):
    key_id = key_in(apigw, plans["free"])
    with pytest.raises(ClientError) as refused:
        apigw.create_usage_plan_key(usagePlanId=plans["starter"], keyId=key_id, keyType="API_KEY")
    assert error_code(refused) == "ConflictException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert plans_of(apigw, key_id) == {plans["free"]}, "the refused attach changed nothing"

    with pytest.raises(ClientError) as again:
        apigw.create_usage_plan_key(usagePlanId=plans["free"], keyId=key_id, keyType="API_KEY")
    assert error_code(again) == "ConflictException"

    elsewhere = apigw.create_usage_plan(name="another-stage", apiStages=[{"apiId": "api1", "stage": "v2"}])["id"]
    apigw.create_usage_plan_key(usagePlanId=elsewhere, keyId=key_id, keyType="API_KEY")
    assert plans_of(apigw, key_id) == {plans["free"], elsewhere}, "a plan of another stage is allowed"


def test_removing_a_key_a_plan_does_not_hold_is_not_found(apigw, plans):
    key_id = key_in(apigw, plans["free"])
    for plan_id in (plans["starter"], "no-such-plan"):
        with pytest.raises(ClientError) as refused:
            apigw.delete_usage_plan_key(usagePlanId=plan_id, keyId=key_id)
        assert error_code(refused) == "NotFoundException"
    with pytest.raises(ClientError) as unknown:
        apigw.create_usage_plan_key(usagePlanId="no-such-plan", keyId=key_id, keyType="API_KEY")
    assert error_code(unknown) == "NotFoundException"
    with pytest.raises(ClientError) as gone:
        apigw.delete_usage_plan(usagePlanId="no-such-plan")
    assert error_code(gone) == "NotFoundException"


# --------------------------------------------------------------------------- the adapter under the rule


def test_a_tier_change_up_down_and_back_leaves_the_key_in_exactly_one_plan(apigw, plans):
    keys = ApiGatewayKeys(apigw, plans)
    key_id = key_in(apigw, plans["free"])
    held = "free"
    for tier in ("starter", "pro", "starter", "free", "pro", "free"):
        keys.move_key(key_id, plans[held], plans[tier])
        assert plans_of(apigw, key_id) == {plans[tier]}, (held, tier)
        held = tier
    keys.move_key(key_id, plans["free"], plans["free"])  # a change to the same plan: nothing moves
    assert plans_of(apigw, key_id) == {plans["free"]}


def test_an_enterprise_plan_of_its_own_and_back(apigw, plans):
    keys = ApiGatewayKeys(apigw, {**plans, "enterprise": plans["pro"]})
    key_id = key_in(apigw, plans["starter"])
    own = keys.ensure_workspace_plan("01WS", "enterprise", 1000, 2000, 50)
    assert apigw.get_usage_plan(usagePlanId=own)["apiStages"] == STAGE, "on the tier plan's stage"
    keys.move_key(key_id, plans["starter"], own)
    assert plans_of(apigw, key_id) == {own}
    keys.move_key(key_id, own, plans["pro"])
    keys.delete_plan(own)
    assert plans_of(apigw, key_id) == {plans["pro"]}


class Interrupted(Exception):
    """The process died between two API Gateway calls."""


class DiesAfter:
    """An API Gateway client that dies (once) right after its first call of ``operation`` succeeded."""

    def __init__(self, client: Any, operation: str) -> None:
        self.client, self.operation, self.died = client, operation, False

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)
        if name != self.operation:
            return real

        def call(**kwargs: Any) -> Any:
            result = real(**kwargs)
            if not self.died:
                self.died = True
                raise Interrupted(name)
            return result
        return call


@pytest.mark.parametrize("retry_to", ["starter", "pro", "free"])
def test_a_change_interrupted_between_detach_and_attach_is_finished_by_a_retry(apigw, plans, retry_to):
    key_id = key_in(apigw, plans["free"])
    with pytest.raises(Interrupted):
        ApiGatewayKeys(DiesAfter(apigw, "delete_usage_plan_key"), plans).move_key(
            key_id, plans["free"], plans["starter"])
    assert plans_of(apigw, key_id) == set(), "interrupted after the detach: the key is in no plan"

    # The stored tier is still free (the change did not finish): the retry moves from free again,
    # to the tier asked for first, or to another (the operator changed their mind), or back to free.
    ApiGatewayKeys(apigw, plans).move_key(key_id, plans["free"], plans[retry_to])
    assert plans_of(apigw, key_id) == {plans[retry_to]}


@pytest.mark.parametrize("retry_to", ["pro", "free"])
def test_a_change_interrupted_after_the_attach_is_finished_by_the_next_change(apigw, plans, retry_to):
    key_id = key_in(apigw, plans["free"])
    with pytest.raises(Interrupted):
        ApiGatewayKeys(DiesAfter(apigw, "create_usage_plan_key"), plans).move_key(
            key_id, plans["free"], plans["starter"])
    assert plans_of(apigw, key_id) == {plans["starter"]}, "the tier stored is still free"

    # The next change starts from what the stored tier says (free), not from where the key is.
    ApiGatewayKeys(apigw, plans).move_key(key_id, plans["free"], plans[retry_to])
    assert plans_of(apigw, key_id) == {plans[retry_to]}


class RacedBy:
    """An API Gateway client beside which another tier change keeps attaching the key to ``plan``
    (between this change's detach and attach), ``times`` times."""

    def __init__(self, client: Any, plan: str, times: int) -> None:
        self.client, self.plan, self.left = client, plan, times

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)
        if name != "create_usage_plan_key":
            return real

        def call(**kwargs: Any) -> Any:
            if self.left > 0:
                self.left -= 1
                self.client.create_usage_plan_key(usagePlanId=self.plan, keyId=kwargs["keyId"], keyType="API_KEY")
            return real(**kwargs)
        return call


def test_a_concurrent_change_is_undone_then_a_persistent_one_is_a_409(apigw, plans):
    from agenthq.errors import Conflict

    key_id = key_in(apigw, plans["free"])
    ApiGatewayKeys(RacedBy(apigw, plans["pro"], times=1), plans).move_key(key_id, plans["free"], plans["starter"])
    assert plans_of(apigw, key_id) == {plans["starter"]}, "the racing attach was detached again"

    with pytest.raises(Conflict):
        ApiGatewayKeys(RacedBy(apigw, plans["pro"], times=10), plans).move_key(key_id, plans["starter"], plans["free"])
    assert len(plans_of(apigw, key_id)) == 1, "still in exactly one plan (the racing change's)"
