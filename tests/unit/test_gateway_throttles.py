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


def test_the_template_throttles_signup_login_and_refresh_and_every_other_method_by_the_stage_default():
    spec = rest_api(load_template())
    by_path = {(r.method, r.path): spec.throttle_of(r) for r in spec.routes}
    assert (by_path[("POST", "/auth/signup")].rate_limit, by_path[("POST", "/auth/signup")].burst_limit) == (10, 20)
    assert by_path[("POST", "/auth/login")].rate_limit == by_path[("POST", "/auth/refresh")].rate_limit == 50
    others = {t for key, t in by_path.items() if key[1] not in ("/auth/signup", "/auth/login", "/auth/refresh")}
    assert others == {MethodThrottle("/*", "*", 500.0, 1000)}


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
