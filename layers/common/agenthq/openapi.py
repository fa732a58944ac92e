"""The API's contract: one OpenAPI document made from every function's FastAPI app.

Each REST function is a FastAPI app of its own; :func:`contract` merges their
schemas into the one document ``GET /v1/openapi.json`` serves, and makes it say
what the API does rather than what FastAPI assumes:

- invalid input is a **400** with the error body (``agenthq.http`` maps
  validation errors so), never FastAPI's 422;
- every operation lists the errors a route of its kind can answer, each with
  the error body (:class:`agenthq.http.ErrorBody`): 400 when it takes input,
  401/403 behind the authorizer, 403 for the operator's SigV4 routes
  (unsigned or wrongly signed, docs/decisions.md 21), 404 when the path
  names something, 413 when it takes a body, 429 everywhere (the stage's
  throttle, the tier's usage plan); the route's own (409, ``plan_limit``,
  503 …) come from its ``responses=documented(...)``;
- the security each route needs, as the template configures it: the bearer
  JWT or an ``x-api-key`` behind the authorizer, SigV4 for ``/admin/*``, none
  for the public routes.

Paths are the template's resource paths (``/workspaces/{wid}``); the stage
``/v1`` is in ``servers``. The document is made at build time (``make
openapi`` writes functions/openapi/openapi.json, a test keeps it current), so
serving it imports no other function's code.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from agenthq.errors import (
    AppError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
)
from agenthq.http import ErrorBody, current_operator, current_principal

TITLE = "AgentHQ API"
DESCRIPTION = ("Claude agents as a service: workspaces, API keys, agents, runs and their events, usage. "
               "Every error has the body `{\"error\": {\"code\", \"message\", \"request_id\", \"details\"?}}`; "
               "see docs/api.md.")
SERVERS = [
    {"url": "https://{api_id}.execute-api.{region}.amazonaws.com/v1", "description": "AWS (the stack's RestApi)",
     "variables": {"api_id": {"default": "api-id", "description": "the RestApi's id (output ApiUrl)"},
                   "region": {"default": "us-east-1"}}},
    {"url": "http://127.0.0.1:3000/v1", "description": "the local cloud (make dev)"},
]

BEARER, API_KEY, SIGV4 = "bearerJwt", "apiKey", "sigv4"
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
             "description": "An access token (15 minutes) from signup, login or refresh. It names one workspace."},
    API_KEY: {"type": "apiKey", "in": "header", "name": "x-api-key",
              "description": "An AgentHQ API key (`ahq_…`): acts as its workspace, within its scopes."},
    SIGV4: {"type": "apiKey", "in": "header", "name": "Authorization", "x-amazon-apigateway-authtype": "awsSigv4",
            "description": "The operator's routes: AWS Signature Version 4 (service `execute-api`) by credentials "
                           "whose IAM policy allows `execute-api:Invoke` on them. Unsigned requests are 403."},
}

ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorBody"}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.",
                               "schema": {"type": "integer", "minimum": 1}}}

#: Routes of template.yaml that are not the API and so not in its contract: the web console's pages
#: (ConsoleFunction: HTML, CSS and JavaScript for browsers, no JSON to call; docs/decisions.md, 60).
#: The drift test compares the contract with every other route.
OUTSIDE_THE_CONTRACT = frozenset({("GET", "/console"), ("GET", "/console/{proxy+}")})

#: The kinds of authentication a route has (its ``Auth`` in template.yaml).
PUBLIC, WORKSPACE, OPERATOR = "public", "workspace", "operator"


def contract(apps: Iterable[FastAPI], version: str) -> dict[str, Any]:
    """One OpenAPI 3.1 document for ``apps`` (each a function's app)."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": version, "description": DESCRIPTION},
        "servers": copy.deepcopy(SERVERS),
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": copy.deepcopy(SECURITY_SCHEMES)},
    }
    for app in apps:
        _merge(document, app)
    schemas = document["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body: never answered
        schemas.pop(unused, None)
    schemas.update(_error_schemas())  # as the edge answers it (routes' `documented` errors name the same model)
    document["paths"] = {path: document["paths"][path] for path in sorted(document["paths"])}
    document["components"]["schemas"] = {name: schemas[name] for name in sorted(schemas)}
    return document


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """The document's (METHOD, path) pairs."""
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


# --------------------------------------------------------------------------- merging


def _merge(document: dict[str, Any], app: FastAPI) -> None:
    spec = get_openapi(title=TITLE, version=document["info"]["version"], routes=app.routes)
    auth = {(method.lower(), route.path): _auth_of(route)
            for route in app.routes if isinstance(route, APIRoute) and route.include_in_schema
            for method in route.methods or ()}
    for path, item in spec.get("paths", {}).items():
        target = document["paths"].setdefault(path, {})
        for method, operation in item.items():
            if method in target:
                raise ValueError(f"{method.upper()} {path} is in two functions' apps")
            target[method] = _as_documented(operation, auth[(method, path)])
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        _add_schema(document["components"]["schemas"], name, schema)


def _add_schema(schemas: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    if name in schemas and schemas[name] != schema:
        raise ValueError(f"two different schemas are named {name!r}: rename one of the models")
    schemas[name] = schema


def _auth_of(route: APIRoute) -> str:
    calls: set[Callable[..., Any]] = set()
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        if dependant.call is not None:
            calls.add(dependant.call)
        pending.extend(dependant.dependencies)
    if current_operator in calls:
        return OPERATOR
    if current_principal in calls:
        return WORKSPACE
    return PUBLIC


def _as_documented(operation: dict[str, Any], auth: str) -> dict[str, Any]:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    parameters = operation.get("parameters", [])
    for parameter in parameters:  # an optional parameter is left out, never sent as null
        variants = parameter["schema"].get("anyOf", [])
        if not parameter.get("required") and len(variants) == 2 and {"type": "null"} in variants:
            (kept,) = [v for v in variants if v != {"type": "null"}]
            parameter["schema"] = {**{k: v for k, v in parameter["schema"].items() if k != "anyOf"}, **kept}
    takes_input = "requestBody" in operation or any(p["in"] in ("query", "header") for p in parameters)
    names_something = any(p["in"] == "path" for p in parameters)
    if takes_input:
        _add_error(responses, InvalidRequest)
    if auth == WORKSPACE:
        _add_error(responses, Unauthorized)
        _add_error(responses, Forbidden)
    if auth == OPERATOR:
        _add_error(responses, Forbidden, "The request is not signed, the signature does not hold, "
                   "or IAM does not allow the caller.")
    if names_something:
        _add_error(responses, NotFound, "No such resource (another workspace's is not found either).")
    if "requestBody" in operation:
        _add_error(responses, PayloadTooLarge, "The body is over 256 KiB (10 MB at the gateway).")
    _add_error(responses, RateLimited, "`rate_limited`: too many requests; `quota_exceeded`: a quota of the plan "
               "is used up (the daily API calls, runs per day). Wait `Retry-After` seconds.")
    operation["responses"] = {code: responses[code] for code in sorted(responses)}
    operation["security"] = {PUBLIC: [], WORKSPACE: [{BEARER: []}, {API_KEY: []}], OPERATOR: [{SIGV4: []}]}[auth]
    return operation


def _add_error(responses: dict[str, Any], error: type[AppError], description: str | None = None) -> None:
    status = str(error.status)
    text = description or f"`{error.code}`: {error.message}"
    response = responses.setdefault(status, {"description": text})
    if text not in response["description"]:  # the route's own errors of this status come first
        response["description"] = f"{response['description']} {text}"
    response["content"] = {"application/json": {"schema": ERROR_SCHEMA}}
    if error in (RateLimited, QuotaExceeded):
        response["headers"] = copy.deepcopy(RETRY_AFTER)


def _error_schemas() -> dict[str, Any]:
    schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions: dict[str, Any] = schema.pop("$defs", {})
    return {"ErrorBody": schema, **definitions}
