"""`make dev`'s program as a newcomer runs it: a separate process, real HTTP,
Ctrl-C, restart. (Its set-up half, the Makefile, is exercised by CI itself.)"""

from __future__ import annotations

import sys

import httpx
import pytest

from tests.support import PASSWORD, DevServer, bearer, signup

pytestmark = pytest.mark.slow


@pytest.fixture()
def dev(tmp_path):
    servers: list[DevServer] = []

    def start() -> DevServer:
        server = DevServer([sys.executable, "-m", "local", "--port", "0", "--ws-port", "0",
                            "--data-dir", str(tmp_path / "data")])
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
