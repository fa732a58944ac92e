"""Usage plans: template.yaml carries the tier table, and the local gateway meters like API Gateway.

The meter runs against moto's real API Gateway (keys and plans created with
boto3, as the handlers do), with fake clocks for the token buckets and the day.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import datetime, timezone

import boto3
import pytest
from moto import mock_aws

from agenthq.tiers import TIERS, Tier
from local.template import LocalStack, Resolver, functions, load_template, usage_plans
from local.usage_plans import GatewayUsagePlanMeter

TEMPLATE = load_template()
PLAN_OF_TIER = {Tier.free: "FreeUsagePlan", Tier.starter: "StarterUsagePlan", Tier.pro: "ProUsagePlan"}
# Not the local cloud's region: if the session's local cloud (moto) is running in
# this process, these tests still see only their own keys and plans.
REGION = "eu-west-2"


# --------------------------------------------------------------------------- template.yaml


def test_each_tier_has_a_usage_plan_with_the_tier_tables_numbers():
    plans = {spec.logical_id: spec for spec in usage_plans(TEMPLATE, Resolver(TEMPLATE, LocalStack()))}
    assert set(plans) == set(PLAN_OF_TIER.values())
    for tier, logical_id in PLAN_OF_TIER.items():
        spec, limits = plans[logical_id], TIERS[tier]
        assert spec.name == f"agenthq-{tier.value}"
        assert (spec.rate_limit, spec.burst_limit) == (limits.api_rps, limits.api_burst), tier
        assert (spec.quota_limit, spec.quota_period) == (limits.api_calls_per_day, "DAY"), tier
    assert set(TIERS) == set(PLAN_OF_TIER), "a tier without a usage plan (or a plan without a tier)"


def test_usage_plans_apply_to_the_rest_api_stage():
    for logical_id in PLAN_OF_TIER.values():
        stages = TEMPLATE["Resources"][logical_id]["Properties"]["ApiStages"]
        assert stages == [{"ApiId": {"Ref": "RestApi"}, "Stage": {"Ref": "RestApi.Stage"}}]


def test_every_function_knows_the_usage_plan_of_every_tier():
    stack = LocalStack(refs={"FreeUsagePlan": "plan-free", "StarterUsagePlan": "plan-starter",
                             "ProUsagePlan": "plan-pro"})
    for spec in functions(TEMPLATE, Resolver(TEMPLATE, stack)).values():
        ids = json.loads(spec.environment["USAGE_PLAN_IDS"])
        assert set(ids) == {tier.value for tier in Tier}, spec.logical_id
        assert ids == {"free": "plan-free", "starter": "plan-starter", "pro": "plan-pro", "enterprise": "plan-pro"}


# --------------------------------------------------------------------------- the meter


class FakeClock:
    def __init__(self, start: float) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@pytest.fixture()
def apigw():
    with mock_aws():
        yield boto3.client("apigateway", region_name=REGION)


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture()
def wall() -> FakeClock:
    """Unix time, 60 s before midnight UTC."""
    return FakeClock(datetime(2025, 3, 14, 23, 59, 0, tzinfo=timezone.utc).timestamp())


@pytest.fixture()
def meter(apigw, clock, wall) -> GatewayUsagePlanMeter:
    return GatewayUsagePlanMeter(apigw, clock=clock, now=wall)


def make_plan(apigw, rate: float, burst: int, quota: int | None = None) -> str:
    kwargs = {"name": f"plan-{secrets.token_hex(4)}", "throttle": {"rateLimit": rate, "burstLimit": burst}}
    if quota is not None:
        kwargs["quota"] = {"limit": quota, "period": "DAY"}
    return apigw.create_usage_plan(**kwargs)["id"]


def make_key(apigw, plan_id: str | None, enabled: bool = True) -> tuple[str, str]:
    value = secrets.token_urlsafe(24)
    key_id = apigw.create_api_key(name=f"ws-{secrets.token_hex(4)}", value=value, enabled=enabled)["id"]
    if plan_id:
        apigw.create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")
    return value, key_id


def admitted_until_refused(meter: GatewayUsagePlanMeter, value: str, limit: int = 10_000) -> tuple[int, str | None]:
    for count in range(limit):
        refusal = meter.admit(value)
        if refusal:
            return count, refusal
    return limit, None


def test_unknown_disabled_and_planless_keys_are_invalid(apigw, meter):
    plan = make_plan(apigw, rate=5, burst=10)
    assert meter.admit("no-such-key-value-anywhere") == "INVALID_API_KEY"
    disabled, _ = make_key(apigw, plan, enabled=False)
    planless, _ = make_key(apigw, None)
    assert meter.admit(disabled) == "INVALID_API_KEY"
    assert meter.admit(planless) == "INVALID_API_KEY"


def test_a_key_created_a_moment_ago_is_found_and_a_disabled_one_refused_after_the_cache(apigw, meter, clock):
    plan = make_plan(apigw, rate=5, burst=10)
    assert meter.admit("warms-the-cache-with-nothing") == "INVALID_API_KEY"
    value, key_id = make_key(apigw, plan)
    assert meter.admit(value) is None  # no waiting for the cache to expire
    apigw.update_api_key(apiKey=key_id, patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}])
    clock.advance(1.01)
    assert meter.admit(value) == "INVALID_API_KEY"


def test_burst_then_throttled_then_refilled_at_the_plan_rate(apigw, meter, clock):
    value, _ = make_key(apigw, make_plan(apigw, rate=5, burst=10))
    assert admitted_until_refused(meter, value) == (10, "THROTTLED")
    clock.advance(0.2)  # one token at 5 per second
    assert admitted_until_refused(meter, value) == (1, "THROTTLED")
    clock.advance(0.5)
    assert admitted_until_refused(meter, value) == (2, "THROTTLED")
    clock.advance(3600)  # never more than the burst
    assert admitted_until_refused(meter, value) == (10, "THROTTLED")


def test_daily_quota_is_used_up_then_reset_the_next_utc_day(apigw, meter, clock, wall):
    value, _ = make_key(apigw, make_plan(apigw, rate=1000, burst=1000, quota=7))
    assert admitted_until_refused(meter, value) == (7, "QUOTA_EXCEEDED")
    clock.advance(30)
    wall.advance(30)  # 23:59:30, same day: still used up, even with a full bucket
    assert meter.admit(value) == "QUOTA_EXCEEDED"
    clock.advance(31)
    wall.advance(31)  # 00:00:01 the next day
    assert admitted_until_refused(meter, value) == (7, "QUOTA_EXCEEDED")


def test_refused_calls_do_not_use_quota(apigw, meter, clock):
    value, _ = make_key(apigw, make_plan(apigw, rate=1, burst=2, quota=3))
    assert admitted_until_refused(meter, value) == (2, "THROTTLED")
    for _ in range(5):
        assert meter.admit(value) == "THROTTLED"
    clock.advance(1.0)
    assert meter.admit(value) is None  # the third call of the day
    clock.advance(1.0)
    assert meter.admit(value) == "QUOTA_EXCEEDED"


def test_a_key_moved_to_another_plan_gets_its_limits_once_the_cache_expires(apigw, meter, clock):
    small = make_plan(apigw, rate=1, burst=2, quota=1000)
    large = make_plan(apigw, rate=100, burst=200, quota=1000)
    value, key_id = make_key(apigw, small)
    assert admitted_until_refused(meter, value) == (2, "THROTTLED")

    apigw.create_usage_plan_key(usagePlanId=large, keyId=key_id, keyType="API_KEY")
    apigw.delete_usage_plan_key(usagePlanId=small, keyId=key_id)
    clock.advance(0.5)  # cache still fresh: the small plan's 1/s refills half a token
    assert meter.admit(value) == "THROTTLED"

    clock.advance(1.0)  # cache expired: the half token left, then 1 s at the large plan's 100/s
    assert admitted_until_refused(meter, value) == (100, "THROTTLED")
    clock.advance(60)
    assert admitted_until_refused(meter, value) == (200, "THROTTLED")


def test_concurrent_requests_never_get_more_than_burst_plus_rate_times_elapsed(apigw):
    rate, burst = 5, 10
    value, _ = make_key(apigw, make_plan(apigw, rate=rate, burst=burst))
    meter = GatewayUsagePlanMeter(apigw)  # real clocks
    meter.admit("no-such-key-value-anywhere")  # load the snapshot before the race
    results: list[str | None] = []
    results_lock = threading.Lock()
    start = threading.Barrier(20)

    def hammer() -> None:
        start.wait()
        mine = [meter.admit(value) for _ in range(30)]
        with results_lock:
            results.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(20)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began

    admitted = results.count(None)
    assert len(results) == 600
    assert set(results) <= {None, "THROTTLED"}
    assert burst <= admitted <= burst + rate * elapsed
