"""A login naming a workspace its user is not a member of answers 403 `forbidden`, and the contract
served at /v1/openapi.json says so (issue 17, hole 10: schemathesis never logs in with a right
password, so it could not find this)."""

from __future__ import annotations

from tests.support import PASSWORD, assert_error, signup


def test_a_login_into_another_workspace_is_a_documented_403(api):
    user = signup(api, tag="login-403")
    stranger = signup(api, tag="login-403-other", workspace_name="Not Yours")
    for workspace_id in (stranger.workspace_id, "01ARZ3NDEKTSV4RRFFQ69G5FAV"):  # another's; one that does not exist
        refused = api.post("/auth/login", json={"email": user.email, "password": PASSWORD,
                                                "workspace_id": workspace_id})
        error = assert_error(refused, 403, "forbidden")
        assert error["message"] == "You are not a member of that workspace."

    documented = api.get("/openapi.json").json()["paths"]["/auth/login"]["post"]["responses"]
    assert "403" in documented
    assert documented["403"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert "forbidden" in documented["403"]["description"]
