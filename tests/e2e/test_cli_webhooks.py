"""`agenthq webhooks add|list|test|deliveries|remove` against the local cloud (a separate process)."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.test_webhooks import Receiver
from tests.support import PASSWORD, signup

pytestmark = pytest.mark.slow


def test_an_admin_manages_webhooks_and_reads_their_deliveries(api, agenthq):
    owner = signup(api, "cli-hooks", tier="pro")
    assert agenthq("login", "--email", owner.email, "--password", PASSWORD).returncode == 0
    receiver = Receiver().start()
    try:
        added = agenthq("webhooks", "add", receiver.url, "--event", "run.failed", "--event", "usage.alert",
                        "--description", "pager")
        assert added.returncode == 0, added.stderr
        made = json.loads(added.stdout)
        assert made["secret"].startswith("whsec_") and made["events"] == ["run.failed", "usage.alert"]
        listed = json.loads(agenthq("webhooks", "list").stdout)
        assert [w["id"] for w in listed] == [made["id"]] and "secret" not in listed[0]

        tested = agenthq("webhooks", "test", made["id"])
        assert tested.returncode == 0, tested.stderr
        delivery_id = json.loads(tested.stdout)["id"]
        receiver.wait(1)
        for _ in range(100):
            logged = json.loads(agenthq("webhooks", "deliveries", made["id"]).stdout)
            if logged and logged[0]["status"] == "delivered":
                break
            time.sleep(0.2)
        assert logged[0]["id"] == delivery_id and logged[0]["event_type"] == "webhook.test"
        assert logged[0]["attempts"][0]["status_code"] == 204
        retried = agenthq("webhooks", "deliveries", made["id"], "--retry", delivery_id)
        assert retried.returncode == 0 and json.loads(retried.stdout)["status"] == "pending"
        receiver.wait(2)
        assert receiver.received[1]["headers"]["webhook-id"] == delivery_id

        refused = agenthq("webhooks", "add", "http://169.254.169.254/latest/", "--event", "run.failed")
        assert refused.returncode != 0 and "169.254.169.254" in refused.stderr + refused.stdout

        removed = agenthq("webhooks", "remove", made["id"])
        assert removed.returncode == 0 and json.loads(agenthq("webhooks", "list").stdout) == []
    finally:
        receiver.stop()
