"""`agenthq members list|invite|invitations|role|remove` against the local cloud (a separate process)."""

from __future__ import annotations

import json

import pytest

from tests.support import PASSWORD, signup, unique_email

pytestmark = pytest.mark.slow


def test_an_owner_invites_changes_a_role_and_removes_a_member(api, agenthq):
    owner = signup(api, "cli-members", tier="starter")
    assert agenthq("login", "--email", owner.email, "--password", PASSWORD).returncode == 0
    newcomer, withdrawn = unique_email("newcomer"), unique_email("withdrawn")
    for email in (newcomer, withdrawn):
        invited = agenthq("members", "invite", email, "--role", "viewer")
        assert invited.returncode == 0, invited.stderr
        assert json.loads(invited.stdout)["status"] == "invited"
    pending = json.loads(agenthq("members", "invitations").stdout)
    assert {(i["email"], i["role"]) for i in pending} == {(newcomer, "viewer"), (withdrawn, "viewer")}
    assert [m["email"] for m in json.loads(agenthq("members", "list").stdout)] == [owner.email]

    assert agenthq("members", "remove", withdrawn).returncode == 0  # an address: its invitation withdrawn
    assert api.post("/auth/signup", json={"email": newcomer, "password": PASSWORD,
                                          "workspace_name": "Own"}).status_code == 201
    joined = api.post("/auth/login", json={"email": newcomer, "password": PASSWORD,
                                           "workspace_id": owner.workspace_id})
    assert joined.status_code == 200, joined.text
    assert json.loads(agenthq("members", "invitations").stdout) == []
    listed = {m["email"]: m for m in json.loads(agenthq("members", "list").stdout)}
    assert {email: m["role"] for email, m in listed.items()} == {owner.email: "owner", newcomer: "viewer"}

    uid = listed[newcomer]["user_id"]
    changed = agenthq("members", "role", uid, "admin")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["role"] == "admin"
    refused = agenthq("members", "role", uid, "superuser")
    assert refused.returncode == 2 and "one of owner, admin, member, viewer" in refused.stderr

    assert agenthq("members", "remove", uid).returncode == 0
    assert [m["email"] for m in json.loads(agenthq("members", "list").stdout)] == [owner.email]
    gone = agenthq("members", "remove", uid)
    assert gone.returncode != 0 and "not_found" in gone.stderr
