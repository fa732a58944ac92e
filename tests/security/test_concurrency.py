"""Many clients at once: retries and races must not duplicate accounts or sessions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support import PASSWORD, client_for, signup, table_items, unique_email


def test_twenty_parallel_signups_with_one_email_make_one_user_and_one_workspace(cloud):
    email = unique_email("race")
    body = {"email": email, "password": PASSWORD, "workspace_name": "Race Inc"}

    def attempt(_: int):
        with client_for(cloud) as client:
            return client.post("/auth/signup", json=body)

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(attempt, range(20)))
    assert all(r.status_code in (201, 409) for r in responses), [(r.status_code, r.text) for r in responses]
    created = [r.json() for r in responses if r.status_code == 201]
    assert created, "at least one signup succeeds"
    assert len({c["user"]["id"] for c in created}) == 1
    assert len({c["workspace"]["id"] for c in created}) == 1
    users = table_items(cloud, type="User", email=email)
    assert len(users) == 1
    assert len(table_items(cloud, type="Workspace", created_by=users[0]["id"])) == 1
    assert len(table_items(cloud, type="Member", user_id=users[0]["id"])) == 1


def test_twenty_parallel_refreshes_of_one_token_yield_exactly_one_pair(cloud, api):
    owner = signup(api)

    def attempt(_: int):
        with client_for(cloud) as client:
            return client.post("/auth/refresh", json={"refresh_token": owner.refresh_token})

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(attempt, range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 19, statuses
    winner = next(r.json() for r in responses if r.status_code == 200)
    # the one new pair works (the losers were a race, not a theft: the family lives)
    assert api.get("/me", headers={"Authorization": f"Bearer {winner['access_token']}"}).status_code == 200
    assert api.post("/auth/refresh", json={"refresh_token": winner["refresh_token"]}).status_code == 200


def test_parallel_invites_of_one_user_make_one_membership(cloud, api):
    owner = signup(api)
    colleague = signup(api, tag="colleague")

    def attempt(_: int):
        with client_for(cloud) as client:
            return client.post(owner.path("/members"), headers=owner.headers,
                               json={"email": colleague.email, "role": "member"})

    with ThreadPoolExecutor(10) as pool:
        statuses = sorted(r.status_code for r in pool.map(attempt, range(10)))
    assert statuses.count(201) == 1 and statuses.count(409) + statuses.count(429) == 9, statuses
    assert len(table_items(cloud, type="Invitation", workspace_id=owner.workspace_id)) == 1
    login = api.post("/auth/login", json={"email": colleague.email, "password": PASSWORD,
                                          "workspace_id": owner.workspace_id})
    assert login.status_code == 200, login.text
    assert len([m for m in table_items(cloud, type="Member", workspace_id=owner.workspace_id)]) == 2
