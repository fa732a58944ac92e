"""`make dev`'s program as a newcomer runs it: a separate process, real HTTP,
Ctrl-C, restart. (Its set-up half, the Makefile, is exercised by CI itself.)"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from botocore.credentials import Credentials

from agenthq_cli.signing import SigV4
from local.template import ROOT
from tests.support import PASSWORD, bearer, signup

pytestmark = pytest.mark.slow


class DevServer:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.rest_url = ""
        self.console_url = ""
        self.ws_url = ""
        self.dynamodb_url = ""
        self.operator_key = ("", "")  # the local operator's access key id and secret, as printed

    def start(self, timeout: float = 60) -> float:
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "ANTHROPIC_"))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local", "--port", "0", "--ws-port", "0", "--data-dir", str(self.data_dir)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        assert self.process.stdout is not None
        while time.monotonic() - started < timeout:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if m := re.search(r"REST API\s+(http://\S+)", line):
                self.rest_url = m.group(1)
            if m := re.search(r"Web console\s+(http://\S+)", line):
                self.console_url = m.group(1)
            if m := re.search(r"WebSocket API\s+(ws://\S+)", line):
                self.ws_url = m.group(1)
            if m := re.search(r"DynamoDB Local\s+(http://\S+)", line):
                self.dynamodb_url = m.group(1)
            if m := re.search(r"AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)", line):
                self.operator_key = (m.group(1), m.group(2))
            if "Press Ctrl-C" in line:
                return time.monotonic() - started
        raise AssertionError("the local cloud did not come up:\n" + "".join(self.output))

    @property
    def operator(self) -> SigV4:
        """Signs as the operator with the credentials the banner printed."""
        assert all(self.operator_key), "make dev prints the operator's local credentials:\n" + "".join(self.output)
        return SigV4(Credentials(*self.operator_key), "us-east-1")

    def interrupt(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=timeout)
        self.output.append(out)
        return self.process.returncode

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture()
def dev(tmp_path):
    servers: list[DevServer] = []

    def start() -> DevServer:
        server = DevServer(tmp_path / "data")
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.kill()


def test_make_dev_serves_health_and_stops_cleanly_on_ctrl_c(dev):
    server = dev()
    response = httpx.get(f"{server.rest_url}/health", timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"dynamodb": "ok", "stepfunctions": "ok"}
    console = httpx.get(server.console_url, timeout=30)  # the web console's URL, as printed
    assert console.status_code == 200 and "js/main.js" in console.text
    assert httpx.get(f"{server.console_url}config.json", timeout=30).json()["live_url"] == server.ws_url
    assert server.interrupt() == 0
    assert "Stopped" in "".join(server.output)
    assert "Traceback" not in "".join(server.output)


def test_restarting_keeps_the_data(dev):
    server = dev()
    with httpx.Client(base_url=server.rest_url, timeout=30) as api:
        owner = signup(api, tier="pro", operator=server.operator)
        agent = owner.post("/agents", json={"name": "keeper", "personality": "architect"})
        assert agent.status_code == 201, agent.text
    assert server.interrupt() == 0

    operator_key = server.operator_key
    server = dev()
    assert server.operator_key == operator_key, "the operator's local credentials are kept in the data folder"
    with httpx.Client(base_url=server.rest_url, timeout=30) as api:
        # the token issued before the restart still works: the signing keys were kept
        assert api.get(f"/workspaces/{owner.workspace_id}/agents", headers=owner.headers).json()["items"][0][
            "name"] == "keeper"
        # the account, its workspace and its API Gateway key (restored into moto) are all there
        login = api.post("/auth/login", json={"email": owner.email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        workspace = api.get(f"/workspaces/{owner.workspace_id}", headers=bearer(login.json()["access_token"]))
        assert workspace.status_code == 200 and workspace.json()["tier"] == "pro"
    assert server.interrupt() == 0
