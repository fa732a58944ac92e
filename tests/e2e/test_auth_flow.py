"""Accounts, sessions and API keys over real HTTP on the local cloud."""

from __future__ import annotations

import json

from tests.support import (
    PASSWORD,
    assert_error,
    bearer,
    signup,
    unique_email,
    wait_for_offboarding,
    with_api_key,
    workspace_leftovers,
)


def test_signup_login_key_revoke_refresh_and_reuse_detection(api):
    # signup: user, workspace (tier free), owner membership, tokens
    owner = signup(api, workspace_name="Acme Robotics")
    me = api.get("/me", headers=owner.headers)
    assert me.status_code == 200, me.text
    assert me.json()["user"]["email"] == owner.email
    assert me.json()["memberships"] == [
        {"workspace_id": owner.workspace_id, "workspace_name": "Acme Robotics", "role": "owner",
         "joined_at": me.json()["memberships"][0]["joined_at"]}
    ]
    workspace = owner.get()
    assert workspace.status_code == 200 and workspace.json()["tier"] == "free"
    assert workspace.json()["limits"]["max_agents"] == 3

    # login
    login = api.post("/auth/login", json={"email": owner.email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    assert tokens["workspace_id"] == owner.workspace_id
    owner.access_token = tokens["access_token"]

    # an API key: the secret is shown once, listed with its prefix only
    with_api_key(owner, scopes=("workspace:read", "runs:read"))
    assert owner.api_key.startswith("ahq_")
    listed = owner.get("/api-keys").json()["items"]
    assert [k["id"] for k in listed] == [owner.api_key_id]
    assert "key" not in listed[0] and owner.api_key.startswith(listed[0]["prefix"])
    assert owner.api_key not in json.dumps(listed)

    # call with the key: acts as the workspace
    by_key = api.get(owner.path(), headers=owner.key_headers)
    assert by_key.status_code == 200 and by_key.json()["id"] == owner.workspace_id
    # ... within its scopes only: managing keys is not for keys
    assert_error(api.get(owner.path("/api-keys"), headers=owner.key_headers), 403, "forbidden")
    assert owner.get("/api-keys").json()["items"][0]["last_used_at"] is not None

    # revoke: the next call fails at once
    assert api.delete(owner.path(f"/api-keys/{owner.api_key_id}"), headers=owner.headers).status_code == 204
    assert_error(api.get(owner.path(), headers=owner.key_headers), 401, "unauthorized")
    assert owner.get("/api-keys").json()["items"][0]["revoked_at"] is not None
    # revoking again is harmless
    assert api.delete(owner.path(f"/api-keys/{owner.api_key_id}"), headers=owner.headers).status_code == 204

    # refresh rotation: a new pair; the old refresh token is dead
    first = tokens["refresh_token"]
    rotated = api.post("/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    assert api.get("/me", headers=bearer(rotated.json()["access_token"])).status_code == 200

    # reuse of the rotated token (after the race grace period) kills the family
    _age_refresh_token(first)
    assert_error(api.post("/auth/refresh", json={"refresh_token": first}), 401, "unauthorized")
    assert_error(api.post("/auth/refresh", json={"refresh_token": second}), 401, "unauthorized")
    assert_error(api.get("/me", headers=bearer(rotated.json()["access_token"])), 401, "unauthorized")

    # the signup's session is another family: unaffected
    assert api.post("/auth/refresh", json={"refresh_token": owner.refresh_token}).status_code == 200


def _age_refresh_token(token: str) -> None:
    """Move a rotated token's use time back past the grace period for racing retries."""
    from datetime import timedelta

    from agenthq.security.secrets import secret_hash
    from agenthq.store import global_scope
    from agenthq.store.items import RefreshToken

    with global_scope():
        item = RefreshToken.get(*RefreshToken.key(secret_hash(token)), consistent_read=True)
        item.update(actions=[RefreshToken.used_at.set(item.used_at - timedelta(minutes=5))])


def test_logout_ends_the_session_at_once(api):
    owner = signup(api)
    assert api.get("/me", headers=owner.headers).status_code == 200
    assert api.post("/auth/logout", headers=owner.headers).status_code == 204
    assert_error(api.get("/me", headers=owner.headers), 401, "unauthorized")
    assert_error(api.post("/auth/refresh", json={"refresh_token": owner.refresh_token}), 401)


def test_signup_rules(api):
    email = unique_email()
    weak = api.post("/auth/signup", json={"email": email, "password": "password1234", "workspace_name": "W"})
    assert assert_error(weak, 400, "invalid_request")["details"][0]["field"] == "password"
    short = api.post("/auth/signup", json={"email": email, "password": "Sh0rt!", "workspace_name": "W"})
    assert_error(short, 400, "invalid_request")
    bad_email = api.post("/auth/signup", json={"email": "not-an-email", "password": PASSWORD, "workspace_name": "W"})
    assert assert_error(bad_email, 400)["details"][0]["field"] == "email"
    # nothing was created by the refusals
    assert api.post("/auth/login", json={"email": email, "password": "password1234"}).status_code == 401

    first = api.post("/auth/signup", json={"email": email, "password": PASSWORD, "workspace_name": "W1"})
    assert first.status_code == 201
    # a network retry of the same signup: same user and workspace, no second workspace
    retry = api.post("/auth/signup", json={"email": email.upper(), "password": PASSWORD, "workspace_name": "W1"})
    assert retry.status_code == 201
    assert retry.json()["workspace"]["id"] == first.json()["workspace"]["id"]
    assert retry.json()["user"]["id"] == first.json()["user"]["id"]
    # the same e-mail for a different signup is a conflict
    other = api.post("/auth/signup", json={"email": email, "password": PASSWORD, "workspace_name": "W2"})
    assert_error(other, 409, "conflict")
    wrong_password = api.post("/auth/signup", json={"email": email, "password": PASSWORD + "x", "workspace_name": "W1"})
    assert_error(wrong_password, 409, "conflict")
    me = api.get("/me", headers=bearer(first.json()["access_token"])).json()
    assert len(me["memberships"]) == 1


def test_login_never_says_whether_the_email_exists_and_locks_out(api):
    owner = signup(api)
    ghost = unique_email("ghost")
    unknown = api.post("/auth/login", json={"email": ghost, "password": PASSWORD})
    wrong = api.post("/auth/login", json={"email": owner.email, "password": PASSWORD + "!"})
    assert assert_error(unknown, 401)["message"] == assert_error(wrong, 401)["message"]

    statuses = [api.post("/auth/login", json={"email": owner.email, "password": "wrong-" + PASSWORD}).status_code
                for _ in range(8)]
    assert statuses[:4] == [401] * 4 and statuses[4:] == [429] * 4, statuses  # 5 free failures, then waits
    locked = api.post("/auth/login", json={"email": owner.email, "password": PASSWORD})
    assert_error(locked, 429, "rate_limited")  # even the right password must wait
    assert int(locked.headers["Retry-After"]) >= 1
    # an unknown address is throttled exactly the same way: no hint that it is unknown
    ghost_statuses = [api.post("/auth/login", json={"email": ghost, "password": "wrong-" + PASSWORD}).status_code
                      for _ in range(8)]
    assert ghost_statuses == statuses


def test_many_failures_from_one_address_are_throttled(cloud):
    from tests.support import client_for

    with client_for(cloud) as attacker:
        statuses = [attacker.post("/auth/login", json={"email": unique_email("victim"), "password": PASSWORD}
                                  ).status_code for _ in range(24)]
    assert statuses[:20] == [401] * 20 and 429 in statuses[20:], statuses
    with client_for(cloud) as someone_else:  # another address is not affected
        assert someone_else.post("/auth/login", json={"email": unique_email(), "password": PASSWORD}
                                 ).status_code == 401


def test_jwks_publishes_the_verification_keys(api):
    keys = api.get("/auth/jwks")
    assert keys.status_code == 200
    (key,) = keys.json()["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "EdDSA" and key["kid"]
    assert "d" not in key  # never the private half


def test_members_and_roles(api):
    owner = signup(api, tier="pro")
    colleague = signup(api, tag="colleague", workspace_name="Colleague's own")
    # invite by e-mail (the same answer with or without an account: tests/e2e/test_invitations.py)
    added = owner.post("/members", json={"email": colleague.email, "role": "viewer"})
    assert added.status_code == 201, added.text
    assert_error(owner.post("/members", json={"email": colleague.email, "role": "viewer"}), 409)
    assert owner.post("/members", json={"email": unique_email("nobody"), "role": "viewer"}).status_code == 201

    # the colleague logs into the shared workspace: the invitation becomes the membership
    login = api.post("/auth/login", json={"email": colleague.email, "password": PASSWORD,
                                          "workspace_id": owner.workspace_id})
    assert login.status_code == 200
    roles = {m["email"]: m["role"] for m in owner.get("/members").json()["items"]}
    assert roles == {owner.email: "owner", colleague.email: "viewer"}
    as_viewer = bearer(login.json()["access_token"])
    assert api.get(owner.path(), headers=as_viewer).status_code == 200
    assert_error(api.post(owner.path("/api-keys"), headers=as_viewer, json={"name": "x", "scopes": ["runs:read"]}),
                 403, "forbidden")
    assert_error(api.patch(owner.path(), headers=as_viewer, json={"name": "Mine now"}), 403)

    # promote to admin: may manage keys, may not touch the owner or make owners
    promoted = api.patch(owner.path(f"/members/{colleague.user_id}"), headers=owner.headers, json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    assert api.post(owner.path("/api-keys"), headers=as_viewer, json={"name": "x", "scopes": ["runs:read"]}
                    ).status_code == 201
    assert_error(api.patch(owner.path(f"/members/{owner.user_id}"), headers=as_viewer, json={"role": "member"}), 403)
    assert_error(api.patch(owner.path(f"/members/{colleague.user_id}"), headers=as_viewer, json={"role": "owner"}),
                 403)
    # tier is the owner's
    assert_error(api.patch(owner.path(), headers=as_viewer, json={"tier": "pro"}), 403)

    # the last owner cannot leave or be demoted
    assert_error(api.delete(owner.path(f"/members/{owner.user_id}"), headers=owner.headers), 409, "conflict")
    assert_error(api.patch(owner.path(f"/members/{owner.user_id}"), headers=owner.headers, json={"role": "admin"}),
                 409)

    # removal ends access at once
    assert api.delete(owner.path(f"/members/{colleague.user_id}"), headers=owner.headers).status_code == 204
    assert_error(api.get(owner.path(), headers=as_viewer), 401)
    assert {m["role"] for m in owner.get("/members").json()["items"]} == {"owner"}


def test_the_owner_sees_the_tier_but_cannot_change_it(api):
    owner = signup(api)
    before = owner.get("").json()
    assert before["tier"] == "free" and before["limits"]["price_usd_per_month"] == "0"
    for body in ({"tier": "enterprise"}, {"limit_overrides": {"max_agents": 1000}}, {"tier": None},
                 {"name": "Renamed", "tier": "pro"}, {"tier": "platinum"}):
        error = assert_error(api.patch(owner.path(), headers=owner.headers, json=body), 403, "forbidden")
        assert "operator" in error["message"], error
    assert owner.get("").json() == before, "a refused tier change changed nothing, not even the name"
    renamed = api.patch(owner.path(), headers=owner.headers, json={"name": "Renamed"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
    assert renamed.json()["tier"] == "free"


def _gateway_key_id(workspace_id: str) -> str:
    from agenthq.store import tenant_scope
    from agenthq.store.items import Workspace

    with tenant_scope(workspace_id):
        return Workspace.get(*Workspace.key(workspace_id), consistent_read=True).gateway_key_id


def test_lists_paginate_with_opaque_cursors(api):
    owner = signup(api, tier="pro")
    names = [f"key-{i}" for i in range(5)]
    for name in names:
        assert owner.post("/api-keys", json={"name": name, "scopes": ["runs:read"]}).status_code == 201
    seen, cursor = [], None
    while True:
        page = owner.get("/api-keys", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += [k["name"] for k in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(names)
    other = signup(api)
    first = owner.get("/api-keys", params={"limit": 2}).json()["next_cursor"]
    # another workspace's cursor is not a way in
    assert_error(other.get("/api-keys", params={"cursor": first}), 400, "invalid_request")
    assert_error(owner.get("/api-keys", params={"limit": 1000}), 400, "invalid_request")


def test_the_free_plan_is_throttled_at_the_gateway(api, cloud):
    from concurrent.futures import ThreadPoolExecutor

    from tests.support import client_for

    owner = signup(api)  # free: 5 requests/s, burst 10

    def call(_):
        with client_for(cloud) as client:
            return client.get(owner.path(), headers=owner.headers)

    with ThreadPoolExecutor(20) as pool:  # 30 requests at once: far more than the burst
        responses = list(pool.map(call, range(30)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 429} and statuses.count(200) >= 10, statuses
    throttled = next(r for r in responses if r.status_code == 429)
    assert_error(throttled, 429, "rate_limited")
    assert throttled.headers["Retry-After"]


def test_offboarding_deletes_every_item_of_the_workspace(api, cloud):
    owner = with_api_key(signup(api, tier="pro"))
    colleague = signup(api, tag="colleague")
    assert owner.post("/members", json={"email": colleague.email, "role": "admin"}).status_code == 201
    gateway_key = _gateway_key_id(owner.workspace_id)

    # only the owner may delete
    login = api.post("/auth/login", json={"email": colleague.email, "password": PASSWORD,
                                          "workspace_id": owner.workspace_id}).json()
    assert_error(api.delete(owner.path(), headers=bearer(login["access_token"])), 403)

    started = api.delete(owner.path(), headers=owner.headers)
    assert started.status_code == 202, started.text
    assert started.json()["offboarding"]["status"] == "running"
    job = wait_for_offboarding(api, owner.workspace_id)
    assert job["items_deleted"] >= 8 and job["finished_at"] >= job["started_at"]

    assert workspace_leftovers(cloud, owner.workspace_id) == []
    # access is gone: the owner's token, the colleague's, the API key; the gateway key too
    assert_error(owner.get(), 401)
    assert_error(api.get(owner.path(), headers=bearer(login["access_token"])), 401)
    assert_error(api.get(owner.path(), headers=owner.key_headers), 401)
    assert_error(api.post("/auth/refresh", json={"refresh_token": owner.refresh_token}), 401)
    assert gateway_key not in {k["id"] for k in cloud.client("apigateway").get_api_keys()["items"]}
    # the people remain, with their other workspaces
    me = api.post("/auth/login", json={"email": colleague.email, "password": PASSWORD})
    assert me.status_code == 200 and me.json()["workspace_id"] == colleague.workspace_id
