"""Watching a run live over the WebSocket API.

``RunWatcher`` connects (the stored token or API key as a header), subscribes
to the run with ``after=<last seq shown>``, and yields the run's events in seq
order, each once: a seq it already showed is dropped, one that comes early
(a live event can overtake the replay) is held until the seqs before it have
come. When the connection drops it reconnects with ``after`` = the last seq
shown, so nothing is missed or shown twice. It sends ``ping`` well before the
API's 10-minute idle limit. It follows a replay page by page (``more``), and
when its subscribes are ``rate_limited`` it waits ``retry_after`` and subscribes
again from the last seq shown. It stops after the run's last event.

``SessionWatcher`` does the same for a session's one cursor (``session_id``,
``session.event`` frames with the session's seq), until its ``until`` says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

TERMINAL = {"run.succeeded": 0, "run.failed": 1, "run.timed_out": 1, "run.cancelled": 2}
HEARTBEAT_SECONDS = 5 * 60  # API Gateway closes a connection idle for 10 minutes


def exit_status(event_type: str) -> int:
    """``--exit-status``: 0 succeeded, 1 failed or timed out, 2 cancelled (as ``gh run watch``)."""
    return TERMINAL.get(event_type, 1)


class WatchError(Exception):
    """The run cannot be watched (no such run, not allowed, not authenticated)."""


class RunWatcher:
    #: The frame's field that names what is watched, and the type of its event frames.
    target, frame_type = "run_id", "run.event"

    def __init__(self, ws_url: str, headers: dict[str, str], run_id: str, after: int = 0,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, max_reconnects: int = 20,
                 on_reconnect: Callable[[int], None] | None = None) -> None:
        self.ws_url = ws_url
        self.headers = headers
        self.run_id = run_id  # (a session's id for a SessionWatcher)
        self.last = after
        self.heartbeat_seconds = heartbeat_seconds
        self.max_reconnects = max_reconnects
        self.on_reconnect = on_reconnect
        self.reconnects = 0
        self._held: dict[int, dict[str, Any]] = {}

    def events(self) -> Iterator[dict[str, Any]]:
        """The run's events after ``after``, in seq order, until its last."""
        from websockets.exceptions import ConnectionClosed, InvalidStatus
        from websockets.sync.client import connect

        while True:
            try:
                with connect(self.ws_url, additional_headers=self.headers, proxy=None, open_timeout=30,
                             max_size=2 ** 20) as ws:
                    ws.send(json.dumps({"action": "subscribe", self.target: self.run_id, "after": self.last}))
                    for event in self._read(ws):
                        yield event
                        if self.ends_with(event):
                            return
            except InvalidStatus as refused:
                raise WatchError(f"the WebSocket API refused the connection ({refused.response.status_code})") \
                    from None
            except (ConnectionClosed, OSError, TimeoutError):
                self.reconnects += 1
                if self.reconnects > self.max_reconnects:
                    raise WatchError("the connection keeps dropping") from None
                if self.on_reconnect:
                    self.on_reconnect(self.last)
                time.sleep(min(5.0, 0.2 * 2 ** min(self.reconnects, 5)))
                self._held.clear()

    def _read(self, ws: Any) -> Iterator[dict[str, Any]]:
        last_sent = time.monotonic()
        while True:
            if time.monotonic() - last_sent >= self.heartbeat_seconds:
                ws.send(json.dumps({"action": "ping"}))
                last_sent = time.monotonic()
            try:
                raw = ws.recv(timeout=max(0.1, self.heartbeat_seconds - (time.monotonic() - last_sent)))
            except TimeoutError:
                continue
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "error" and frame.get("code") == "rate_limited":  # too many subscribes (pages) at once
                time.sleep(min(30.0, float(frame.get("retry_after") or 1)))
                ws.send(json.dumps({"action": "subscribe", self.target: self.run_id, "after": self.last}))
                last_sent = time.monotonic()
                continue
            if kind == "error":
                raise WatchError(f"{frame.get('message')} ({frame.get('code')})")
            if kind == "subscribed" and frame.get("more"):  # the replay stopped at its page size: next page
                ws.send(json.dumps({"action": "subscribe", self.target: self.run_id, "after": frame["through"]}))
            if kind != self.frame_type or frame.get(self.target) != self.run_id:
                continue
            yield from self._in_order(frame)

    def ends_with(self, event: dict[str, Any]) -> bool:
        """Whether the watch stops after ``event`` (a run's: after its last)."""
        return event["type"] in TERMINAL

    def _in_order(self, frame: dict[str, Any]) -> Iterator[dict[str, Any]]:
        seq = int(frame["seq"])
        if seq <= self.last:
            return  # already shown (the replay and the live stream overlap at the seam)
        self._held[seq] = {**frame["event"], **({"truncated": True} if frame.get("truncated") else {})}
        while self.last + 1 in self._held:
            self.last += 1
            yield self._held.pop(self.last)


class SessionWatcher(RunWatcher):
    """A session's events (every run of it and their delegated children) under the session's seq,
    in order, each once; it stops when ``until(event)`` is true (by default: never)."""

    target, frame_type = "session_id", "session.event"

    def __init__(self, ws_url: str, headers: dict[str, str], session_id: str, after: int = 0,
                 until: Callable[[dict[str, Any]], bool] | None = None, **kwargs: Any) -> None:
        super().__init__(ws_url, headers, session_id, after, **kwargs)
        self.until = until or (lambda event: False)

    def ends_with(self, event: dict[str, Any]) -> bool:
        return self.until(event)
