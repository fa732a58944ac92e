"""The HTTP edge every REST function shares.

``create_app()`` builds a FastAPI app with one error format, security headers,
CORS, a request-size limit and a request id; ``lambda_handler(app)`` wraps it
for API Gateway (REST proxy events) with Mangum. Exceptions become HTTP
responses here and nowhere else.

Handlers get the caller with ``Depends(workspace_principal)``: the principal
the authorizer put into the request context, checked against the ``{wid}`` of
the path (another workspace's id is a 404). Operator routes (``AWS_IAM``) get
the operator with ``CurrentOperator`` instead.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from mangum import Mangum
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenthq import ids
from agenthq.context import Principal, principal_from_authorizer
from agenthq.errors import (
    AppError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    error_body,
)
from agenthq.observability import (
    REQUESTS_QUOTA_EXCEEDED,
    REQUESTS_RATE_LIMITED,
    count,
    logger,
    publish_metrics,
)
from agenthq.operators import Operator, operator_from_identity
from agenthq.pagination import DEFAULT_LIMIT, MAX_LIMIT
from agenthq.settings import Settings, get_settings

SECURITY_HEADERS: dict[str, str] = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


# --------------------------------------------------------------------------- request context


def aws_event(request_or_scope: Request | Scope) -> dict[str, Any]:
    scope = request_or_scope.scope if isinstance(request_or_scope, Request) else request_or_scope
    return scope.get("aws.event") or {}


def request_id_of(scope: Scope) -> str:
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        rid = (aws_event(scope).get("requestContext") or {}).get("requestId")
        state["request_id"] = rid or str(uuid.uuid4())
    return str(state["request_id"])


def source_ip(request: Request) -> str:
    """The client's address as API Gateway saw it."""
    identity = (aws_event(request).get("requestContext") or {}).get("identity") or {}
    return str(identity.get("sourceIp") or "unknown")


def public_api_url(request: Request) -> str:
    """The API's public base URL with its stage (https://<domain>/v1), for links in mails: the
    ``PUBLIC_API_URL`` setting (a custom domain's), else the domain and stage API Gateway received the request
    on (its ``requestContext``, not a header the client chose)."""
    configured = get_settings().public_api_url
    if configured:
        return configured.rstrip("/")
    event = aws_event(request)
    context = event.get("requestContext") or {}
    domain, full_path, path = context.get("domainName"), context.get("path") or "", event.get("path") or ""
    if not domain:
        return str(request.base_url).rstrip("/")
    prefix = full_path[:len(full_path) - len(path)] if path and full_path.endswith(path) else f"/{context.get('stage', '')}"
    return f"https://{domain}{prefix.rstrip('/')}"


def seconds_left(request: Request) -> float:
    """The Lambda invocation's remaining time (unbounded outside Lambda)."""
    context = request.scope.get("aws.context")
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000 if callable(remaining) else math.inf


def current_principal(request: Request) -> Principal:
    """The caller, as vouched for by the authorizer (401 when absent)."""
    return principal_from_authorizer((aws_event(request).get("requestContext") or {}).get("authorizer"))


def workspace_principal(wid: str, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """The caller, provided the path's workspace is the caller's own."""
    return principal.for_workspace(wid)


def current_operator(request: Request) -> Operator:
    """The operator of an ``AWS_IAM`` route, as API Gateway verified them (401 when absent)."""
    return operator_from_identity((aws_event(request).get("requestContext") or {}).get("identity"),
                                  get_settings().operator_principal_arns)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
WorkspacePrincipal = Annotated[Principal, Depends(workspace_principal)]
CurrentOperator = Annotated[Operator, Depends(current_operator)]

# The query parameters of every list: `?cursor=…&limit=…` (see agenthq.pagination).
Cursor = Query(default=None, max_length=2048, description="From the previous page's `next_cursor`.")
Limit = Query(default=None, ge=1, le=MAX_LIMIT, description=f"Items per page (default {DEFAULT_LIMIT}).")
# `?agent_id=` on lists that can be narrowed to one agent.
AgentIdFilter = Query(default=None, pattern=ids.ID_PATTERN, description="Only this agent's.")
# `?run_id=` on approvals: a run's, and those of the runs it delegated to.
RunIdFilter = Query(default=None, pattern=ids.ID_PATTERN, description="Only this run's (and its delegated runs').")
# The query parameters of an event cursor (a run's or a session's): `?after=<seq>&limit=…`.
EventsAfter = Query(default=0, ge=0)
EventsLimit = Query(default=100, ge=1, le=500)


# --------------------------------------------------------------------------- the error body


class ErrorDetail(BaseModel):
    """What is wrong with one field of the request."""

    model_config = ConfigDict(populate_by_name=True)

    field: str = Field(examples=["name"])
    in_: Literal["body", "query", "path", "header"] | None = Field(default=None, alias="in")
    message: str = Field(examples=["must not be blank"])


class ErrorInfo(BaseModel):
    code: str = Field(description="What went wrong, for programs: `invalid_request`, `unauthorized`, `forbidden`, "
                                  "`plan_limit`, `not_found`, `conflict`, `payload_too_large`, `rate_limited`, "
                                  "`quota_exceeded`, `service_unavailable`, `internal_error`.",
                      examples=["invalid_request"])
    message: str = Field(description="What went wrong, for people.", examples=["The request is not valid."])
    request_id: str = Field(description="Quote it when you report a problem.",
                            examples=["c0a8012e-7d4b-4f51-9a55-8f1f3d3c2a10"])
    details: list[ErrorDetail] | None = Field(default=None, description="The fields at fault (400).")


class ErrorBody(BaseModel):
    """Every error the API answers, whatever its status."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"error": {
        "code": "invalid_request", "message": "The request is not valid.",
        "request_id": "c0a8012e-7d4b-4f51-9a55-8f1f3d3c2a10",
        "details": [{"field": "name", "in": "body", "message": "must not be blank"}]}}]})

    error: ErrorInfo


def documented(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """A route's own errors for its ``responses=`` (the schema; what every route
    of its kind can answer is added by ``agenthq.openapi``)."""
    by_status: dict[int, list[type[AppError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    return {status: {"model": ErrorBody, "description": " ".join(f"`{e.code}`: {e.message}" for e in listed)}
            for status, listed in sorted(by_status.items())}


def download(content: str, media_type: str, filename: str) -> Response:
    """A text file the client saves (``Content-Disposition: attachment``)."""
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# --------------------------------------------------------------------------- errors → HTTP


def error_response(scope: Scope, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, request_id_of(scope), details), status_code=status, headers=headers
    )


def _validation_details(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    message = "The request is not valid."
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if err.get("type") == "json_invalid":
            message = "The request body is not valid JSON."
            details.append({"field": "body", "message": "invalid JSON"})
            continue
        field = ".".join(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
        where = loc[0] if loc else "body"
        details.append({"field": field or where, "in": where, "message": err.get("msg", "invalid")})
    return message, details


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        if isinstance(exc, RateLimited):  # every 429 a function answers passes here
            count(REQUESTS_QUOTA_EXCEEDED if isinstance(exc, QuotaExceeded) else REQUESTS_RATE_LIMITED)
        return error_response(request.scope, exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = _validation_details(exc)
        return error_response(request.scope, 400, InvalidRequest.code, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, BodyTooLarge):
            return error_response(request.scope, 413, PayloadTooLarge.code, exc.detail)
        known = {404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge, 400: InvalidRequest}
        err = known.get(exc.status_code, InvalidRequest if exc.status_code < 500 else AppError)
        return error_response(request.scope, exc.status_code, err.code, err.message)


# --------------------------------------------------------------------------- middleware (pure ASGI)


class EdgeMiddleware:
    """Outermost layer: request id, body-size limit, security headers, and a
    last-resort JSON 500 so no stack trace ever reaches a client."""

    def __init__(self, app: ASGIApp, max_request_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        logger.append_keys(request_id=request_id)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_request_bytes:
            await self._too_large(scope, send_with_headers)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_request_bytes:
                    raise BodyTooLarge(self.max_request_bytes)
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            if not started:
                await self._too_large(scope, send_with_headers)
        except Exception:  # the last resort: log it, answer JSON
            logger.exception("unhandled error")
            if not started:
                response = error_response(scope, 500, AppError.code, AppError.message)
                await response(scope, receive, send_with_headers)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        exc = BodyTooLarge(self.max_request_bytes)
        response = error_response(scope, 413, PayloadTooLarge.code, exc.detail)
        await response(scope, _empty_receive, send)


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body streams in; an HTTPException so that FastAPI's
    body parsing lets it through instead of calling it a parse error."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# --------------------------------------------------------------------------- factory


def create_app(name: str, settings: Settings | None = None) -> FastAPI:
    """A FastAPI app with AgentHQ's edge behaviour. ``name`` is the function's."""
    settings = settings or get_settings()
    app = FastAPI(title=f"AgentHQ {name}", version=settings.version, docs_url=None, redoc_url=None,
                  openapi_url=None)
    _install_error_handlers(app)
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_allow_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "x-api-key"],
            expose_headers=["x-request-id", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(EdgeMiddleware, max_request_bytes=settings.max_request_bytes)
    return app


def lambda_handler(app: FastAPI) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point for an API Gateway REST proxy event."""
    adapter = Mangum(app, lifespan="off")

    @logger.inject_lambda_context(clear_state=True)
    @publish_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return dict(adapter(event, context))

    return handler
