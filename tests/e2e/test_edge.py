"""The edge over real HTTP: bad input gets the documented JSON error, never a 5xx."""

from __future__ import annotations

from tests.support import PASSWORD, assert_error, create_agent, events_of, launch, signup, unique_email, wait_for


def test_unknown_routes_and_methods_are_json_403s_as_on_api_gateway(api):
    for method, path in [("GET", "/nope"), ("POST", "/health"), ("DELETE", "/auth/login"),
                         ("GET", "/workspaces"), ("GET", "/workspaces/x/y/z")]:
        response = api.request(method, path)
        assert_error(response, 403, "forbidden")
        assert response.headers["x-amzn-ErrorType"] == "MISSING_AUTHENTICATION_TOKEN"
        assert response.headers["content-type"].startswith("application/json")
    outside_the_stage = api.get(api.base_url.join("/v2/health"))
    assert_error(outside_the_stage, 403, "forbidden")


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


# --------------------------------------------------------------------------- 5xx a user could trigger (regressions)


def test_events_after_the_last_seq_are_an_empty_page_however_large(api):
    owner = signup(api, tier="pro")
    agent = create_agent(owner, "counter", "sre")
    run = wait_for(owner, launch(owner, agent["id"], "Say hi.").json()["id"])
    for after in (run_seq(owner, run["id"]), 9_999_999_999, 99_999_999_998, 10**30):
        response = owner.get(f"/runs/{run['id']}/events", params={"after": after})
        assert response.status_code == 200, (after, response.text)
        assert response.json() == {"items": [], "next_after": None}


def run_seq(owner, run_id):
    return events_of(owner, run_id)[-1]["seq"]


LONG_IDS = ["x" * 1100, "é" * 600, "Z" * 2100]  # past DynamoDB's 1,024-byte sort key (and 2,048-byte partition key)


def test_path_ids_longer_than_a_key_can_be_are_404_on_every_route(api):
    owner = signup(api, tier="pro")
    agent = create_agent(owner, "real", "sre")
    for long_id in LONG_IDS:
        for method, suffix, body in [
            ("GET", f"/agents/{long_id}", None), ("PATCH", f"/agents/{long_id}", {"max_steps": 3}),
            ("DELETE", f"/agents/{long_id}", None), ("POST", f"/agents/{long_id}/runs", {"input": "hi"}),
            ("GET", f"/runs/{long_id}", None), ("GET", f"/runs/{long_id}/events", None),
            ("POST", f"/runs/{long_id}/cancel", None), ("POST", f"/runs/{long_id}/resume", None),
            ("PATCH", f"/members/{long_id}", {"role": "viewer"}), ("DELETE", f"/members/{long_id}", None),
            ("DELETE", f"/api-keys/{long_id}", None),
        ]:
            response = api.request(method, owner.path(suffix), headers=owner.headers, json=body)
            assert_error(response, 404, "not_found")
        for method, body in [("GET", None), ("PATCH", {"tier": "pro"})]:
            response = api.request(method, f"/admin/workspaces/{long_id}", json=body, auth=api.operator)
            assert_error(response, 404, "not_found")
        assert_error(api.get(f"/workspaces/{long_id}", headers=owner.headers), 404, "not_found")
    assert owner.get(f"/agents/{agent['id']}").status_code == 200


def test_an_agent_id_filter_that_is_not_an_id_is_a_400_on_runs_and_messages(api):
    owner = signup(api, tier="pro")
    for suffix in ("/runs", "/messages"):
        for bad in ("x" * 2000, "not-an-id", "01ARZ3NDEKTSV4RRFFQ69G5FA\x00"):
            error = assert_error(owner.get(suffix, params={"agent_id": bad}), 400, "invalid_request")
            assert error["details"][0]["field"] == "agent_id"
    assert_error(owner.get("/runs", params={"status": "sleeping"}), 400, "invalid_request")


BAD_NAMES = ["   ", "\t\n", "Acme\x00Corp", "line\nbreak", "zero\u200bwidth"]


def test_blank_or_control_character_names_are_400_and_store_nothing(api):
    owner = signup(api, tier="pro")
    for name in BAD_NAMES:
        response = api.post("/auth/signup", json={"email": unique_email(), "password": PASSWORD,
                                                   "workspace_name": name})
        assert_error(response, 400, "invalid_request")
        assert_error(api.patch(owner.path(), headers=owner.headers, json={"name": name}), 400, "invalid_request")
        assert_error(owner.post("/api-keys", json={"name": name, "scopes": ["runs:read"]}), 400, "invalid_request")
        assert_error(owner.post("/agents", json={"name": name, "personality": "sre"}), 400, "invalid_request")
    assert owner.get("").json()["name"] == "Acme Robotics"
    assert owner.get("/api-keys").json()["items"] == []
    assert owner.get("/agents").json()["items"] == []
    renamed = api.patch(owner.path(), headers=owner.headers, json={"name": "  Acme Rockets  "})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Acme Rockets"


def test_methods_no_route_has_get_the_error_body_as_on_api_gateway(api):
    # API Gateway (REST) answers a method a resource does not define with MISSING_AUTHENTICATION_TOKEN,
    # as for an unknown route: our 403 gateway response, whatever the method.
    for method in ("TRACE", "PUT", "PROPFIND", "BREW"):
        for path in ("/health", "/workspaces/x", "/nope"):
            response = api.request(method, path)
            assert_error(response, 403, "forbidden")
            assert response.headers["content-type"].startswith("application/json")
