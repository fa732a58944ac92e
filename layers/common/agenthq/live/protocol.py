"""The WebSocket API's frames (docs/api.md, "Live status").

Client → server: ``{"action": "subscribe", "run_id": "…", "after": <seq>}``,
``{"action": "subscribe", "session_id": "…", "after": <session seq>}``,
``{"action": "subscribe", "workspace": true}``, ``{"action": "unsubscribe", …}``,
``{"action": "ping"}``. Server → client: ``run.event``, ``session.event``, ``usage.alert``,
``subscribed``, ``unsubscribed``, ``pong``, ``error``.

API Gateway's limits: a frame carries at most 32 KB; an event whose frame
would be larger is sent with ``truncated: true`` and without ``data`` (the
client fetches it over REST: ``GET …/runs/{rid}/events?after=<seq - 1>``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator

from agenthq.errors import InvalidRequest

MAX_FRAME_BYTES = 32 * 1024
RUN_ID = re.compile(r"^[0-9A-Za-z]{1,64}$")


class Subscription(BaseModel):
    """What a subscribe or unsubscribe names: one run (and where to start), or the workspace."""

    model_config = ConfigDict(extra="ignore")

    action: str
    run_id: str | None = None
    session_id: str | None = None
    after: StrictInt = Field(default=0, ge=0, le=9_999_999_999)
    workspace: StrictBool = False

    @field_validator("run_id", "session_id")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        if value is not None and not RUN_ID.match(value):
            raise ValueError("must be an id")
        return value

    def target(self) -> str | None:
        """The run id, or None for the workspace (a session's: :meth:`session`)."""
        if [self.workspace, self.run_id is not None, self.session_id is not None].count(True) != 1:
            raise InvalidRequest("Name one of a run_id, a session_id or \"workspace\": true.",
                                 details=[{"field": "run_id",
                                           "message": "one of run_id, session_id or workspace: true"}])
        return self.run_id

    def session(self) -> str | None:
        """The session id this frame names (after :meth:`target` checked it names one thing)."""
        self.target()
        return self.session_id


def parse_subscription(body: str | None) -> Subscription:
    try:
        return Subscription.model_validate(json.loads(body or ""))
    except (ValueError, ValidationError) as exc:
        details = ([{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
                   if isinstance(exc, ValidationError) else [])
        raise InvalidRequest("The frame is not a valid subscribe/unsubscribe.", details=details) from None


def encode(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, separators=(",", ":"), default=str).encode("utf-8")


def run_event_frame(run_id: str, event: dict[str, Any]) -> bytes:
    """A run event as a frame of at most MAX_FRAME_BYTES (``truncated`` without its data if need be)."""
    data = encode({"type": "run.event", "run_id": run_id, "seq": event["seq"], "event": event})
    if len(data) <= MAX_FRAME_BYTES:
        return data
    head = {k: v for k, v in event.items() if k != "data"}
    return encode({"type": "run.event", "run_id": run_id, "seq": event["seq"], "truncated": True, "event": head})


def session_event_frame(session_id: str, event: dict[str, Any]) -> bytes:
    """A session event (``{seq, run_id, run_seq, type, at, data}``, ``seq`` the session's) as a frame of
    at most MAX_FRAME_BYTES (``truncated`` without its data if need be: fetch it with
    ``GET …/sessions/{sid}/events?after=<seq - 1>``)."""
    data = encode({"type": "session.event", "session_id": session_id, "seq": event["seq"], "event": event})
    if len(data) <= MAX_FRAME_BYTES:
        return data
    head = {k: v for k, v in event.items() if k != "data"}
    return encode({"type": "session.event", "session_id": session_id, "seq": event["seq"], "truncated": True,
                   "event": head})


def alert_frame(workspace_id: str, alert: dict[str, Any]) -> bytes:
    return encode({"type": "usage.alert", "workspace_id": workspace_id, "alert": alert})


def error_frame(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if details:
        frame["details"] = details
    return frame
