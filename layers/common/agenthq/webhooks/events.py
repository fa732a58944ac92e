"""Which stored events webhooks deliver, and what a delivery's body says.

Events are picked by type from the table's stream, whatever item stored them: a run's events
(``RunEvent``, by ``event_type``), the workspace's alerts (``Alert``, as ``usage.alert``), and any
later event item (a type named ``…Event``) carrying an ``event_type`` of :data:`EVENT_TYPES`
(``approval.requested``, ``session.idle``)
— the stream mapping's filter in template.yaml names the same types.

A body is ``{"type", "timestamp", "data"}`` (the spec's shape). ``data`` carries ids and statuses
only, copied field by field from an allow-list: never a run's input or output, a tool's input, a
prompt, a header or a secret (tests/unit/test_webhook_events.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

RUN_EVENTS = ("run.succeeded", "run.failed", "run.cancelled", "run.timed_out", "run.paused")
EVENT_TYPES: tuple[str, ...] = (*RUN_EVENTS, "approval.requested", "usage.alert", "session.idle")
TEST_EVENT = "webhook.test"

#: The fields of an event's stored data a body may carry (ids, statuses, reasons, counts).
_ALLOWED = ("run_id", "root_run_id", "parent_run_id", "approval_id", "session_id", "agent_id", "tool",
            "status", "reason", "limit", "waiting_for")


@dataclass(frozen=True)
class Event:
    """One event a workspace's webhooks may be sent: its type, a stable id, and the body's data."""

    workspace_id: str
    event_type: str
    event_id: str  # stable for the stored item: a redelivered stream record makes the same deliveries
    at: str
    data: dict[str, Any]

    def body(self) -> dict[str, Any]:
        return {"type": self.event_type, "timestamp": self.at, "data": self.data}


def _s(image: dict[str, Any], name: str) -> str:
    return str((image.get(name) or {}).get("S") or "")


def _n(image: dict[str, Any], name: str) -> int:
    return int((image.get(name) or {}).get("N") or 0)


def event_of(new_image: dict[str, Any]) -> Event | None:
    """The deliverable event a stream record's new image stores, if any."""
    pk, sk = _s(new_image, "pk"), _s(new_image, "sk")
    parts = pk.split("#")
    if len(parts) < 2 or parts[0] != "WS" or not parts[1]:
        return None
    workspace_id = parts[1]
    if _s(new_image, "type") == "Alert" and len(parts) == 2:
        alert = {"id": sk.removeprefix("ALERT#"), "limit": _s(new_image, "limit"), "threshold_percent": _n(new_image, "threshold"),
                "period": _s(new_image, "period"), "used": _n(new_image, "used"), "allowed": _n(new_image, "allowed")}
        return Event(workspace_id, "usage.alert", f"{pk}|{sk}", _s(new_image, "at"), alert)
    event_type = _s(new_image, "event_type")
    if event_type not in EVENT_TYPES or event_type == "usage.alert" or not _s(new_image, "type").endswith("Event"):
        return None  # only stored events (RunEvent, and the like): never a delivery or any other item
    try:
        stored = json.loads(_s(new_image, "data") or "{}")
    except ValueError:
        stored = {}
    data: dict[str, Any] = {"workspace_id": workspace_id}
    if len(parts) == 4 and parts[2] == "RUN":
        data["run_id"] = parts[3]
    if isinstance(stored, dict):
        for name in _ALLOWED:
            value = stored.get(name)
            if isinstance(value, (str, int, bool)) and not (isinstance(value, str) and len(value) > 200):
                data.setdefault(name, value)
        error = stored.get("error")
        if isinstance(error, dict) and isinstance(error.get("reason"), str):
            data["error"] = {"reason": error["reason"][:200]}
    if event_type in RUN_EVENTS:
        data.setdefault("status", event_type.removeprefix("run."))
    elif event_type == "approval.requested":
        data.setdefault("status", "pending")
    elif event_type == "session.idle":
        data.setdefault("status", "idle")
    return Event(workspace_id, event_type, f"{pk}|{sk}", _s(new_image, "at"), data)
