"""The API's contract (functions/openapi/openapi.json) is made from the code,
equals the routes of template.yaml, and says what the API answers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agenthq.openapi import API_KEY, BEARER, OUTSIDE_THE_CONTRACT, SIGV4, operations
from local.template import ROOT, load_template, rest_api
from scripts import openapi as generator

DOCUMENT = json.loads(generator.DOCUMENT.read_text(encoding="utf-8"))
ALL_ROUTES = rest_api(load_template()).routes
ROUTES = [route for route in ALL_ROUTES if (route.method, route.path) not in OUTSIDE_THE_CONTRACT]


def each_operation():
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_the_committed_document_is_the_one_the_code_makes():
    assert generator.render(generator.generate()) == generator.DOCUMENT.read_text(encoding="utf-8"), \
        "functions/openapi/openapi.json is stale: run `make openapi`"


def test_its_operations_are_the_template_routes_exactly():
    in_template = {(route.method, route.path) for route in ROUTES}
    in_document = operations(DOCUMENT)
    assert in_document - in_template == set(), "in the apps but not routed by template.yaml"
    assert in_template - in_document == set(), "routed by template.yaml but no app documents it"


def test_only_the_web_console_is_left_out_of_the_contract():
    # The console's pages are for browsers, not an API to call (docs/decisions.md, 60): exactly its
    # routes are outside the contract, each public and served by ConsoleFunction.
    left_out = [route for route in ALL_ROUTES if (route.method, route.path) in OUTSIDE_THE_CONTRACT]
    assert {(route.method, route.path) for route in left_out} == OUTSIDE_THE_CONTRACT
    assert {route.function for route in left_out} == {"ConsoleFunction"}
    assert not any(route.authorized or route.iam_auth or route.api_key_required for route in left_out)
    assert not any(path.startswith("/console") for path in DOCUMENT["paths"])


def test_each_operation_asks_for_the_authentication_its_route_has():
    expected = {}
    for route in ROUTES:
        if route.iam_auth:
            expected[(route.method, route.path)] = [{SIGV4: []}]
        elif route.authorized:
            expected[(route.method, route.path)] = [{BEARER: []}, {API_KEY: []}]
        else:
            expected[(route.method, route.path)] = []
    assert {(m, p): op["security"] for m, p, op in each_operation()} == expected
    assert set(DOCUMENT["components"]["securitySchemes"]) == {BEARER, API_KEY, SIGV4}
    assert DOCUMENT["components"]["securitySchemes"][SIGV4]["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_paths_are_under_the_stage_given_once_in_servers():
    assert all(server["url"].endswith("/v1") for server in DOCUMENT["servers"])
    assert not any(path.startswith("/v1") for path in DOCUMENT["paths"])


def test_invalid_input_is_400_never_422_and_every_error_has_the_error_body():
    for method, path, operation in each_operation():
        responses = operation["responses"]
        assert "422" not in responses, (method, path)
        takes_input = "requestBody" in operation or any(p["in"] != "path" for p in operation.get("parameters", []))
        assert ("400" in responses) == takes_input, (method, path)
        assert "429" in responses and "Retry-After" in responses["429"]["headers"], (method, path)
        for status, response in responses.items():
            if status.startswith("4"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    assert "HTTPValidationError" not in DOCUMENT["components"]["schemas"]
    error = DOCUMENT["components"]["schemas"]["ErrorInfo"]
    assert set(error["required"]) == {"code", "message", "request_id"}
    assert "details" in error["properties"]


@pytest.mark.parametrize("method, path, statuses", [
    ("POST", "/workspaces/{wid}/agents", {"400", "401", "403", "404", "409", "413", "429"}),
    ("POST", "/workspaces/{wid}/agents/{aid}/runs", {"400", "401", "403", "404", "409", "413", "429", "503"}),
    ("POST", "/workspaces/{wid}/runs/{rid}/cancel", {"401", "403", "404", "409", "429"}),
    ("POST", "/auth/signup", {"400", "409", "413", "429", "503"}),
    ("POST", "/auth/login", {"400", "401", "403", "413", "429", "503"}),
    ("GET", "/admin/workspaces/{wid}", {"403", "404", "429"}),
    ("GET", "/health", {"429", "503"}),
])
def test_routes_document_the_errors_they_answer(method, path, statuses):
    responses = DOCUMENT["paths"][path][method.lower()]["responses"]
    assert {s for s in responses if int(s) >= 400} == statuses


def test_every_list_bounds_its_limit_from_1_to_100():
    lists = [(m, p, op) for m, p, op in each_operation()
             if any(param["name"] == "cursor" for param in op.get("parameters", []))]
    assert len(lists) >= 6
    for method, path, operation in lists:
        (limit,) = [p["schema"] for p in operation["parameters"] if p["name"] == "limit"]
        assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 100), (method, path)


def test_the_request_bodies_are_models_with_examples():
    schemas = DOCUMENT["components"]["schemas"]
    for name in ("SignupRequest", "AgentCreate", "RunLaunchRequest", "ApiKeyCreate", "ErrorBody"):
        assert schemas[name].get("examples"), name


def test_neither_making_nor_serving_the_document_imports_the_model_sdk():
    # DESIGN §8: no HTTP function imports `anthropic` (2.6 s of cold start).
    probe = ("import sys; from scripts import openapi; openapi.generate(); "
             "import importlib.util as u; s = u.spec_from_file_location('served', 'functions/openapi/app.py'); "
             "m = u.module_from_spec(s); s.loader.exec_module(m); assert m.contract() == openapi.generate(); "
             "print('anthropic' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "TABLE_NAME": "agenthq-probe"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# Free-form by nature (a JWK set, this document) or not modelled yet (the operator's reports).
FREE_FORM = {("GET", "/auth/jwks"), ("GET", "/openapi.json"), ("GET", "/admin/workspaces"),
             ("GET", "/admin/workspaces/{wid}"), ("PATCH", "/admin/workspaces/{wid}"), ("DELETE", "/admin/workspaces/{wid}"),
             ("GET", "/admin/usage")}


def test_success_bodies_are_named_models():
    for method, path, operation in each_operation():
        for status, response in operation["responses"].items():
            if status.startswith("2") and "content" in response and (method, path) not in FREE_FORM:
                schema = response["content"]["application/json"]["schema"]
                assert "$ref" in schema, (method, path, status, schema)
