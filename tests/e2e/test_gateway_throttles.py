"""The stage's per-method throttles (template.yaml's MethodSettings), applied by the local API Gateway:
signup at 10 requests a second with a burst of 20. Concurrent signups get 201 or 429, never a 5xx,
and every 201 is a working account."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from local.template import load_template, rest_api
from tests.support import PASSWORD, assert_error, client_for, unique_email


def _signup_throttle():
    spec = rest_api(load_template())
    route = next(r for r in spec.routes if (r.method, r.path) == ("POST", "/auth/signup"))
    return spec.throttle_of(route)


def test_fifty_concurrent_signups_get_201_or_429_never_a_5xx(cloud):
    throttle = _signup_throttle()
    assert (throttle.rate_limit, throttle.burst_limit) == (10, 20)
    cloud.rest.throttles.reset()  # a full bucket, as after a quiet moment
    emails = [unique_email("crowd") for _ in range(50)]
    start = threading.Barrier(50)

    def sign_up(email: str):
        with client_for(cloud) as client:
            start.wait()
            sent = time.monotonic()
            response = client.post("/auth/signup", json={"email": email, "password": PASSWORD,
                                                         "workspace_name": "Crowd Co"})
            return sent, response

    began = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(sign_up, emails))
    arrived_within = max(sent for sent, _ in results) - began
    statuses = [response.status_code for _, response in results]
    assert set(statuses) <= {201, 429}, statuses
    created = statuses.count(201)
    # the burst, plus what the bucket refilled while the requests were arriving
    assert throttle.burst_limit <= created <= throttle.burst_limit + throttle.rate_limit * arrived_within + 1, (
        created, arrived_within)
    for _, response in results:
        if response.status_code == 429:
            assert_error(response, 429, "rate_limited")
            assert response.headers["Retry-After"] == "1"
    # every 201 is a user who can sign in; every 429 created nothing (its address is still free)
    for email, (_, response) in zip(emails, results, strict=True):
        with client_for(cloud) as client:  # each from an address of its own: failed logins are throttled per IP
            login = client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == (200 if response.status_code == 201 else 401), (email, login.text)


def test_a_throttled_signup_goes_through_after_retry_after_and_other_methods_are_not_throttled(cloud, api):
    cloud.rest.throttles.reset()
    emails = [unique_email("retry") for _ in range(30)]

    def sign_up(email: str):
        with client_for(cloud) as client:
            return client.post("/auth/signup", json={"email": email, "password": PASSWORD,
                                                     "workspace_name": "Patient Co"})

    with ThreadPoolExecutor(30) as pool:
        first = list(pool.map(sign_up, emails))
    refused = [email for email, response in zip(emails, first, strict=True) if response.status_code == 429]
    assert refused, [r.status_code for r in first]
    # the signup bucket is empty; other methods have buckets of their own (the stage's default: 500/s)
    assert api.get("/health").status_code == 200
    assert_error(api.post("/auth/login", json={"email": unique_email("nobody"), "password": PASSWORD}), 401)
    # a client that waits what Retry-After says gets through
    time.sleep(float(next(r for r in first if r.status_code == 429).headers["Retry-After"]))
    for email in refused:
        retried = sign_up(email)
        assert retried.status_code == 201, retried.text
