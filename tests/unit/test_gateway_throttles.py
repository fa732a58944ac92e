"""The stage's method throttles as the local API Gateway reads and applies them."""

from __future__ import annotations

import pytest

from local.apigateway import MethodThrottles
from local.template import MethodThrottle, RestApiSpec, Route, load_template, method_throttles, rest_api

SIGNUP = Route(function="AuthFunction", method="POST", path="/auth/signup", authorized=False, api_key_required=False)
HEALTH = Route(function="HealthFunction", method="GET", path="/health", authorized=False, api_key_required=False)


def test_resource_paths_are_read_encoded_as_api_gateway_requires():
    throttles = method_throttles([
        {"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": 500, "ThrottlingBurstLimit": 1000},
        {"ResourcePath": "/~1auth~1signup", "HttpMethod": "POST", "ThrottlingRateLimit": 10,
         "ThrottlingBurstLimit": 20},
        {"ResourcePath": "/*", "HttpMethod": "*", "MetricsEnabled": True},  # no throttle in it
    ])
    assert throttles == (MethodThrottle("/*", "*", 500.0, 1000), MethodThrottle("/auth/signup", "POST", 10.0, 20))


def test_an_unencoded_resource_path_is_refused_as_cloudformation_refuses_it():
    with pytest.raises(ValueError, match="~1"):
        method_throttles([{"ResourcePath": "/auth/signup", "HttpMethod": "POST", "ThrottlingRateLimit": 10}])


def test_the_template_throttles_signup_and_login_and_every_other_method_by_the_stage_default():
    """A method's bucket is shared by every caller: refresh has the stage's (one source at 60 a second must
    not empty it for others; each caller is held in code and by WAF), login a bound on argon2's CPU."""
    spec = rest_api(load_template())
    by_path = {(r.method, r.path): spec.throttle_of(r) for r in spec.routes}
    assert (by_path[("POST", "/auth/signup")].rate_limit, by_path[("POST", "/auth/signup")].burst_limit) == (10, 20)
    assert (by_path[("POST", "/auth/login")].rate_limit, by_path[("POST", "/auth/login")].burst_limit) == (100, 200)
    others = {t for key, t in by_path.items() if key[1] not in ("/auth/signup", "/auth/login")}
    assert others == {MethodThrottle("/*", "*", 500.0, 1000)}


def test_waf_blocks_a_flooding_address_in_front_of_the_stage():
    """AWS WAF's rate-based rules count per source address before the stage's shared buckets do (the local
    cloud has no WAF: the code's per-source rate stands in, tests/e2e/test_auth_per_caller.py)."""
    template = load_template()
    resources, parameters = template["Resources"], template["Parameters"]
    acl = resources["WebAcl"]["Properties"]
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in acl["Rules"]}
    auth = rules["auth-per-source"]["Statement"]["RateBasedStatement"]
    assert auth["AggregateKeyType"] == "IP" and auth["Limit"] == {"Ref": "WafAuthRequestsPerMinute"}
    assert auth["ScopeDownStatement"]["ByteMatchStatement"]["SearchString"] == "/auth/"
    assert rules["api-per-source"]["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    for name in ("auth-per-source", "api-per-source"):
        response = rules[name]["Action"]["Block"]["CustomResponse"]
        assert response["ResponseCode"] == 429 and response["CustomResponseBodyKey"] == "rate_limited"
    assert '"code": "rate_limited"' in acl["CustomResponseBodies"]["rate_limited"]["Content"]
    assert parameters["WafAuthRequestsPerMinute"]["Default"] == 300
    association = resources["WebAclAssociation"]["Properties"]
    assert association["WebACLArn"] == {"Fn::GetAtt": ["WebAcl", "Arn"]}
    assert "/restapis/${RestApi}/stages/${RestApi.Stage}" in association["ResourceArn"]["Fn::Sub"]
    logging = resources["WebAclLogging"]["Properties"]
    assert {f["SingleHeader"]["Name"] for f in logging["RedactedFields"]} == {"authorization", "x-api-key"}


def test_a_method_gets_its_burst_then_its_rate_and_methods_do_not_share_a_bucket():
    now = [0.0]
    spec = RestApiSpec("Api", "v1", (SIGNUP, HEALTH), None, {},
                       method_throttles=(MethodThrottle("/*", "*", 500, 1000), MethodThrottle("/auth/signup", "POST",
                                                                                               10, 20)))
    throttles = MethodThrottles(spec, clock=lambda: now[0])
    assert [throttles.admit(SIGNUP) for _ in range(21)] == [True] * 20 + [False]
    assert throttles.admit(HEALTH)  # its own bucket
    now[0] += 0.1  # one token back at 10 a second
    assert [throttles.admit(SIGNUP) for _ in range(2)] == [True, False]
    now[0] += 60  # never more than the burst
    assert sum(throttles.admit(SIGNUP) for _ in range(30)) == 20
