"""The edge over real HTTP: bad input gets the documented JSON error, never a 5xx."""

from __future__ import annotations

from tests.support import PASSWORD, assert_error, signup, unique_email


def test_unknown_routes_and_methods_are_json_404s(api):
    for method, path in [("GET", "/nope"), ("POST", "/health"), ("DELETE", "/auth/login"),
                         ("GET", "/workspaces"), ("GET", "/workspaces/x/y/z")]:
        response = api.request(method, path)
        assert_error(response, 404, "not_found")
        assert response.headers["content-type"].startswith("application/json")
    outside_the_stage = api.get(api.base_url.join("/v2/health"))
    assert_error(outside_the_stage, 404, "not_found")


def test_malformed_json_is_a_400_and_creates_nothing(api):
    email = unique_email()
    response = api.post("/auth/signup", content=b'{"email": "' + email.encode() + b'", "password": ',
                        headers={"Content-Type": "application/json"})
    error = assert_error(response, 400, "invalid_request")
    assert error["details"] == [{"field": "body", "message": "invalid JSON"}]
    assert api.post("/auth/login", json={"email": email, "password": PASSWORD}).status_code == 401
    for body in (b"[]", b'"text"', b"null", b"{}"):
        assert_error(api.post("/auth/signup", content=body, headers={"Content-Type": "application/json"}), 400)


def test_bodies_over_the_limits_are_413(api):
    owner = signup(api, tier="pro")
    big = {"name": "x", "personality": "sre", "system_prompt": "y" * (300 * 1024)}
    assert_error(owner.post("/agents", json=big), 413, "payload_too_large")  # the API's 256 KiB
    huge = b"{" + b" " * (11 * 1024 * 1024) + b"}"
    response = api.post(owner.path("/agents"), content=huge,
                        headers={**owner.headers, "Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")  # API Gateway's 10 MB
    assert owner.get("/agents").json()["items"] == []


def test_wrong_types_in_query_and_path_are_400_or_404(api):
    owner = signup(api, tier="pro")
    assert_error(owner.get("/runs", params={"limit": "many"}), 400, "invalid_request")
    assert_error(owner.get("/runs/not-a-run/events", params={"after": "-1"}), 400, "invalid_request")
    assert_error(owner.get("/agents/%00%01"), 404, "not_found")
    assert_error(owner.get("/runs/" + "x" * 300), 404, "not_found")
