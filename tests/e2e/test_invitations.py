"""Adding a member is an invitation (issue 17, hole 10): the answer is the same whether or not
the address has an account, the member list does not change until the invitee logs in naming
the workspace (that login makes the membership), and an invitation can be withdrawn."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support import PASSWORD, assert_error, client_for, signup, table_items, unique_email


def shown(response) -> dict:
    """What an invitation's answer says, less what differs by address or by moment."""
    body = dict(response.json())
    return {k: v for k, v in body.items() if k not in ("email", "invited_at", "expires_at")}


def login(api, email: str, workspace_id: str):
    return api.post("/auth/login", json={"email": email, "password": PASSWORD, "workspace_id": workspace_id})


def members(owner) -> dict[str, str]:
    return {m["email"]: m["role"] for m in owner.get("/members").json()["items"]}


def test_inviting_answers_the_same_with_or_without_an_account(api):
    """On main an address without an account was a 404 ("they must sign up first"), one with an account
    a 201 with its user id: which addresses have accounts was one request away."""
    owner = signup(api, tier="pro")
    known = signup(api, tag="known", workspace_name="Known's own")
    unknown = unique_email("unknown")
    answers = [owner.post("/members", json={"email": email, "role": "member"}) for email in (known.email, unknown)]
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert shown(answers[0]) == shown(answers[1]) == {"role": "member", "status": "invited"}
    assert set(answers[0].json()) == set(answers[1].json())
    assert [a.json()["email"] for a in answers] == [known.email, unknown]
    assert members(owner) == {owner.email: "owner"}  # the list does not tell them apart either

    # a second invitation of either is refused alike
    for email in (known.email, unknown):
        assert_error(owner.post("/members", json={"email": email, "role": "viewer"}), 409, "conflict")


def test_the_invitee_becomes_a_member_by_logging_in_to_the_workspace(api):
    owner = signup(api, tier="pro")
    later = unique_email("later")
    assert owner.post("/members", json={"email": later, "role": "viewer"}).status_code == 201
    newcomer = api.post("/auth/signup", json={"email": later, "password": PASSWORD, "workspace_name": "Own"})
    assert newcomer.status_code == 201, newcomer.text
    assert members(owner) == {owner.email: "owner"}

    joined = login(api, later, owner.workspace_id)
    assert joined.status_code == 200, joined.text
    assert joined.json()["workspace_id"] == owner.workspace_id
    assert members(owner) == {owner.email: "owner", later: "viewer"}
    assert login(api, later, owner.workspace_id).status_code == 200  # again: the membership, not the invitation
    me = api.get("/me", headers={"Authorization": f"Bearer {joined.json()['access_token']}"}).json()
    assert {(m["workspace_id"], m["role"]) for m in me["memberships"]} >= {(owner.workspace_id, "viewer")}
    assert_error(owner.post("/members", json={"email": later, "role": "viewer"}), 409, "conflict")  # a member now


def test_a_withdrawn_invitation_lets_nobody_in(api):
    owner = signup(api, tier="pro")
    invitee = signup(api, tag="withdrawn", workspace_name="Own")
    assert owner.post("/members", json={"email": invitee.email, "role": "admin"}).status_code == 201
    assert api.delete(owner.path(f"/members/{invitee.email}"), headers=owner.headers).status_code == 204
    assert_error(login(api, invitee.email, owner.workspace_id), 403, "forbidden")
    assert_error(api.delete(owner.path(f"/members/{invitee.email}"), headers=owner.headers), 404, "not_found")
    assert members(owner) == {owner.email: "owner"}


def test_parallel_logins_accept_an_invitation_once(cloud, api):
    owner = signup(api, tier="pro")
    invitee = signup(api, tag="eager", workspace_name="Own")
    assert owner.post("/members", json={"email": invitee.email, "role": "member"}).status_code == 201

    def attempt(_: int) -> int:
        with client_for(cloud) as client:
            return login(client, invitee.email, owner.workspace_id).status_code

    with ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(attempt, range(5)))
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 429}, statuses
    memberships = table_items(cloud, type="Member", workspace_id=owner.workspace_id, user_id=invitee.user_id)
    assert [m["role"] for m in memberships] == ["member"]
    assert table_items(cloud, type="Invitation", workspace_id=owner.workspace_id) == []


def invitations(owner, **params) -> dict[str, str]:
    """The workspace's pending invitations, every page of them: e-mail address -> role."""
    found: dict[str, str] = {}
    params = {"limit": 100, **params}
    while True:
        page = owner.get("/invitations", params=params)
        assert page.status_code == 200, page.text
        found.update({i["email"]: i["role"] for i in page.json()["items"]})
        if not page.json().get("next_cursor"):
            return found
        params["cursor"] = page.json()["next_cursor"]


def test_pending_invitations_are_listed_until_accepted_withdrawn_or_lapsed(cloud, api):
    owner = signup(api, tier="pro")
    accepting, withdrawn, lapsing = (unique_email(tag) for tag in ("accepting", "withdrawn", "lapsing"))
    for email, role in ((accepting, "viewer"), (withdrawn, "member"), (lapsing, "admin")):
        assert owner.post("/members", json={"email": email, "role": role}).status_code == 201
    assert invitations(owner, limit=1) == {accepting: "viewer", withdrawn: "member", lapsing: "admin"}  # 3 pages
    [one] = owner.get("/invitations", params={"limit": 1}).json()["items"]
    assert one["status"] == "invited" and one["expires_at"] > one["invited_at"]

    # accepted: the invitee signs up and logs in naming the workspace — a member now, not an invitation
    assert api.post("/auth/signup", json={"email": accepting, "password": PASSWORD,
                                          "workspace_name": "Own"}).status_code == 201
    joined = login(api, accepting, owner.workspace_id)
    assert joined.status_code == 200, joined.text
    # withdrawn
    assert api.delete(owner.path(f"/members/{withdrawn}"), headers=owner.headers).status_code == 204
    # lapsed: its 7 days are over, DynamoDB's TTL has not swept it yet (it deletes lazily)
    import boto3

    table = boto3.resource("dynamodb", region_name=cloud.config.stack.region).Table(cloud.config.stack.table_name)
    table.update_item(Key={"pk": f"WS#{owner.workspace_id}", "sk": f"INVITE#{lapsing}"},
                      UpdateExpression="SET expires_at = :past", ExpressionAttributeValues={":past": 1_000_000})
    assert invitations(owner) == {}
    assert members(owner) == {owner.email: "owner", accepting: "viewer"}

    # those who cannot invite do not see whom others invited
    viewer = {"Authorization": f"Bearer {joined.json()['access_token']}"}
    assert owner.post("/members", json={"email": unique_email("later"), "role": "member"}).status_code == 201
    assert_error(api.get(owner.path("/invitations"), headers=viewer), 403, "forbidden")
