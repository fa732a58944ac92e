"""E-mail verification on the local cloud, with RequireVerifiedEmail on (as on AWS by default): a signup's
workspace launches no run until the link the local SES wrote to the mailbox is used; the token is single-use,
expires, verifies only its own account, and a new link can be asked for at most once a minute. With it off
(`make dev`'s default) nothing changes: the other e2e tests, and test_readme's quick start, run that way."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from local.mailbox import read_mailbox
from tests.support import (
    PASSWORD,
    assert_error,
    bearer,
    create_agent,
    launch,
    signup,
    table_items,
    unique_email,
    wait_for,
    with_api_key,
    workspace_leftovers,
)

LINK = re.compile(r"(http://\S+/console/#/verify-email/(ahv_[A-Za-z0-9_-]+))")


@pytest.fixture()
def verifying(cloud) -> Iterator[None]:
    with cloud.email_verification(required=True):
        yield


def mailed_token(cloud, email: str, nth: int = -1) -> tuple[str, str]:
    """The link and token of the ``nth`` verification mail the local SES delivered to ``email``."""
    mails = read_mailbox(cloud.mailbox, to=email)
    assert mails, f"no mail to {email} in {cloud.mailbox}"
    mail = mails[nth]
    assert mail["Subject"] == "Verify your e-mail address for AgentHQ"
    assert mail["From"] == "no-reply@agenthq.localhost"
    found = LINK.search(mail.get_content())
    assert found, mail.get_content()
    return found.group(1), found.group(2)


def runs_of(tenant) -> list[dict]:
    response = tenant.get("/runs")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def me(api, tenant) -> dict:
    response = api.get("/me", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def items_of(cloud, workspace_id: str) -> list[dict]:
    """The workspace's items, less when its API key was last used (the authorizer's bookkeeping)."""
    items = ({k: v for k, v in item.items() if k != "last_used_at"} for item in workspace_leftovers(cloud, workspace_id))
    return sorted(items, key=lambda i: (i["pk"], i["sk"]))


def verify(api, token: str):
    return api.post("/auth/verify-email", json={"token": token})


def test_an_unverified_workspace_launches_nothing_until_the_mailed_link_is_used(cloud, api, verifying):
    assert f"Mailbox        {cloud.mailbox}" in cloud.banner(0.0) and "e-mail verification on" in cloud.banner(0.0)
    owner = with_api_key(signup(api, tag="unverified", tier="starter"))
    assert me(api, owner)["user"]["email_verified"] is False
    assert me(api, owner)["email_verification_required"] is True
    agent = create_agent(owner, "helper", "sre")  # defining agents costs nothing: allowed

    # launching is a 403 with its own code, for the owner and for the workspace's API key, and writes nothing
    before = items_of(cloud, owner.workspace_id)
    for headers in (owner.headers, owner.key_headers):
        refused = launch(owner, agent["id"], "What is 6 * 7?", key="first-try", headers=headers)
        error = assert_error(refused, 403, "email_unverified")
        assert "verify" in error["message"].lower()
    assert runs_of(owner) == []
    assert items_of(cloud, owner.workspace_id) == before

    # the mail: a link under the API's own console, whose token the table keeps only hashed
    link, token = mailed_token(cloud, owner.email)
    assert link.startswith(f"{cloud.rest_url}/console/#/verify-email/")
    stored = table_items(cloud, pk=f"VERIFY#{hashlib.sha256(token.encode()).hexdigest()}")
    assert len(stored) == 1 and token not in str(stored)
    assert not [i for i in table_items(cloud) if token in str(i)]

    verified = verify(api, token)
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"email": owner.email, "email_verified": True, "sent": False}
    assert me(api, owner)["user"]["email_verified"] is True

    # the same launch (same Idempotency-Key) now runs
    launched = launch(owner, agent["id"], "What is 6 * 7?", key="first-try")
    assert launched.status_code == 202, launched.text
    assert wait_for(owner, launched.json()["id"])["status"] == "succeeded"

    # the link works once: used again it is refused, and the account stays verified
    assert_error(verify(api, token), 400, "invalid_verification_token")
    assert me(api, owner)["user"]["email_verified"] is True


def test_another_accounts_token_verifies_only_that_account(cloud, api, verifying):
    mine = signup(api, tag="mine", tier="starter")
    theirs = signup(api, tag="theirs", tier="starter")
    agent = create_agent(mine, "helper", "sre")
    _, their_token = mailed_token(cloud, theirs.email)

    used = verify(api, their_token)
    assert used.status_code == 200 and used.json()["email"] == theirs.email
    assert me(api, theirs)["user"]["email_verified"] is True
    assert me(api, mine)["user"]["email_verified"] is False
    assert_error(launch(mine, agent["id"], "Hello"), 403, "email_unverified")
    assert runs_of(mine) == []
    # a made-up or altered token verifies nothing either
    _, my_token = mailed_token(cloud, mine.email)
    for wrong in ("ahv_" + "A" * 43, my_token[:-1] + ("A" if my_token[-1] != "A" else "B")):
        assert_error(verify(api, wrong), 400, "invalid_verification_token")
    assert me(api, mine)["user"]["email_verified"] is False


def test_an_expired_link_is_refused_and_a_new_one_can_be_asked_for_once_a_minute(cloud, api, verifying):
    owner = signup(api, tag="slow", tier="starter")
    _, old_token = mailed_token(cloud, owner.email)
    # a day passes: the link's validity is over (DynamoDB's TTL deletes it lazily; its end is what is checked)
    import boto3

    table = boto3.resource("dynamodb", region_name=cloud.config.stack.region).Table(cloud.config.stack.table_name)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="microseconds").replace("+00:00", "+0000")
    table.update_item(Key={"pk": f"VERIFY#{hashlib.sha256(old_token.encode()).hexdigest()}", "sk": "META"},
                      UpdateExpression="SET valid_until = :past", ExpressionAttributeValues={":past": past})
    error = assert_error(verify(api, old_token), 400, "invalid_verification_token")
    assert "expired" in error["message"]
    assert me(api, owner)["user"]["email_verified"] is False

    sent = api.post("/auth/verify-email/resend", headers=owner.headers)
    assert sent.status_code == 200, sent.text
    assert sent.json() == {"email": owner.email, "email_verified": False, "sent": True}
    assert len(read_mailbox(cloud.mailbox, to=owner.email)) == 2
    again = api.post("/auth/verify-email/resend", headers=owner.headers)
    assert_error(again, 429, "rate_limited")
    assert int(again.headers["Retry-After"]) >= 1
    assert len(read_mailbox(cloud.mailbox, to=owner.email)) == 2  # the refused resend sent nothing

    _, new_token = mailed_token(cloud, owner.email)
    assert new_token != old_token
    assert verify(api, new_token).status_code == 200
    # verified: a resend sends nothing (and is not throttled by the minute's count: it never reaches it)
    done = api.post("/auth/verify-email/resend", headers=owner.headers)
    assert done.status_code == 200 and done.json()["sent"] is False


def test_parallel_uses_of_one_token_verify_once(cloud, api, verifying):
    owner = signup(api, tag="racing", tier="starter")
    _, token = mailed_token(cloud, owner.email)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: verify(api, token), range(6)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) == 1 and set(statuses) <= {200, 400}, [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 400):
        assert_error(refused, 400, "invalid_verification_token")
    user = table_items(cloud, pk=f"USER#{owner.user_id}")[0]
    assert user["email_verified_at"]
    workspace = table_items(cloud, pk=f"WS#{owner.workspace_id}", sk="META")[0]
    assert "verification_pending" not in workspace


def test_an_invited_member_of_a_verified_workspace_launches_without_verifying_their_own_address(cloud, api,
                                                                                                  verifying):
    owner = signup(api, tag="inviter", tier="starter")
    assert verify(api, mailed_token(cloud, owner.email)[1]).status_code == 200
    invitee = unique_email("invitee")
    assert owner.post("/members", json={"email": invitee, "role": "member"}).status_code == 201
    assert api.post("/auth/signup", json={"email": invitee, "password": PASSWORD,
                                          "workspace_name": "Invitee's own"}).status_code == 201
    joined = api.post("/auth/login", json={"email": invitee, "password": PASSWORD,
                                           "workspace_id": owner.workspace_id})
    assert joined.status_code == 200, joined.text
    agent = create_agent(owner, "helper", "sre")
    launched = owner.api.post(owner.path(f"/agents/{agent['id']}/runs"), json={"input": "Hi"},
                              headers=bearer(joined.json()["access_token"]))
    assert launched.status_code == 202, launched.text
    assert wait_for(owner, launched.json()["id"])["status"] == "succeeded"
    # their own address is still unverified, and their own new workspace waits for it
    member_me = api.get("/me", headers=bearer(joined.json()["access_token"])).json()
    assert member_me["user"]["email_verified"] is False


def test_with_verification_off_a_signup_launches_at_once_and_sends_no_mail(cloud, api):
    assert f"Mailbox        {cloud.mailbox}" in cloud.banner(0.0) and "e-mail verification off" in cloud.banner(0.0)
    owner = signup(api, tag="quick", tier="starter")
    assert me(api, owner)["email_verification_required"] is False
    assert read_mailbox(cloud.mailbox, to=owner.email) == []
    agent = create_agent(owner, "helper", "sre")
    launched = launch(owner, agent["id"], "What is 6 * 7?")
    assert launched.status_code == 202, launched.text
    assert wait_for(owner, launched.json()["id"])["status"] == "succeeded"
    # a workspace signed up while verification was on, and not verified, may launch once the operator turns it off
    with cloud.email_verification(required=True):
        held = signup(api, tag="held", tier="starter")
    held_agent = create_agent(held, "helper", "sre")
    held_run = launch(held, held_agent["id"], "Hi")
    assert held_run.status_code == 202, held_run.text
    assert wait_for(held, held_run.json()["id"])["status"] == "succeeded"


def test_the_cli_shows_whether_the_address_is_verified_and_verifies_it(cloud, api, verifying, tmp_path):
    import os
    import subprocess
    import sys

    from local.template import ROOT

    def agenthq(*args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
               "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": str(ROOT / "cli"),
               "AGENTHQ_API_URL": cloud.rest_url, "AGENTHQ_WS_URL": cloud.ws_url}
        return subprocess.run([sys.executable, "-m", "agenthq_cli", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    owner = signup(api, tag="cli-verify", tier="starter")
    logged_in = agenthq("login", "--email", owner.email, "--password", PASSWORD)
    assert logged_in.returncode == 0, logged_in.stderr
    before = agenthq("whoami")
    assert before.returncode == 0, before.stderr
    assert f"{owner.email} (e-mail NOT verified)" in before.stdout and "agenthq verify-email" in before.stdout
    assert owner.workspace_id in before.stdout

    _, token = mailed_token(cloud, owner.email)
    assert f"agenthq verify-email {token}" in read_mailbox(cloud.mailbox, to=owner.email)[-1].get_content()
    done = agenthq("verify-email", token)
    assert done.returncode == 0 and f"{owner.email} is verified." in done.stdout, done.stderr
    again = agenthq("verify-email", token)
    assert again.returncode == 1 and "already used" in again.stderr and "invalid_verification_token" in again.stderr
    after = agenthq("whoami", "--json")
    assert json.loads(after.stdout)["user"]["email_verified"] is True
    resend = agenthq("verify-email", "--resend")
    assert resend.returncode == 0 and "verified already" in resend.stdout, resend.stderr


class RefusingSes:
    """SES refusing every mail (a sender not verified any more, an account paused): the adapter's error."""

    def send(self, to: str, subject: str, text: str) -> None:
        from agenthq.adapters.mail import MailNotSent

        raise MailNotSent("MessageRejected: Email address is not verified.")


def test_a_mail_ses_refuses_does_not_undo_the_signup_and_resend_says_so(cloud, api, verifying):
    from tests.support import services_with

    with services_with(mailer=RefusingSes()):
        owner = signup(api, tag="unmailed", tier="starter")  # 201: the account and workspace exist
        assert read_mailbox(cloud.mailbox, to=owner.email) == []
        assert_error(api.post("/auth/verify-email/resend", headers=owner.headers), 503, "service_unavailable")
    agent = create_agent(owner, "helper", "sre")
    assert_error(launch(owner, agent["id"], "Hi"), 403, "email_unverified")
    # the failed attempt counted against the account's resend rate (attempts are counted, as the auth rates do)
    assert_error(api.post("/auth/verify-email/resend", headers=owner.headers), 429, "rate_limited")


def test_a_verification_cut_off_between_its_two_steps_is_finished_by_using_the_link_again(cloud, api, verifying,
                                                                                         monkeypatch):
    """The workspaces are released first, the token consumed and the user marked last: a crash between
    the two (here: the transaction fails as a dying invocation would) leaves the token usable."""
    import agenthq.verification as verification
    from tests.support import services_with

    owner = signup(api, tag="cut-off", tier="starter")
    agent = create_agent(owner, "helper", "sre")
    _, token = mailed_token(cloud, owner.email)

    def crash(*args, **kwargs):
        raise RuntimeError("the invocation died here")

    with services_with():
        monkeypatch.setattr(verification, "transaction", crash)
        assert verify(api, token).status_code == 500
        monkeypatch.undo()
    assert me(api, owner)["user"]["email_verified"] is False  # not marked: the token is not used either
    done = verify(api, token)
    assert done.status_code == 200 and done.json()["email_verified"] is True, done.text
    run = launch(owner, agent["id"], "Hi")
    assert run.status_code == 202, run.text
    assert wait_for(owner, run.json()["id"])["status"] == "succeeded"


def test_a_workspace_the_verification_missed_is_released_by_asking_for_a_new_link(cloud, api, verifying):
    """Verifying finds the user's workspaces through the membership index, which may lag a fresh signup on
    AWS; a verified user's resend releases any workspace of theirs still held, and sends nothing."""
    owner = signup(api, tag="missed", tier="starter")
    assert verify(api, mailed_token(cloud, owner.email)[1]).status_code == 200
    import boto3

    table = boto3.resource("dynamodb", region_name=cloud.config.stack.region).Table(cloud.config.stack.table_name)
    table.update_item(Key={"pk": f"WS#{owner.workspace_id}", "sk": "META"},
                      UpdateExpression="SET verification_pending = :t", ExpressionAttributeValues={":t": True})
    agent = create_agent(owner, "helper", "sre")
    assert_error(launch(owner, agent["id"], "Hi"), 403, "email_unverified")
    again = api.post("/auth/verify-email/resend", headers=owner.headers)
    assert again.status_code == 200 and again.json() == {"email": owner.email, "email_verified": True, "sent": False}
    assert len(read_mailbox(cloud.mailbox, to=owner.email)) == 1
    run = launch(owner, agent["id"], "Hi")
    assert run.status_code == 202, run.text
    assert wait_for(owner, run.json()["id"])["status"] == "succeeded"
