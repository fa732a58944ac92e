"""The console's webhooks page in a real browser (headless Chromium) against the local cloud: an owner adds
an endpoint (its secret shown once), sends a test that the receiver refuses, reads the delivery log with the
attempt's status code, delivers it again, and removes the endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.test_webhooks import Receiver
from tests.support import PASSWORD, ConsolePage, signup

pytestmark = pytest.mark.slow


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def test_an_owner_adds_a_webhook_tests_it_and_reads_its_delivery_log(api, page: ConsolePage,
                                                                      receiver: Receiver) -> None:
    owner = signup(api, "console-hooks", tier="pro")
    page.sign_in(owner.email, PASSWORD)
    page.go("Webhooks")
    assert "No webhooks yet" in page.find("#webhooks").text

    page.fill("#add-webhook input[name=webhook-url]", receiver.url)
    page.find("#add-webhook input[value='usage.alert']").click()
    page.find("#add-webhook button[type=submit]").click()
    secret = page.until(lambda: page.find("#new-webhook-secret").text, message="the new secret")
    assert secret.startswith("whsec_")
    made = owner.get("/webhooks").json()["items"]
    assert [(w["url"], w["events"]) for w in made] == [(receiver.url, ["run.succeeded", "run.failed", "usage.alert"])]
    row = page.find(f"#webhooks tr[data-webhook='{made[0]['id']}']")
    assert "active" in row.text and secret not in page.find("#webhooks").text
    page.screenshot("added")

    receiver.answers = [(503, {})]
    row.find_element("css selector", "button[data-action=test]").click()
    receiver.wait(1)

    def row_text(status: str):
        """The first delivery row with ``status``, as text (the table is drawn again at each refresh)."""
        page.find("#refresh-deliveries").click()
        rows = page.all(f"#deliveries tr[data-status={status}]")
        return (rows[0].text, rows[0].find_element("css selector", ".delivery-attempts").text) if rows else None

    text, attempts = page.until(lambda: row_text("failed"), message="the failed test delivery")
    assert "webhook.test" in text and "503" in attempts
    page.screenshot("failed")

    def redeliver() -> bool:
        page.find("#deliveries tr[data-status=failed] button[data-action=redeliver]").click()
        return True

    page.until(redeliver, message="the delivery sent again")
    receiver.wait(2)
    assert receiver.received[1]["headers"]["webhook-id"] == receiver.received[0]["headers"]["webhook-id"]

    text, attempts = page.until(lambda: row_text("delivered"), message="the redelivered test")
    assert "503" in attempts and "204" in attempts
    page.screenshot("delivered")

    def remove() -> bool:
        page.find(f"#webhooks tr[data-webhook='{made[0]['id']}'] button[data-action=remove]").click()
        return True

    page.until(remove, message="the remove button")
    page.until(lambda: "No webhooks yet" in page.find("#webhooks").text, message="the endpoint removed")
    assert owner.get("/webhooks").json()["items"] == []
