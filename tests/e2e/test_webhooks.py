"""Webhooks on the local cloud: registered with a secret shown once, delivered signed (verified with the
``standardwebhooks`` package), retried with the same ``webhook-id``, logged attempt by attempt, and never
sent where the guarded HTTP client refuses to go (DESIGN §9, issue 21)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook as Verifier

from tests.support import (
    LocalApi,
    Tenant,
    assert_error,
    create_agent,
    launch,
    services_with,
    signup,
    wait_for,
    with_api_key,
)


@dataclass
class Receiver:
    """A webhook receiver on loopback: answers each POST with the next of ``answers`` (then 204)."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/agenthq"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.received.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body, "path": self.path, "at": time.monotonic(),
                                          "wall": time.time()})
                status, headers = receiver.answers.pop(0) if receiver.answers else (204, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def wait(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.received) >= count, f"{len(self.received)} of {count} deliveries arrived"
        return self.received


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture()
def tenant(api: LocalApi) -> Tenant:
    return signup(api, "webhooks", tier="pro")


def register(tenant: Tenant, url: str, events: list[str]) -> dict[str, Any]:
    response = tenant.post("/webhooks", json={"url": url, "events": events, "description": "ci"})
    assert response.status_code == 201, response.text
    return dict(response.json())


def deliveries(tenant: Tenant, webhook_id: str) -> list[dict[str, Any]]:
    response = tenant.get(f"/webhooks/{webhook_id}/deliveries")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def wait_for_delivery(tenant: Tenant, webhook_id: str, status: str, attempts: int,
                      timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = deliveries(tenant, webhook_id)
        if seen and seen[0]["status"] == status and len(seen[0]["attempts"]) == attempts:
            return seen[0]
        time.sleep(0.2)
    raise AssertionError(f"no delivery {status} after {attempts} attempts: {seen}")


def test_a_finished_run_is_delivered_signed_and_the_secret_is_shown_once(tenant: Tenant,
                                                                          receiver: Receiver) -> None:
    made = register(tenant, receiver.url, ["run.succeeded", "run.failed"])
    assert made["secret"].startswith("whsec_") and made["status"] == "active"
    listed = tenant.get("/webhooks").json()["items"]
    assert [w["id"] for w in listed] == [made["id"]]
    assert "secret" not in listed[0] and made["secret"] not in json.dumps(listed)

    agent = create_agent(tenant, "Hooked", "architect")
    run = launch(tenant, agent["id"], "Say hello in one line.").json()
    assert wait_for(tenant, run["id"])["status"] == "succeeded"

    (request,) = receiver.wait(1)
    payload = Verifier(made["secret"]).verify(request["body"], request["headers"])  # raises when not signed right
    assert payload["type"] == "run.succeeded"
    assert payload["data"]["run_id"] == run["id"] and payload["data"]["status"] == "succeeded"
    assert payload["data"]["workspace_id"] == tenant.workspace_id
    assert "output" not in payload["data"] and "input" not in json.dumps(payload)  # ids and statuses only
    logged = wait_for_delivery(tenant, made["id"], "delivered", 1)
    assert logged["id"] == request["headers"]["webhook-id"] and logged["event_type"] == "run.succeeded"
    assert logged["attempts"][0]["status_code"] == 204 and logged["last_status_code"] == 204
    with pytest.raises(Exception):  # noqa: B017 - any verification error: another secret does not verify
        Verifier("whsec_" + "A" * 32).verify(request["body"], request["headers"])


def test_a_failed_attempt_is_retried_with_the_same_webhook_id_and_both_are_logged(tenant: Tenant,
                                                                                   receiver: Receiver) -> None:
    receiver.answers = [(503, {})]
    made = register(tenant, receiver.url, ["run.succeeded"])
    pinged = tenant.post(f"/webhooks/{made['id']}/test")
    assert pinged.status_code == 202, pinged.text
    first = receiver.wait(1)[0]
    failed = wait_for_delivery(tenant, made["id"], "failed", 1)  # a test ping is one attempt
    assert failed["attempts"][0]["status_code"] == 503 and failed["next_attempt_at"] is None

    receiver.answers = [(500, {})]
    agent = create_agent(tenant, "Retried", "architect")
    run = launch(tenant, agent["id"], "Say hello in one line.").json()
    assert wait_for(tenant, run["id"])["status"] == "succeeded"
    second, third = receiver.wait(3, timeout=90)[1:]
    assert second["headers"]["webhook-id"] == third["headers"]["webhook-id"] != first["headers"]["webhook-id"]
    for request in (second, third):
        assert Verifier(made["secret"]).verify(request["body"], request["headers"])["data"]["run_id"] == run["id"]
    assert third["at"] - second["at"] >= 4  # the schedule's second step: 5 s
    logged = wait_for_delivery(tenant, made["id"], "delivered", 2)
    assert [a["status_code"] for a in logged["attempts"]] == [500, 204]
    assert logged["id"] == second["headers"]["webhook-id"]

    again = tenant.post(f"/webhooks/{made['id']}/deliveries/{failed['id']}/retry")  # the failed ping, by hand
    assert again.status_code == 202, again.text
    redelivered = receiver.wait(4)[3]
    assert redelivered["headers"]["webhook-id"] == first["headers"]["webhook-id"]
    ping = wait_for_delivery_by_id(tenant, made["id"], failed["id"], "delivered")
    assert [a["status_code"] for a in ping["attempts"]] == [503, 204]
    time.sleep(1)
    assert len(receiver.received) == 4  # nothing more: each delivery once its endpoint said 2xx


def wait_for_delivery_by_id(tenant: Tenant, webhook_id: str, delivery_id: str, status: str,
                            timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        seen = next(d for d in deliveries(tenant, webhook_id) if d["id"] == delivery_id)
        if seen["status"] == status:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"delivery {delivery_id} not {status}: {seen}")


def test_a_redirect_is_not_followed(tenant: Tenant, receiver: Receiver) -> None:
    receiver.answers = [(302, {"location": "http://169.254.169.254/latest/meta-data/"})]
    made = register(tenant, receiver.url, ["usage.alert"])
    assert tenant.post(f"/webhooks/{made['id']}/test").status_code == 202
    logged = wait_for_delivery(tenant, made["id"], "failed", 1)
    assert logged["attempts"][0]["status_code"] == 302 and "redirect" in logged["attempts"][0]["error"].lower()
    time.sleep(1)
    assert len(receiver.received) == 1  # one request, and no hop


@pytest.mark.parametrize("url", [
    "http://10.0.0.7/hook", "https://192.168.1.2/hook", "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/", "http://[fe80::1]/", "ftp://127.0.0.1/hook", "not a url",
])
def test_urls_that_reach_private_or_link_local_addresses_are_refused_at_registration(tenant: Tenant,
                                                                                     url: str) -> None:
    error = assert_error(tenant.post("/webhooks", json={"url": url, "events": ["run.failed"]}), 400,
                         "invalid_request")
    assert error["details"][0]["field"] == "url"
    assert tenant.get("/webhooks").json()["items"] == []


def test_loopback_is_refused_with_the_aws_setting(tenant: Tenant, receiver: Receiver) -> None:
    with services_with({"outbound_allow_loopback": False}):
        for url in (receiver.url, receiver.url.replace("http://", "https://")):
            assert_error(tenant.post("/webhooks", json={"url": url, "events": ["run.failed"]}), 400)
    assert tenant.get("/webhooks").json()["items"] == []


def test_the_tier_limits_webhooks_and_usage_shows_it(api: LocalApi, receiver: Receiver) -> None:
    free = signup(api, "free-hooks")
    first = register(free, receiver.url, ["run.failed"])
    register(free, receiver.url, ["run.failed"])
    assert_error(free.post("/webhooks", json={"url": receiver.url, "events": ["run.failed"]}), 403, "plan_limit")
    limits = free.get("/usage").json()["limits"]["webhooks"]
    assert (limits["used"], limits["limit"]) == (2, 2)
    assert free.api.delete(free.path(f"/webhooks/{first['id']}"), headers=free.headers).status_code == 204
    register(free, receiver.url, ["run.failed"])  # its place was given back
    assert free.get("/usage").json()["limits"]["webhooks"]["used"] == 2


def test_only_admins_manage_webhooks(api: LocalApi, tenant: Tenant, receiver: Receiver) -> None:
    with_api_key(tenant)
    refused = api.post(tenant.path("/webhooks"), headers=tenant.key_headers,
                       json={"url": receiver.url, "events": ["run.failed"]})
    assert_error(refused, 403, "forbidden")
    assert_error(api.get(tenant.path("/webhooks"), headers=tenant.key_headers), 403, "forbidden")


def test_bad_input_is_a_400_and_unknown_ids_a_404(tenant: Tenant, receiver: Receiver) -> None:
    for body in ({"url": receiver.url, "events": []}, {"url": receiver.url, "events": ["run.started"]},
                 {"url": receiver.url, "events": ["run.failed", "run.failed"]}, {"events": ["run.failed"]},
                 {"url": receiver.url, "events": ["run.failed"], "secret": "mine"}):
        assert_error(tenant.post("/webhooks", json=body), 400, "invalid_request")
    missing = "01" + "0" * 24
    assert_error(tenant.api.delete(tenant.path(f"/webhooks/{missing}"), headers=tenant.headers), 404)
    assert_error(tenant.post(f"/webhooks/{missing}/test"), 404)
    assert_error(tenant.get(f"/webhooks/{missing}/deliveries"), 404)
    assert_error(tenant.post(f"/webhooks/{missing}/deliveries/{missing}/retry"), 404)


def test_an_approval_request_is_delivered_with_its_ids_and_never_the_tool_input(tenant: Tenant,
                                                                                  receiver: Receiver) -> None:
    """approval.requested is a run event the approvals feature stores; the stream's filter picks it by type."""
    made = register(tenant, receiver.url, ["approval.requested"])
    careful = create_agent(tenant, "careful", "sre", tools=["calculator"], tool_policies={"calculator": "ask"})
    run = launch(tenant, careful["id"], '/tool calculator {"expression": "6 * 7 + 1234567"}').json()
    (request,) = receiver.wait(1)
    payload = Verifier(made["secret"]).verify(request["body"], request["headers"])
    assert payload["type"] == "approval.requested"
    data = payload["data"]
    assert data["run_id"] == run["id"] and data["root_run_id"] == run["id"] and data["status"] == "pending"
    assert data["tool"] == "calculator" and data["approval_id"]
    assert "1234567" not in request["body"].decode() and "input" not in data  # never the call's input
    pending = tenant.get("/approvals", params={"run_id": run["id"]}).json()["items"]
    assert [a["id"] for a in pending] == [data["approval_id"]]
    assert tenant.post(f"/runs/{run['id']}/cancel").status_code == 202
