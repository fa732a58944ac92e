"""The product's errors. Domain code raises these; the HTTP edge maps them
(in one place, ``agenthq.http``) to the documented error body::

    {"error": {"code": "...", "message": "...", "request_id": "...", "details": [...]}}
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error the caller can act on. ``status`` is its HTTP status."""

    status: int = 500
    code: str = "internal_error"
    message: str = "Internal error."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or type(self).message
        self.details = details or []
        self.headers = headers or {}
        super().__init__(self.message)


class InvalidRequest(AppError):
    status, code, message = 400, "invalid_request", "The request is not valid."


class Unauthorized(AppError):
    status, code, message = 401, "unauthorized", "Authentication is required."


class Forbidden(AppError):
    status, code, message = 403, "forbidden", "You are not allowed to do this."


class PlanLimit(AppError):
    status, code, message = 403, "plan_limit", "Your plan does not allow this."


class NotFound(AppError):
    status, code, message = 404, "not_found", "Not found."


class MethodNotAllowed(AppError):
    status, code, message = 405, "method_not_allowed", "Method not allowed."


class Conflict(AppError):
    status, code, message = 409, "conflict", "The request conflicts with the current state."


class PayloadTooLarge(AppError):
    status, code, message = 413, "payload_too_large", "The request body is too large."


class RateLimited(AppError):
    status, code, message = 429, "rate_limited", "Too many requests."

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", str(max(1, int(retry_after))))


class QuotaExceeded(RateLimited):
    code, message = "quota_exceeded", "A quota of your plan is used up."


class ServiceUnavailable(AppError):
    status, code, message = 503, "service_unavailable", "A dependency is unavailable."


def error_body(code: str, message: str, request_id: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if details:
        body["details"] = details
    return {"error": body}


class SessionBusy(Conflict):
    """A message to a session whose previous message is still being answered, sent with ``on_busy: reject``."""

    code, message = "session_busy", "The session's previous message is still being answered; send it again when idle."
