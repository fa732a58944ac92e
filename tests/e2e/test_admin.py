"""The operator's routes through the real local cloud front: SigV4 (AWS_IAM) or nothing,
tier changes that reach the workspace's limits and the gateway's usage plans, the
directory of workspaces, and cost against price."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from botocore.credentials import Credentials

from agenthq.services import get_services
from agenthq.store.items import UsageCounter, Workspace
from agenthq_cli.signing import SigV4, sign
from local.template import load_template, rest_api
from tests.support import assert_error, set_tier, signup, wait_for_offboarding, with_api_key

GATEWAY_RESPONSES = rest_api(load_template()).gateway_responses


def admin_path(workspace_id: str) -> str:
    return f"/admin/workspaces/{workspace_id}"


def stored(workspace_id: str) -> Workspace:
    get_services()
    return Workspace.get(*Workspace.key(workspace_id), consistent_read=True)


def plans_of_key(cloud, workspace_id: str) -> list[dict]:
    apigw = cloud.client("apigateway")
    return apigw.get_usage_plans(keyId=stored(workspace_id).gateway_key_id)["items"]


class Signed(httpx.Auth):
    """Signs like the CLI, then lets a test spoil one thing."""

    requires_request_body = True

    def __init__(self, cloud, secret: str | None = None, at: datetime | None = None, region: str | None = None,
                 tamper: bytes | None = None) -> None:
        operator = cloud.operator
        self.credentials = Credentials(operator.access_key_id, secret or operator.secret_access_key)
        self.region = region or cloud.config.stack.region
        self.at = at
        self.tamper = tamper

    def auth_flow(self, request):
        sign(request, self.credentials, self.region, self.at)
        if self.tamper is not None:  # the body changes after it was signed
            request = httpx.Request(request.method, request.url, headers={**request.headers,
                                    "content-length": str(len(self.tamper))}, content=self.tamper)
        yield request


# --------------------------------------------------------------------------- who may call


def test_unsigned_and_wrongly_signed_operator_requests_are_refused_and_change_nothing(api, cloud):
    owner = with_api_key(signup(api))
    path, body = admin_path(owner.workspace_id), {"tier": "enterprise", "limit_overrides": {"api_rps": 9999}}
    now = datetime.now(timezone.utc)
    refused = {
        "unsigned": dict(),
        "the owner's access token": dict(headers=owner.headers),
        "the workspace's API key": dict(headers=owner.key_headers),
        "a wrong secret": dict(auth=Signed(cloud, secret="not-the-operators-secret")),
        "a body altered after signing": dict(auth=Signed(cloud, tamper=json.dumps({"tier": "pro"}).encode())),
        "a date 16 minutes old": dict(auth=Signed(cloud, at=now - timedelta(minutes=16))),
        "a date 16 minutes ahead": dict(auth=Signed(cloud, at=now + timedelta(minutes=16))),
        "another region's signature": dict(auth=Signed(cloud, region="eu-west-1")),
    }
    for what, how in refused.items():
        for method in ("GET", "PATCH"):
            response = api.request(method, path, json=body if method == "PATCH" else None, **how)
            # An unsigned request is API Gateway's MISSING_AUTHENTICATION_TOKEN (like an unknown route),
            # a signature that does not hold is INVALID_SIGNATURE: both 403 (issue 9, decisions.md 21).
            kind = "MISSING_AUTHENTICATION_TOKEN" if what in ("unsigned", "the workspace's API key") \
                else "INVALID_SIGNATURE"
            status = GATEWAY_RESPONSES[kind]["StatusCode"]
            assert status == 403, what
            assert_error(response, status, json.loads(GATEWAY_RESPONSES[kind]["ResponseTemplates"][
                "application/json"].replace("$context.requestId", "r"))["error"]["code"])
            assert response.headers["x-amzn-ErrorType"] == kind, what
    assert_error(api.get(path, auth=Signed(cloud, secret="x")), 403, "forbidden")
    workspace = stored(owner.workspace_id)
    assert (workspace.tier, workspace.limit_overrides, workspace.gateway_plan_id) == ("free", None, None)
    assert owner.get("").json()["tier"] == "free"


class SignedAs(httpx.Auth):
    """Signs like the CLI with another principal's credentials."""

    requires_request_body = True

    def __init__(self, credentials: Credentials, region: str) -> None:
        self.credentials, self.region = credentials, region

    def auth_flow(self, request):
        sign(request, self.credentials, self.region)
        yield request


def test_a_principal_of_the_account_not_named_an_operator_is_refused_with_a_valid_signature(api, cloud):
    """Another IAM user of the account (a CI role, an administrator) whose policy allows execute-api:Invoke on *:
    its signature holds, but it is not in OperatorPrincipalArns, so the REST API's resource policy refuses it
    (issue 18: before, any such principal could change tiers and offboard any workspace)."""
    from local.sigv4 import LocalCredentials

    bystander = LocalCredentials("AKIALOCALCIDEPLOYER1", "ci-deployer-secret-0123456789abcdefghij",
                                 user_name="ci-deployer", user_id="AIDALOCALCIDEPLOYER1")
    cloud.rest.signatures.credentials[bystander.access_key_id] = bystander  # the account knows this user too
    try:
        owner = signup(api)
        auth = SignedAs(Credentials(bystander.access_key_id, bystander.secret_access_key), cloud.config.stack.region)
        attempts = {
            "read a workspace": ("GET", admin_path(owner.workspace_id), None),
            "change its tier": ("PATCH", admin_path(owner.workspace_id), {"tier": "pro"}),
            "offboard it": ("DELETE", admin_path(owner.workspace_id), None),
            "list every workspace": ("GET", "/admin/workspaces", None),
            "read every workspace's cost": ("GET", "/admin/usage", None),
        }
        for what, (method, path, body) in attempts.items():
            response = api.request(method, path, json=body, auth=auth)
            assert_error(response, 403, "forbidden")
            assert response.headers["x-amzn-ErrorType"] == "ACCESS_DENIED", what
        workspace = stored(owner.workspace_id)
        assert (workspace.tier, bool(workspace.deleting)) == ("free", False), "nothing changed"
        assert owner.get("").status_code == 200

        # The operator the stack names is still the operator.
        assert api.get(admin_path(owner.workspace_id), auth=api.operator).status_code == 200
        assert cloud.config.stack.parameters["OperatorPrincipalArns"] == cloud.operator.arn
    finally:
        cloud.rest.signatures.credentials.pop(bystander.access_key_id, None)


def test_the_admin_function_itself_refuses_a_signer_not_named_an_operator(cloud):
    """The second lock: were the resource policy missing (or changed), the function still refuses a
    principal outside OPERATOR_PRINCIPAL_ARNS (template.yaml passes it OperatorPrincipalArns)."""
    from local.template import ROOT

    event = json.loads((ROOT / "events" / "admin" / "get_workspace.json").read_text())
    as_operator = cloud.runtime.invoke("AdminFunction", event)
    assert as_operator["statusCode"] == 404, as_operator  # accepted; the sample workspace does not exist
    event["requestContext"]["identity"]["userArn"] = "arn:aws:iam::123456789012:user/ci-deployer"
    refused = cloud.runtime.invoke("AdminFunction", event)
    assert refused["statusCode"] == 403 and json.loads(refused["body"])["error"]["code"] == "forbidden", refused


def test_a_signed_request_at_the_edge_of_the_allowed_skew_is_accepted(api, cloud):
    owner = signup(api)
    for minutes in (-14, 14):
        at = datetime.now(timezone.utc) + timedelta(minutes=minutes)
        response = api.get(admin_path(owner.workspace_id), auth=Signed(cloud, at=at))
        assert response.status_code == 200, response.text


# --------------------------------------------------------------------------- tier changes


def test_the_operator_reads_and_changes_a_tier_and_the_limits_follow(api, cloud):
    owner = signup(api)
    seen = api.get(admin_path(owner.workspace_id), auth=api.operator)
    assert seen.status_code == 200, seen.text
    assert seen.json()["tier"] == "free" and seen.json()["usage_plan"] == {"own": False, "id": None}
    assert seen.json()["this_month"]["price_usd"] == "0.000000"

    changed = set_tier(api, owner.workspace_id, "starter")
    assert changed["tier"] == "starter" and changed["limits"]["max_agents"] == 10

    mine = owner.get("").json()
    assert mine["tier"] == "starter"
    assert mine["limits"]["runs_per_day"] == 500 and mine["limits"]["budget_usd_per_month"] == "15"
    assert [p["name"] for p in plans_of_key(cloud, owner.workspace_id)] == ["agenthq-starter"]

    assert_error(api.patch(admin_path(owner.workspace_id), json={"tier": "platinum"}, auth=api.operator), 400)
    assert_error(api.patch(admin_path(owner.workspace_id), json={"tier": "pro", "limit_overrides": {"max_agents": 9}},
                           auth=api.operator), 400)
    assert_error(api.patch(admin_path(owner.workspace_id), json={}, auth=api.operator), 400)
    assert_error(api.get(admin_path("01NOSUCHWORKSPACE000000000"), auth=api.operator), 404, "not_found")
    assert owner.get("").json()["tier"] == "starter", "refused changes changed nothing"


def test_enterprise_overrides_get_a_usage_plan_of_their_own_that_the_gateway_enforces(api, cloud):
    owner = signup(api)
    overrides = {"max_agents": 200, "api_rps": 1000, "api_burst": 1000, "api_calls_per_day": 4,
                 "price_usd_per_month": "4800"}
    changed = set_tier(api, owner.workspace_id, "enterprise", limit_overrides=overrides)
    assert changed["limits"]["max_agents"] == 200 and changed["limits"]["price_usd_per_month"] == "4800"
    plan_id = changed["usage_plan"]["id"]
    assert changed["usage_plan"]["own"] is True and plan_id

    (plan,) = plans_of_key(cloud, owner.workspace_id)
    assert plan["id"] == plan_id and plan["name"] == f"agenthq-ws-{owner.workspace_id}"
    assert (plan["throttle"]["rateLimit"], plan["throttle"]["burstLimit"]) == (1000, 1000)
    assert int(plan["quota"]["limit"]) == 4 and plan["quota"]["period"] == "DAY"
    pro = cloud.client("apigateway").get_usage_plan(usagePlanId=cloud.config.stack.refs["ProUsagePlan"])
    assert plan["apiStages"] == pro["apiStages"]

    time.sleep(1.1)  # the gateway reads keys and plans afresh after 1 s, as API Gateway applies them after a moment
    assert owner.get("").json()["limits"]["api_calls_per_day"] == 4  # the new plan's first call of the day
    answers = [owner.get("/agents").status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429], answers
    assert_error(owner.get("/agents"), 429, "quota_exceeded")

    # The throttle too: 1 request per second, a burst of 2.
    set_tier(api, owner.workspace_id, "enterprise", limit_overrides={**overrides, "api_rps": 1, "api_burst": 2,
                                                                       "api_calls_per_day": 10_000})
    assert [p["id"] for p in plans_of_key(cloud, owner.workspace_id)] == [plan_id], "the same plan, updated"
    time.sleep(1.1)
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: owner.get("/agents").status_code, range(10)))
    assert statuses.count(429) >= 1 and statuses.count(200) >= 1, statuses

    # Back to a standard tier: the key returns to the tier's plan and the workspace's own plan is gone.
    back = set_tier(api, owner.workspace_id, "pro")
    assert back["usage_plan"] == {"own": False, "id": None} and back["limit_overrides"] == {}
    assert [p["name"] for p in plans_of_key(cloud, owner.workspace_id)] == ["agenthq-pro"]
    assert plan_id not in {p["id"] for p in cloud.client("apigateway").get_usage_plans()["items"]}
    time.sleep(1.1)
    assert owner.get("/agents").status_code == 200
    assert owner.get("").json()["limits"]["max_agents"] == 50


def served(owner) -> list[int]:
    """The workspace's answers to a few requests, with its access token and with its API key:
    each one goes through the gateway's usage plan of the workspace's key."""
    return [owner.get("/agents").status_code, owner.get("").status_code,
            owner.api.get(owner.path("/agents"), headers=owner.key_headers).status_code]


def test_tier_changes_up_down_and_back_keep_the_key_in_exactly_one_plan_and_every_request_served(api, cloud):
    """API Gateway keeps a key in one usage plan per stage (the local cloud holds moto to it): a
    change that attached before it detached left the key in no plan, and every request 403 (issue 18)."""
    owner = with_api_key(signup(api))
    own = {"api_rps": 50, "api_burst": 100, "api_calls_per_day": 10_000}
    for tier, overrides in (("starter", None), ("pro", None), ("starter", None), ("free", None),
                            ("enterprise", own), ("pro", None), ("enterprise", own), ("free", None)):
        changed = set_tier(api, owner.workspace_id, tier, **({"limit_overrides": overrides} if overrides else {}))
        held = plans_of_key(cloud, owner.workspace_id)
        expected = f"agenthq-ws-{owner.workspace_id}" if overrides else f"agenthq-{tier}"
        assert [p["name"] for p in held] == [expected], (tier, held)
        assert changed["usage_plan"]["own"] is bool(overrides)
        time.sleep(1.1)  # the gateway reads keys and plans afresh after 1 s
        assert served(owner) == [200, 200, 200], tier


class _DiesAfter:
    """An API Gateway client whose process dies (once) right after ``operation`` succeeded."""

    def __init__(self, client, operation: str) -> None:
        self.client, self.operation, self.died = client, operation, False

    def __getattr__(self, name: str):
        real = getattr(self.client, name)
        if name != self.operation or self.died:
            return real

        def call(**kwargs):
            real(**kwargs)
            self.died = True
            raise ConnectionAbortedError(f"died after {name}")
        return call


@pytest.mark.parametrize("retry_tier", ["starter", "pro"])
def test_a_tier_change_interrupted_between_its_two_gateway_calls_is_finished_by_a_retry(api, cloud, retry_tier):
    from agenthq.adapters.apigateway import ApiGatewayKeys
    from agenthq.admin.workspaces import TierChange, change_tier
    from agenthq.operators import Operator
    from agenthq.services import Services
    from agenthq.settings import get_settings

    owner = with_api_key(signup(api))
    settings = get_settings()
    dying = Services(settings, gateway_keys=ApiGatewayKeys(
        _DiesAfter(cloud.client("apigateway"), "delete_usage_plan_key"), settings.usage_plan_ids))
    operator = Operator(arn="arn:aws:iam::123456789012:user/ops", caller="AIDAOPS")
    with pytest.raises(ConnectionAbortedError):
        change_tier(dying, operator, owner.workspace_id, TierChange(tier="starter"))
    assert plans_of_key(cloud, owner.workspace_id) == [], "detached, and the process died before the attach"
    assert stored(owner.workspace_id).tier == "free", "nothing stored"
    time.sleep(1.1)
    assert_error(owner.get("/agents"), 403)  # API Gateway's INVALID_API_KEY: the key is in no plan

    # The operator retries (the same change, or another tier): the key ends in exactly one plan.
    set_tier(api, owner.workspace_id, retry_tier)
    assert [p["name"] for p in plans_of_key(cloud, owner.workspace_id)] == [f"agenthq-{retry_tier}"]
    time.sleep(1.1)
    assert served(owner) == [200, 200, 200]
    assert owner.get("").json()["tier"] == retry_tier


def test_enterprise_without_api_overrides_stays_on_the_pro_plan(api, cloud):
    owner = signup(api)
    changed = set_tier(api, owner.workspace_id, "enterprise", limit_overrides={"max_agents": 75})
    assert changed["usage_plan"]["own"] is False
    assert [p["name"] for p in plans_of_key(cloud, owner.workspace_id)] == ["agenthq-pro"]
    kept = api.patch(admin_path(owner.workspace_id), json={"tier": "enterprise"}, auth=api.operator)
    assert kept.json()["limit_overrides"] == {"max_agents": 75}, "overrides left out are kept"


def test_offboarding_removes_an_enterprise_workspaces_own_plan_and_its_directory_entry(api, cloud):
    owner = signup(api)
    plan_id = set_tier(api, owner.workspace_id, "enterprise", limit_overrides={"api_rps": 300})["usage_plan"]["id"]
    assert api.delete(owner.path(), headers=owner.headers).status_code == 202
    job = wait_for_offboarding(api, owner.workspace_id)
    assert plan_id not in {p["id"] for p in cloud.client("apigateway").get_usage_plans()["items"]}
    gone = api.get(admin_path(owner.workspace_id), auth=api.operator).json()
    assert gone == {"id": owner.workspace_id, "status": "offboarded", "offboarding": job}
    listed = _all_workspaces(api)
    assert owner.workspace_id not in {w["id"] for w in listed}


def test_the_operator_offboards_a_workspace_and_unknown_ones_are_404(api):
    owner = signup(api)
    started = api.delete(admin_path(owner.workspace_id), auth=api.operator)
    assert started.status_code == 202, started.text
    assert started.json()["offboarding"]["status"] == "running"
    assert wait_for_offboarding(api, owner.workspace_id)["status"] == "finished"
    assert_error(owner.get(), 401)
    for unknown in ("01JD0000000000000000000000", "not-an-id", "x" * 1100):
        assert_error(api.get(admin_path(unknown), auth=api.operator), 404)
        assert_error(api.delete(admin_path(unknown), auth=api.operator), 404)


# --------------------------------------------------------------------------- lists and usage


def _all_workspaces(api) -> list[dict]:
    items, cursor = [], None
    while True:
        page = api.get("/admin/workspaces", params={"limit": 100, **({"cursor": cursor} if cursor else {})},
                       auth=api.operator)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return items


def test_the_operator_lists_every_workspace_newest_first_with_cursors(api):
    first, second = signup(api, workspace_name="Older"), signup(api, workspace_name="Newer")
    page = api.get("/admin/workspaces", params={"limit": 1}, auth=api.operator).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    ids = [w["id"] for w in _all_workspaces(api)]
    assert ids.index(second.workspace_id) < ids.index(first.workspace_id)
    assert_error(api.get("/admin/workspaces", params={"cursor": "bm90LWEtY3Vyc29y"}, auth=api.operator), 400)


def test_the_usage_report_sums_the_month_counters_against_each_price(api):
    owner = signup(api)
    set_tier(api, owner.workspace_id, "starter")
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    get_services()
    for shard, micro in ((0, 1_250_000), (3, 500_001), (7, 3)):  # three of the write shards
        UsageCounter(*UsageCounter.key(owner.workspace_id, f"MONTH#{month}", shard), period=f"MONTH#{month}",
                     cost_micro_usd=micro, model_calls=1, runs=1, infra_micro_usd=micro // 1000).save()
    UsageCounter(*UsageCounter.key(owner.workspace_id, "MONTH#2001-01", 0), period="MONTH#2001-01",
                 cost_micro_usd=999_000_000).save()  # another month: not counted

    rows, cursor = [], None
    while True:
        report = api.get("/admin/usage", params={"period": "month", "limit": 100,
                                                 **({"cursor": cursor} if cursor else {})}, auth=api.operator)
        assert report.status_code == 200, report.text
        assert report.json()["month"] == month
        rows += report.json()["items"]
        cursor = report.json()["next_cursor"]
        if not cursor:
            break
    (row,) = [r for r in rows if r["workspace_id"] == owner.workspace_id]
    assert row["tier"] == "starter" and row["price_usd"] == "49.000000"
    assert row["model_cost_usd"] == "1.750004"
    assert row["infra_cost_usd"] == "0.001750"  # 1,250 + 500 + 0 µ$
    assert row["cost_usd"] == "1.751754" and row["margin_usd"] == "47.248246"
    assert row["usage"]["model_calls"] == 3 and row["usage"]["runs"] == 3
    # the limits the month is measured against (the console's "near a limit" list reads them)
    assert row["limits"]["tokens_per_month"] == 5_000_000 and row["limits"]["budget_usd_per_month"] == "15"
    one = api.get(admin_path(owner.workspace_id), auth=api.operator).json()["this_month"]
    assert one["model_cost_usd"] == "1.750004"
    assert_error(api.get("/admin/usage", params={"period": "day"}, auth=api.operator), 400)
    assert_error(api.get("/admin/usage", params={"month": "2026-13"}, auth=api.operator), 400)


@pytest.mark.parametrize("route", [r for r in rest_api(load_template()).routes if r.path.startswith("/admin/")],
                         ids=lambda r: f"{r.method} {r.path}")
def test_every_admin_route_is_aws_iam_and_unmetered(route):
    assert route.iam_auth and not route.authorized and not route.api_key_required
    assert route.function == "AdminFunction"


def test_the_operator_signer_works_with_the_plain_sigv4_auth(api, cloud):
    """The CLI's httpx auth, as the client of the fixture uses it, against the real front."""
    owner = signup(api)
    credentials = Credentials(cloud.operator.access_key_id, cloud.operator.secret_access_key)
    with httpx.Client(base_url=cloud.rest_url, auth=SigV4(credentials, cloud.config.stack.region)) as client:
        response = client.get(admin_path(owner.workspace_id), params={"unused": "a b&c"})
    assert response.status_code == 200, response.text
