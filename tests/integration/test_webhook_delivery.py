"""Webhook delivery attempts, driven by a clock the test moves (on DynamoDB Local, in this process):
the Standard Webhooks reference schedule then ``failed``; one attempt for two copies of a message; a
redelivered stream record making no second delivery; an endpoint failing for 3 days disabled with an
alert; and a host that resolves elsewhere at delivery than at registration (DNS rebinding) refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agenthq.adapters.queue import SqsDeliveryQueue
from agenthq.context import ROLE_SCOPES, Principal, PrincipalKind, Role
from agenthq.services import Services, get_services
from agenthq.store import tenant_scope
from agenthq.store.items import Alert, Webhook, WebhookDelivery, Workspace
from agenthq.webhooks import api as webhooks
from agenthq.webhooks import delivery
from tests.support import LocalApi, signup

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class RecordingQueue(SqsDeliveryQueue):
    """The queue, kept in memory: what was sent, and how long each handed-back message was hidden."""

    def __init__(self) -> None:
        super().__init__(client=None, queue_url="memory")
        self.sent: list[dict[str, Any]] = []
        self.postponed: list[int] = []

    def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None:
        self.sent.append(message)

    def postpone(self, receipt_handle: str, seconds: int) -> None:
        self.postponed.append(seconds)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> float:
        return self.at.timestamp()


class Endpoint:
    """A receiver on loopback answering ``status`` (after ``delay`` seconds); counts requests."""

    def __init__(self, status: int = 500, delay: float = 0.0) -> None:
        self.status, self.delay, self.requests = status, delay, 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("content-length") or 0))
                endpoint.requests += 1
                time.sleep(endpoint.delay)
                self.send_response(endpoint.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture()
def endpoint() -> Iterator[Endpoint]:
    running = Endpoint()
    yield running
    running.server.shutdown()
    running.server.server_close()


@pytest.fixture()
def setup(api: LocalApi) -> Iterator[tuple[Services, Clock, RecordingQueue, Principal]]:
    tenant = signup(api, "deliveries", tier="pro")
    clock, queue = Clock(), RecordingQueue()
    services = Services(get_services().settings, clock, webhook_queue=queue)
    owner = Principal(tenant.workspace_id, tenant.user_id, PrincipalKind.user, Role.owner, ROLE_SCOPES[Role.owner])
    yield services, clock, queue, owner


def register(services: Services, owner: Principal, url: str, **kw: Any) -> dict[str, Any]:
    return webhooks.create_webhook(services, owner, webhooks.WebhookCreate(url=url, events=["run.failed"]), **kw)


def stored(owner: Principal, webhook_id: str, delivery_id: str) -> WebhookDelivery:
    with tenant_scope(owner.workspace_id):
        found = WebhookDelivery.get_or_none(*WebhookDelivery.key(owner.workspace_id, webhook_id, delivery_id))
    assert found is not None
    return found


def test_a_failing_endpoint_gets_the_reference_schedule_then_the_delivery_fails(setup, endpoint) -> None:
    services, clock, queue, owner = setup
    made = register(services, owner, endpoint.url)
    ping = webhooks.test_webhook(services, owner, made["id"])
    with tenant_scope(owner.workspace_id):  # a delivery of a round of 8, as the fan-out makes them
        WebhookDelivery(*WebhookDelivery.key(owner.workspace_id, made["id"], ping["id"])).update(
            actions=[WebhookDelivery.attempt_limit.set(len(delivery.SCHEDULE))])
    (message,) = queue.sent
    waits = []
    for step in range(len(delivery.SCHEDULE)):
        outcome = delivery.attempt(services, message)
        assert endpoint.requests == step + 1
        if outcome.postpone is None:
            break
        assert delivery.attempt(services, message).status == "skipped"  # a copy before its time: no request
        assert endpoint.requests == step + 1
        waits.append(outcome.postpone)
        logged = stored(owner, made["id"], ping["id"])
        assert logged.status == "pending" and logged.next_attempt_at == clock.at + timedelta(seconds=outcome.postpone)
        clock.at += timedelta(seconds=outcome.postpone)
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 36000]  # immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
    assert sum(waits) / 3600 > 24  # at least a day of retries
    logged = stored(owner, made["id"], ping["id"])
    assert logged.status == "failed" and logged.next_attempt_at is None
    assert [int(a.status_code) for a in logged.attempts] == [500] * 8
    assert delivery.attempt(services, message).status == "skipped" and endpoint.requests == 8  # done is done


def test_two_copies_of_one_message_make_one_attempt(setup) -> None:
    services, _, queue, owner = setup
    slow = Endpoint(status=200, delay=1.0)
    try:
        made = register(services, owner, slow.url)
        webhooks.test_webhook(services, owner, made["id"])
        (message,) = queue.sent
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(lambda _: delivery.attempt(services, message), range(4)))
        assert sorted(o.status for o in outcomes) == ["delivered", "skipped", "skipped", "skipped"]
        assert slow.requests == 1
    finally:
        slow.server.shutdown()
        slow.server.server_close()


def test_a_redelivered_stream_record_makes_no_second_delivery(setup, endpoint) -> None:
    services, _, queue, owner = setup
    made = register(services, owner, endpoint.url)
    image = {"pk": {"S": f"WS#{owner.workspace_id}#RUN#01J0000000000000000000RUN1"}, "sk": {"S": "EVT#0000000009"},
             "type": {"S": "RunEvent"}, "event_type": {"S": "run.failed"}, "at": {"S": "2026-12-07T09:00:00.000000+0000"},
             "data": {"S": '{"status": "failed"}'}}
    assert delivery.fan_out(services, image) == 1
    delivery.attempt(services, queue.sent[0])
    assert delivery.fan_out(services, image) == 0  # made and attempted: nothing again
    with tenant_scope(owner.workspace_id):
        logged = list(WebhookDelivery.query(f"WS#{owner.workspace_id}",
                                            WebhookDelivery.sk.startswith(WebhookDelivery.prefix(made["id"]))))
    assert len(logged) == 1 and logged[0].event_type == "run.failed" and endpoint.requests == 1


def test_an_endpoint_failing_for_3_days_is_disabled_and_the_workspace_alerted(setup, endpoint) -> None:
    services, clock, queue, owner = setup
    made = register(services, owner, endpoint.url)
    webhooks.test_webhook(services, owner, made["id"])
    delivery.attempt(services, queue.sent[-1])
    clock.at += timedelta(days=2, hours=23)
    webhooks.test_webhook(services, owner, made["id"])
    delivery.attempt(services, queue.sent[-1])
    with tenant_scope(owner.workspace_id):
        assert Webhook.get(*Webhook.key(owner.workspace_id, made["id"])).status == "active"
    clock.at += timedelta(hours=1)
    webhooks.test_webhook(services, owner, made["id"])
    assert delivery.attempt(services, queue.sent[-1]).status == "failed"
    with tenant_scope(owner.workspace_id):
        webhook = Webhook.get(*Webhook.key(owner.workspace_id, made["id"]))
        alerts = [a for a in Alert.query(f"WS#{owner.workspace_id}", Alert.sk.startswith("ALERT#"))
                  if a.limit == delivery.ALERT_LIMIT]
    assert webhook.status == "disabled" and webhook.disabled_reason
    assert len(alerts) == 1 and made["id"] in alerts[0].sk
    listed = webhooks.list_webhooks(owner, None, 10).items
    assert listed[0]["status"] == "disabled"
    requests = endpoint.requests
    queue.sent.clear()
    image = {"pk": {"S": f"WS#{owner.workspace_id}#RUN#01J0000000000000000000RUN2"}, "sk": {"S": "EVT#0000000004"},
             "type": {"S": "RunEvent"}, "event_type": {"S": "run.failed"}, "at": {"S": "2026-12-10T09:00:00.000000+0000"},
             "data": {"S": "{}"}}
    assert delivery.fan_out(services, image) == 0 and queue.sent == []  # a disabled endpoint is sent nothing
    assert endpoint.requests == requests


def test_a_success_ends_the_failing_streak(setup, endpoint) -> None:
    services, clock, queue, owner = setup
    made = register(services, owner, endpoint.url)
    webhooks.test_webhook(services, owner, made["id"])
    delivery.attempt(services, queue.sent[-1])
    endpoint.status = 200
    clock.at += timedelta(days=2)
    webhooks.test_webhook(services, owner, made["id"])
    assert delivery.attempt(services, queue.sent[-1]).status == "delivered"
    endpoint.status = 500
    clock.at += timedelta(days=2)
    webhooks.test_webhook(services, owner, made["id"])
    delivery.attempt(services, queue.sent[-1])
    with tenant_scope(owner.workspace_id):
        webhook = Webhook.get(*Webhook.key(owner.workspace_id, made["id"]))
    assert webhook.status == "active" and webhook.failing_since == clock.at


class Rebinding:
    """A resolver whose answer changes: public when the URL is registered, then ``then``."""

    def __init__(self, then: str) -> None:
        self.then, self.calls = then, 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return ["93.184.216.34"] if self.calls == 1 else [self.then]


@pytest.mark.parametrize("then", ["169.254.169.254", "::ffff:169.254.169.254", "10.1.2.3", "127.0.0.1"])
def test_a_host_that_rebinds_to_a_private_address_is_refused_at_delivery(setup, then: str) -> None:
    services, _, queue, owner = setup
    aws = Services(services.settings.model_copy(update={"outbound_allow_loopback": False}), services.clock,
                   webhook_queue=queue)
    resolver = Rebinding(then)
    made = register(aws, owner, "https://hooks.example.test/agenthq", resolver=resolver)
    ping = webhooks.test_webhook(aws, owner, made["id"])
    outcome = delivery.attempt(aws, queue.sent[-1], resolver=resolver)
    assert outcome.status == "failed" and resolver.calls == 2
    (attempt,) = stored(owner, made["id"], ping["id"]).attempts
    assert attempt.status_code is None and "hooks.example.test" in attempt.error and "AgentHQ does not call" in attempt.error


def test_a_queued_delivery_of_a_removed_endpoint_is_dropped_unsent(setup, endpoint) -> None:
    """Removing an endpoint (or offboarding its workspace) deletes its deliveries; a message still on the
    queue names nothing any more and is dropped without a request."""
    services, _, queue, owner = setup
    made = register(services, owner, endpoint.url)
    ping = webhooks.test_webhook(services, owner, made["id"])
    webhooks.delete_webhook(owner, made["id"])
    with tenant_scope(owner.workspace_id):
        assert WebhookDelivery.get_or_none(*WebhookDelivery.key(owner.workspace_id, made["id"], ping["id"])) is None
    assert delivery.attempt(services, queue.sent[-1]).status == "skipped" and endpoint.requests == 0


def test_a_workspace_being_offboarded_gets_no_new_deliveries(setup, endpoint) -> None:
    """Offboarding cancels the workspace's runs before it deletes its items: their last events, fanned out
    meanwhile, must not leave deliveries behind the deletion."""
    services, _, queue, owner = setup
    register(services, owner, endpoint.url)
    with tenant_scope(owner.workspace_id):
        Workspace(*Workspace.key(owner.workspace_id)).update(actions=[Workspace.deleting.set(True)])
    image = {"pk": {"S": f"WS#{owner.workspace_id}#RUN#01J0000000000000000000RUN3"}, "sk": {"S": "EVT#0000000005"},
             "type": {"S": "RunEvent"}, "event_type": {"S": "run.failed"}, "at": {"S": "2026-12-07T09:00:00.000000+0000"},
             "data": {"S": '{"status": "cancelled"}'}}
    assert delivery.fan_out(services, image) == 0 and queue.sent == []


def test_an_answer_later_than_10_seconds_is_a_failed_attempt(setup) -> None:
    services, _, queue, owner = setup
    slow = Endpoint(status=200, delay=delivery.TIMEOUT_SECONDS + 1.5)
    try:
        made = register(services, owner, slow.url)
        ping = webhooks.test_webhook(services, owner, made["id"])
        assert delivery.attempt(services, queue.sent[-1]).status == "failed"
        (attempt,) = stored(owner, made["id"], ping["id"]).attempts
        assert attempt.status_code is None and attempt.error == "No answer within 10 s."
        assert slow.requests == 1
    finally:
        slow.server.shutdown()
        slow.server.server_close()


def test_an_alert_is_delivered_as_usage_alert_to_the_endpoints_that_asked(setup, endpoint) -> None:
    services, _, queue, owner = setup
    asked = webhooks.create_webhook(services, owner, webhooks.WebhookCreate(url=endpoint.url, events=["usage.alert"]))
    register(services, owner, endpoint.url)  # run.failed only: not sent an alert
    image = {"pk": {"S": f"WS#{owner.workspace_id}"}, "sk": {"S": "ALERT#2026-12#tokens_per_month#080"},
             "type": {"S": "Alert"}, "limit": {"S": "tokens_per_month"}, "threshold": {"N": "80"},
             "period": {"S": "2026-12"}, "used": {"N": "160000"}, "allowed": {"N": "200000"},
             "at": {"S": "2026-12-07T09:00:00.000000+0000"}}
    assert delivery.fan_out(services, image) == 1
    assert queue.sent[-1]["webhook_id"] == asked["id"]
    outcome = delivery.attempt(services, queue.sent[-1])  # the endpoint answers 500: the round's next in 5 s
    assert (outcome.status, outcome.postpone, endpoint.requests) == ("pending", 5, 1)
    logged = stored(owner, asked["id"], queue.sent[-1]["delivery_id"])
    assert logged.event_type == "usage.alert" and logged.payload["data"]["limit"] == "tokens_per_month"
