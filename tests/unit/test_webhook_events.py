"""What webhooks deliver: the stored events of the types endpoints subscribe to, as bodies that carry
ids and statuses only (never a run's input or output, a tool's input, or anything secret)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agenthq.store.items import WebhookDelivery
from agenthq.webhooks.events import EVENT_TYPES, event_of

WID, RID = "01J0000000000000000000WSID", "01J0000000000000000000RUN1"
AT = "2026-12-07T11:42:51.766000+0000"


def run_event(event_type: str, data: dict[str, Any], item_type: str = "RunEvent") -> dict[str, Any]:
    return {"pk": {"S": f"WS#{WID}#RUN#{RID}"}, "sk": {"S": "EVT#0000000007"}, "type": {"S": item_type},
            "event_type": {"S": event_type}, "seq": {"N": "7"}, "at": {"S": AT},
            "data": {"S": json.dumps(data)}}


def test_the_delivered_types_are_the_contracts() -> None:
    assert set(EVENT_TYPES) == {"run.succeeded", "run.failed", "run.cancelled", "run.timed_out", "run.paused",
                                "approval.requested", "usage.alert", "session.idle"}


def test_a_finished_run_carries_its_id_status_and_error_reason_but_not_its_output() -> None:
    event = event_of(run_event("run.failed", {
        "status": "failed", "output": "the secret plan", "error": {"reason": "model_error", "message": "k=sk-1"},
        "usage": {"cost_usd": "0.1"}}))
    assert event is not None and event.event_type == "run.failed" and event.workspace_id == WID
    assert event.body() == {"type": "run.failed", "timestamp": AT, "data": {
        "workspace_id": WID, "run_id": RID, "status": "failed", "error": {"reason": "model_error"}}}


def test_an_approval_request_carries_ids_and_the_tool_never_its_input() -> None:
    event = event_of(run_event("approval.requested", {
        "approval_id": "01J00000000000000000000AP1", "tool": "write_note", "input": {"text": "password=hunter2"},
        "run_id": RID, "root_run_id": "01J0000000000000000000ROOT"}))
    assert event is not None
    assert event.data == {"workspace_id": WID, "run_id": RID, "approval_id": "01J00000000000000000000AP1",
                          "tool": "write_note", "root_run_id": "01J0000000000000000000ROOT", "status": "pending"}
    assert "hunter2" not in json.dumps(event.body())


def test_a_session_event_item_is_delivered_by_its_type_alone() -> None:
    image = {"pk": {"S": f"WS#{WID}#SESSION#S1"}, "sk": {"S": "EVT#0000000003"}, "type": {"S": "SessionEvent"},
             "event_type": {"S": "session.idle"}, "at": {"S": AT}, "data": {"S": json.dumps({"session_id": "S1"})}}
    event = event_of(image)
    assert event is not None and event.data == {"workspace_id": WID, "session_id": "S1", "status": "idle"}


def test_an_alert_is_a_usage_alert() -> None:
    image = {"pk": {"S": f"WS#{WID}"}, "sk": {"S": "ALERT#2026-12#tokens_per_month#080"}, "type": {"S": "Alert"},
             "limit": {"S": "tokens_per_month"}, "threshold": {"N": "80"}, "period": {"S": "2026-12"},
             "used": {"N": "160000"}, "allowed": {"N": "200000"}, "at": {"S": AT}}
    event = event_of(image)
    assert event is not None and event.event_type == "usage.alert"
    assert event.data == {"id": "2026-12#tokens_per_month#080", "limit": "tokens_per_month", "threshold_percent": 80,
                          "period": "2026-12", "used": 160000, "allowed": 200000}


@pytest.mark.parametrize("image", [
    run_event("run.started", {}), run_event("tool.called", {"input": "x"}), run_event("run.succeeded", {}, "Run"),
    {"pk": {"S": "USER#1"}, "sk": {"S": "META"}, "type": {"S": "RunEvent"}, "event_type": {"S": "run.failed"}},
])
def test_other_events_and_items_are_not_delivered(image: dict[str, Any]) -> None:
    assert event_of(image) is None


def test_a_delivery_never_looks_like_an_event_to_deliver() -> None:
    """The stream filter picks items by their ``event_type`` attribute: a delivery stores its event's type under
    another name, or each delivery would make another (a loop)."""
    delivery = WebhookDelivery(*WebhookDelivery.key(WID, "01J0000000000000000000HOOK", "01J0000000000000000000DLV1"),
                               event_type="run.succeeded", payload={}, attempt_limit=1)
    image = delivery.serialize(null_check=False)
    assert "event_type" not in image and image["delivered_event"] == {"S": "run.succeeded"}
    assert event_of({**image, "type": {"S": "WebhookDelivery"}}) is None


def test_code_that_reads_a_partition_whole_knows_the_webhook_items() -> None:
    """Offboarding reads ``WS#<wid>`` as plain ``BaseItem``s (every type): in a process that imported only
    it, a webhook's items must be known types (they were not, in a package of their own)."""
    import subprocess
    import sys
    from pathlib import Path

    layer = Path(__file__).resolve().parents[2] / "layers" / "common"
    code = """
from agenthq.offboarding import delete
from agenthq.store import BaseItem
for kind in ("Webhook", "WebhookDelivery"):
    item = BaseItem.from_raw_data({"pk": {"S": "WS#W"}, "sk": {"S": "X"}, "type": {"S": kind}})
    assert type(item).__name__ == kind, item
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=layer, capture_output=True, text=True,
                          env={"TABLE_NAME": "agenthq-unit", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 0, done.stderr
