"""The API keeps its contract: ``GET /v1/openapi.json`` is served without
authentication, and schemathesis fuzzes every operation of it on the local
cloud — as a signed-up owner (bearer token), the operator routes signed with
SigV4 — checking that nothing answers a 5xx and that every response (status,
content type, body, headers) is one the document describes.

Bounded to stay a few minutes on a small machine: few examples per operation,
no deadline, derandomized (the same cases every run), no shrinking."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from scripts.openapi import DOCUMENT
from tests.support import (
    OperatorSigning,
    Tenant,
    client_for,
    create_agent,
    launch,
    set_tier,
    signup,
    wait_for,
)

pytestmark = pytest.mark.slow

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
EXAMPLES_PER_OPERATION = 12
# Enough for the fuzzing to meet the throttle only when it means to (the free tier's 5 rps would answer 429s).
FAST_LANE = {"api_rps": 1000, "api_burst": 2000, "api_calls_per_day": 1_000_000, "runs_per_day": 2000}


def test_the_contract_is_served_without_authentication(api):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.json() == json.loads(DOCUMENT.read_text(encoding="utf-8"))


@dataclass
class Fuzzed:
    """The workspace schemathesis works in, and the ids its paths may name."""

    tenant: Tenant
    path_ids: dict[str, str]
    spare_workspace_id: str  # what the operator's PATCH may change (not the fuzzed workspace's tier)
    logout_token: str  # a session of its own for /auth/logout, which ends it


@pytest.fixture(scope="module")
def fuzzed(cloud):
    with client_for(cloud) as api:
        tenant = signup(api, "fuzzed", workspace_name="Fuzz Works")
        set_tier(api, tenant.workspace_id, "enterprise", limit_overrides=FAST_LANE)
        agent = create_agent(tenant, "target", "sre")
        run = wait_for(tenant, launch(tenant, agent["id"], "Say hello.").json()["id"])
        hook = tenant.post("/webhooks", json={"url": "http://127.0.0.1:9/fuzzed", "events": ["run.failed"]}).json()
        ping = tenant.post(f"/webhooks/{hook['id']}/test").json()
        session = tenant.post(f"/agents/{agent['id']}/sessions", json={"title": "Fuzzed"}).json()
        schedule = tenant.post(f"/agents/{agent['id']}/schedules",
                               json={"cron": "0 9 * * *", "timezone": "UTC", "input": "Fuzzed."})
        assert schedule.status_code == 201, schedule.text
        asking = create_agent(tenant, "asking", "sre", tools=["calculator"], tool_policies={"calculator": "ask"})
        waiting = launch(tenant, asking["id"], '/tool calculator {"expression": "1 + 1"}').json()["id"]
        approval = _pending_approval(tenant, waiting)
        spare = signup(api, "spare", workspace_name="Spare Parts")
        second_session = signup(api, "leaver", workspace_name="Leavers")
        server = tenant.post("/mcp-servers", json={"name": "fuzzed", "url": "http://127.0.0.1:9/mcp"})
        assert server.status_code == 201, server.text
        yield Fuzzed(tenant=tenant, path_ids={"aid": agent["id"], "rid": run["id"], "uid": tenant.user_id,
                                              "sid": session["id"], "scid": schedule.json()["id"], "version": "1",
                                              "apid": approval, "webhook_id": hook["id"], "delivery_id": ping["id"],
                                              "mid": server.json()["id"]},
                     spare_workspace_id=spare.workspace_id, logout_token=second_session.access_token)


def _pending_approval(tenant: Tenant, run_id: str) -> str:
    """The approval ``run_id`` waits for (a decided one answers 409, which the contract documents)."""
    for _ in range(300):
        items = tenant.get("/approvals", params={"run_id": run_id}).json()["items"]
        if items:
            return str(items[0]["id"])
        time.sleep(0.1)
    raise AssertionError("the run never asked for approval")


@pytest.fixture(scope="module")
def contract(cloud):
    with client_for(cloud) as api:
        document = api.get("/openapi.json").json()
    config = schemathesis.Config.from_dict({"generation": {
        "mode": "all", "max-examples": EXAMPLES_PER_OPERATION, "deterministic": True, "no-shrink": True,
        "with-security-parameters": False}})
    return schemathesis.openapi.from_dict(document, config=config)


schema = schemathesis.pytest.from_fixture("contract")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_the_contract(case, cloud, fuzzed):
    headers = {}
    auth = None
    path = case.operation.path
    if path.startswith("/admin/"):
        auth = OperatorSigning(cloud)
        if "wid" in (case.path_parameters or {}) and len(str(case.path_parameters["wid"])) % 2 == 0:
            case.path_parameters["wid"] = fuzzed.spare_workspace_id  # not the fuzzed one: its tier stays
    elif path == "/auth/logout":
        headers["Authorization"] = f"Bearer {fuzzed.logout_token}"
    elif case.operation.definition.raw.get("security"):
        headers["Authorization"] = f"Bearer {fuzzed.tenant.access_token}"
        if "wid" in (case.path_parameters or {}) and not (path == "/workspaces/{wid}" and case.method == "DELETE"):
            case.path_parameters["wid"] = fuzzed.tenant.workspace_id  # else every call is the 404 of another's
        for name, real in fuzzed.path_ids.items():
            # Half the cases name something that exists (deeper code runs), half a generated id (404 paths).
            if name in (case.path_parameters or {}) and len(str(case.path_parameters[name])) % 2 == 0:
                case.path_parameters[name] = real
    response = case.call(base_url=cloud.rest_url, headers=headers, auth=auth, timeout=60)
    case.validate_response(response, checks=CHECKS, headers=headers)
