"""A login that has waited too long to start is shed with a 429 and Retry-After instead of a hash
that would end at the auth function's timeout as a 502 (issue 17, done-when: `make load` at 100
users). The wait is made with the runtime's own fault injection (a delay inside the invocation,
which counts against its timeout, as waiting for an execution environment does)."""

from __future__ import annotations

from local.lambda_runtime import InvocationFault
from tests.support import PASSWORD, assert_error, signup


def test_a_login_left_too_little_time_is_shed_and_costs_nothing(cloud, api):
    user = signup(api, tag="shed")
    body = {"email": user.email, "password": "not-the-password-at-all", "workspace_id": user.workspace_id}
    # 10.5 s of timeout, 1 s spent before the handler: under the 10 s a login needs left
    delayed = InvocationFault(function="AuthFunction", when="none", delay_seconds=1.0, times=6,
                              match=lambda event: user.email in str(event.get("body")))
    cloud.runtime.faults.append(delayed)
    try:
        with cloud.runtime.timeout_changed("AuthFunction", 10.5):
            for _ in range(6):
                refused = api.post("/auth/login", json=body)
                assert_error(refused, 429, "rate_limited")
                assert refused.headers["Retry-After"] == "5"
    finally:
        cloud.runtime.faults.remove(delayed)
    assert delayed.fired == 6
    # Nothing was checked or counted: six wrong passwords shed are not six failures (after five, an
    # address must wait before its next attempt); with its whole time, the right password logs in at once.
    login = api.post("/auth/login", json={**body, "password": PASSWORD})
    assert login.status_code == 200, login.text
