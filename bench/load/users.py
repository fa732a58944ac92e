"""The load test's users (a locustfile): what a person using AgentHQ does, over HTTP and the WebSocket API.

Each user signs up (a workspace on the free tier), signs in, creates an agent, opens one WebSocket
connection (as the web console holds one) and tries a run, then — until the test ends — launches runs and
watches each
one live over that connection until it ends, reads the workspace's usage, lists its runs, reads a run's
events and signs in again, with a pause of 1–3 s between actions, as a person (or a script with manners)
does.

A 429 from a documented throttle (signup's 10 requests a second at the gateway, a tier's rate) is what a
real client meets and handles: it waits what ``Retry-After`` says and sends the request again. Such
answers are reported under their own name (``… [429, retried]``) as successes, apart from the request
kinds' latencies; every other unexpected answer is an error: a 5xx, a 4xx a correct client should never
get, a run that does not succeed, a WebSocket that fails or falls silent.

Run by ``python -m bench.load`` (``make load``); locust imports this module in its own process (it
patches the standard library with gevent), never in the local cloud's.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from locust import HttpUser, between, events, task

PASSWORD = "load-test-horse-battery-42"  # nosec B105  # a throwaway local account's password
RUN_INPUT = 'How much is 6 times 7?\n/tool calculator {"expression": "6 * 7"}'
WATCH_TIMEOUT = float(os.environ.get("AGENTHQ_LOAD_WATCH_TIMEOUT", "120"))
MAX_RETRIES = 20
TERMINAL = ("run.succeeded", "run.failed", "run.cancelled", "run.timed_out")


class AgentHQUser(HttpUser):
    """One person of one workspace (``host`` is the REST API's base URL with its stage, …/v1)."""

    wait_time = between(1, 3)
    ws_url = os.environ.get("AGENTHQ_LOAD_WS_URL", "ws://127.0.0.1:3001/v1")

    def on_start(self) -> None:
        self.email = f"load-{uuid.uuid4().hex}@example.com"
        self.run_ids: list[str] = []
        self.ready = False
        signup = self.call("POST", "/auth/signup", "POST /auth/signup", expect=201, authorized=False,
                           json={"email": self.email, "password": PASSWORD, "workspace_name": "Load Test Ltd"})
        if signup is None:
            return
        self.workspace_id = signup["workspace"]["id"]
        if not self.sign_in():
            return
        agent = self.call("POST", f"/workspaces/{self.workspace_id}/agents", "POST /workspaces/{wid}/agents",
                          expect=201, json={"name": "load-sre", "personality": "sre"})
        if agent is None:
            return
        self.agent_id = agent["id"]
        self.ws: Any = None
        self.tried_a_run = False
        self.ready = True

    def on_stop(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()

    def live(self) -> Any:
        """The user's WebSocket connection (connected on first use, and again after it was lost)."""
        from websockets.sync.client import connect

        if self.ws is None:
            started = time.perf_counter()  # a failure to connect is the run watch's error (the caller's)
            self.ws = connect(self.ws_url, additional_headers=self.auth_headers(), proxy=None, open_timeout=30,
                              close_timeout=5)
            self.report("WS", "connect", started, None)
        return self.ws

    # ------------------------------------------------------------------ what a user does

    @task(3)
    def launch_and_watch(self) -> None:
        """Launch a run and watch it live until it ends (the time to its last event is reported as
        ``WS run: launch → end``)."""
        if not self.ready:
            return
        self.tried_a_run = True
        started = time.perf_counter()
        try:
            ws = self.live()
            run = self.call("POST", f"/workspaces/{self.workspace_id}/agents/{self.agent_id}/runs",
                            "POST /workspaces/{wid}/agents/{aid}/runs", expect=202, json={"input": RUN_INPUT},
                            headers={"Idempotency-Key": uuid.uuid4().hex})
            if run is None:
                return
            self.run_ids.append(run["id"])
            ws.send(json.dumps({"action": "subscribe", "run_id": run["id"], "after": 0}))
            ended = self.watch(ws, run["id"], started)
            ws.send(json.dumps({"action": "unsubscribe", "run_id": run["id"]}))
        except Exception as exc:  # noqa: BLE001 - a failed WebSocket is an error of the run's watch
            self.report("WS", "run: launch → end", started, exc)
            if self.ws is not None:
                self.ws.close()
            self.ws = None
            return
        if ended is not None:
            error = None if ended == "run.succeeded" else AssertionError(f"the run ended with {ended}")
            self.report("WS", "run: launch → end", started, error)

    def watch(self, ws: Any, run_id: str, started: float) -> str | None:
        deadline = time.monotonic() + WATCH_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.report("WS", "run: launch → end", started, TimeoutError(f"no end after {WATCH_TIMEOUT} s"))
                return None
            frame = json.loads(ws.recv(timeout=remaining))
            if frame.get("type") == "error":
                self.report("WS", "run: launch → end", started, AssertionError(f"error frame {frame}"))
                return None
            if frame.get("type") == "run.event" and frame.get("run_id") == run_id:
                kind = frame["event"]["type"]
                if kind in TERMINAL:
                    return str(kind)

    @task(2)
    def read_usage(self) -> None:
        if self.first_things_first():
            self.call("GET", f"/workspaces/{self.workspace_id}/usage?period=day", "GET /workspaces/{wid}/usage")

    @task(2)
    def list_runs(self) -> None:
        if self.first_things_first():
            self.call("GET", f"/workspaces/{self.workspace_id}/runs", "GET /workspaces/{wid}/runs")

    @task(1)
    def read_events(self) -> None:
        if self.first_things_first() and self.run_ids:
            self.call("GET", f"/workspaces/{self.workspace_id}/runs/{self.run_ids[-1]}/events?after=0",
                      "GET /workspaces/{wid}/runs/{rid}/events")

    @task(1)
    def sign_in_again(self) -> None:
        if self.first_things_first():
            self.sign_in()

    def first_things_first(self) -> bool:
        """A new user tries a run before anything else (a task, so that the test's end lets it finish)."""
        if not self.ready:
            return False
        if not self.tried_a_run:
            self.launch_and_watch()
            return False
        return True

    # ------------------------------------------------------------------ HTTP with manners

    def sign_in(self) -> bool:
        tokens = self.call("POST", "/auth/login", "POST /auth/login", expect=200, authorized=False,
                           json={"email": self.email, "password": PASSWORD})
        if tokens is None:
            return False
        self.access_token = tokens["access_token"]
        return True

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def call(self, method: str, path: str, name: str, expect: int = 200, authorized: bool = True,
             json: Any = None, headers: dict[str, str] | None = None) -> Any:
        """One request, sent again after ``Retry-After`` when a documented throttle answers 429; its
        body when it answered ``expect``, else None (and an error reported)."""
        all_headers = {**(self.auth_headers() if authorized else {}), **(headers or {})}
        for _ in range(MAX_RETRIES):
            with self.client.request(method, path, name=name, json=json, headers=all_headers,
                                     catch_response=True) as response:
                if response.status_code == 429 and response.headers.get("Retry-After"):
                    response.request_meta["name"] = f"{name} [429, retried]"
                    response.success()
                    wait = float(response.headers["Retry-After"])
                elif response.status_code == expect:
                    response.success()
                    return response.json() if response.content else {}
                else:
                    response.failure(f"{response.status_code} {_error_code(response)}")
                    return None
            time.sleep(wait)
        return None

    def report(self, kind: str, name: str, started: float, error: BaseException | None) -> None:
        events.request.fire(request_type=kind, name=name, response_time=(time.perf_counter() - started) * 1000,
                            response_length=0, exception=error, context={})


def _error_code(response: Any) -> str:
    """The error body's code (``internal_error`` …), so that failures group by kind, not by request id."""
    try:
        return str(response.json()["error"]["code"])
    except Exception:  # noqa: BLE001 - not our error body: a gateway page, a dropped connection
        return (response.text or type(response.error).__name__ if response.error else "")[:80]
