"""The local API Gateway: HTTP in, REST proxy events to the real handlers, HTTP out.

It does what API Gateway does for this template: matches the routes declared
by the functions' Api events, strips the stage, throttles each method as the
stage's ``MethodSettings`` say (a token bucket per method, before anything
else), calls the REQUEST authorizer and honours its policy, checks the SigV4
signature of ``AWS_IAM`` routes against the local credentials
(local/sigv4.py), evaluates the API's resource policy (:class:`ResourcePolicy`), meters API keys against the usage plans (throttle and daily
quota), limits payloads to 10 MB, and answers its own errors with the
template's GatewayResponses.

Integrations: a function that fails — its own timeout included, when it is
shorter than API Gateway's 29 s — is a 502 (API Gateway's answer to a failed
Lambda proxy integration); a function still running at 29 s is a 504, the
integration timeout; a function Lambda throttles (reserved concurrency) is a
500. The function itself ends at its own timeout, killed by the runtime.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.events import API_ID, rest_proxy_event
from local.lambda_runtime import FunctionError, LambdaRuntime, Throttled
from local.template import ACCOUNT_ID, MethodThrottle, RestApiSpec, Route

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_SECONDS = 29

DEFAULT_STATUS = {
    "MISSING_AUTHENTICATION_TOKEN": 403,  # nosec B105  # a gateway response type, not a password
    "UNAUTHORIZED": 401,
    "ACCESS_DENIED": 403,
    "INVALID_SIGNATURE": 403,
    "EXPIRED_TOKEN": 403,  # nosec B105  # a gateway response type, not a password
    "INVALID_API_KEY": 403,
    "THROTTLED": 429,
    "QUOTA_EXCEEDED": 429,
    "REQUEST_TOO_LARGE": 413,
    "AUTHORIZER_FAILURE": 500,
    "INTEGRATION_FAILURE": 502,
    "INTEGRATION_TIMEOUT": 504,
}
MESSAGES = {
    "MISSING_AUTHENTICATION_TOKEN": "Missing Authentication Token",  # nosec B105  # AWS's message
    "UNAUTHORIZED": "Unauthorized",
    "ACCESS_DENIED": "User is not authorized to access this resource",
    "INVALID_SIGNATURE": "The request signature we calculated does not match the signature you provided.",
    "EXPIRED_TOKEN": "The security token included in the request is expired",  # nosec B105  # AWS's message
    "INVALID_API_KEY": "Forbidden",
    "THROTTLED": "Too Many Requests",
    "QUOTA_EXCEEDED": "Limit Exceeded",
    "REQUEST_TOO_LARGE": "Request Too Long",
    "AUTHORIZER_FAILURE": "Internal server error",
    "INTEGRATION_FAILURE": "Internal server error",
    "INTEGRATION_TIMEOUT": "Endpoint request timed out",
}


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class UsagePlanMeter:
    """Admits or refuses a request by its usage-plan key (see local/usage_plans.py)."""

    def admit(self, key_value: str) -> str | None:  # pragma: no cover - interface
        """None to admit; else the gateway response type (THROTTLED, ...)."""
        raise NotImplementedError


class SignatureRefused(Exception):
    """An ``AWS_IAM`` request is not (validly) signed; ``kind`` is the gateway response type."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


class SignatureVerifier:
    """Checks the SigV4 signature of an ``AWS_IAM`` route's request (see local/sigv4.py)."""

    def verify(self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes) -> Any:
        """The signer (with ``identity()``: ``requestContext.identity``), or :class:`SignatureRefused`."""
        raise NotImplementedError  # pragma: no cover - interface


class ResourcePolicy:
    """The REST API's resource policy, evaluated as API Gateway does for an API and its callers in one
    account: an explicit Deny refuses (``ACCESS_DENIED``); an ``AWS_IAM`` route is otherwise allowed
    (the signer's own IAM policy allows it: the local users' do), any other route needs an Allow.

    The statements are evaluated by the local IAM evaluator (local/iam/policy.py: principals,
    wildcards, condition operators) with ``aws:PrincipalArn`` in the context; API Gateway's
    ``execute-api:/<stage>/<method>/<path>`` shorthand is expanded to the API's ARNs first."""

    def __init__(self, statements: list[dict[str, Any]], arn_prefix: str) -> None:
        expanded = []
        for statement in statements:
            resources = statement.get("Resource")
            if resources is not None:
                statement = {**statement, "Resource": [
                    arn_prefix + r[len("execute-api:/"):] if r.startswith("execute-api:/") else r
                    for r in (resources if isinstance(resources, list) else [resources])]}
            expanded.append(statement)
        self.document = {"Version": "2012-10-17", "Statement": expanded}

    def decision(self, method_arn: str, principal_arn: str | None) -> str:
        """``deny`` (an explicit Deny), ``allow``, or ``none`` (no statement applies)."""
        from local.iam.policy import Request, evaluate

        context = {"aws:PrincipalArn": principal_arn} if principal_arn else {}
        decided = evaluate([self.document], Request("execute-api:Invoke", method_arn, context,
                                                    principal=principal_arn or "anonymous"))
        return "deny" if decided.explicit_deny else ("allow" if decided.allowed else "none")


class MethodThrottles:
    """The stage's per-method throttles: a token bucket per method (route), ``burst_limit`` tokens
    refilled at ``rate_limit`` a second, shared by every caller; an empty bucket is ``THROTTLED``."""

    def __init__(self, api: RestApiSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # (method, path) -> (tokens, at)
        self._lock = threading.Lock()

    def admit(self, route: Route) -> bool:
        throttle: MethodThrottle | None = self.api.throttle_of(route)
        if throttle is None:
            return True
        key = (route.method, route.path)
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(throttle.burst_limit), now))
            tokens = min(float(throttle.burst_limit), tokens + max(0.0, now - at) * throttle.rate_limit)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1.0, now)
            return True

    def reset(self) -> None:
        """Every bucket full again, as on a newly deployed stage (tests that count from a full burst)."""
        with self._lock:
            self._buckets.clear()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog (5) resets connections when many clients connect at once


class RestApiFront:
    def __init__(self, api: RestApiSpec, runtime: LambdaRuntime, meter: UsagePlanMeter | None = None,
                 host: str = "127.0.0.1", port: int = 3000, region: str = "us-east-1",
                 signatures: SignatureVerifier | None = None, policy: list[dict[str, Any]] | None = None) -> None:
        self.api = api
        self.runtime = runtime
        self.meter = meter
        self.signatures = signatures
        self.policy = ResourcePolicy(policy, f"arn:aws:execute-api:{region}:{ACCOUNT_ID}:{API_ID}/") \
            if policy else None
        self.region = region
        self.throttles = MethodThrottles(api)
        self.integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS  # tests may shorten it
        self.server = _Server((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/{self.api.stage}"

    def start(self) -> RestApiFront:
        self._thread = threading.Thread(target=self.server.serve_forever, name="rest-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ request pipeline

    def handle(self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes,
               source_ip: str) -> Reply:
        request_id = str(uuid.uuid4())
        parsed = urllib.parse.urlsplit(raw_path)
        path = urllib.parse.unquote(parsed.path)
        stage_prefix = f"/{self.api.stage}"
        if path != stage_prefix and not path.startswith(stage_prefix + "/"):
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", request_id)
        resource_path = path[len(stage_prefix):] or "/"
        if len(body) > MAX_PAYLOAD_BYTES:
            return self.gateway_response("REQUEST_TOO_LARGE", request_id)
        match = self._match(method, resource_path)
        if match is None:
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", request_id)
        route, path_params = match
        if not self.throttles.admit(route):
            return self.gateway_response("THROTTLED", request_id)

        event = self._proxy_event(method, route, resource_path, path_params, parsed.query, headers, body,
                                  source_ip, request_id)
        if route.iam_auth:
            refused = self._check_signature(method, raw_path, headers, body, event, request_id)
            if refused is not None:
                return refused
        if self.policy is not None:
            signer = event["requestContext"]["identity"].get("userArn") if route.iam_auth else None
            decision = self.policy.decision(self._method_arn(event), _principal_arn(signer))
            if decision == "deny" or (decision == "none" and not route.iam_auth):
                return self.gateway_response("ACCESS_DENIED", request_id)
        if route.authorized:
            denied = self._authorize(route, event, request_id)
            if denied is not None:
                return denied
        return self._integrate(route, event, request_id)

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route of ``path``: as API Gateway does, a trailing slash names the same resource
        (``/console/`` is ``/console``); the integration still sees the path as requested."""
        found = self._match_exactly(method, path)
        if found is None and len(path) > 1 and path.endswith("/"):
            found = self._match_exactly(method, path[:-1])
        return found

    def _match_exactly(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.api.routes:
            if route.method not in (method, "ANY"):
                continue
            found = route.pattern.match(path)
            if found:
                return route, {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
        return None

    def _proxy_event(self, method: str, route: Route, path: str, path_params: dict[str, str], query: str,
                     headers: list[tuple[str, str]], body: bytes, source_ip: str, request_id: str) -> dict[str, Any]:
        return rest_proxy_event(method, path, resource=route.path, path_parameters=path_params, query=query,
                                headers=headers, body=body, stage=self.api.stage, source_ip=source_ip,
                                request_id=request_id)

    def _method_arn(self, event: dict[str, Any]) -> str:
        return (f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{API_ID}/{self.api.stage}/"
                f"{event['httpMethod']}{event['path']}")

    def _authorize(self, route: Route, event: dict[str, Any], request_id: str) -> Reply | None:
        assert self.api.authorizer_function  # nosec B101  # type narrowing: authorized routes imply one
        method_arn = self._method_arn(event)
        auth_event = {"type": "REQUEST", "methodArn": method_arn, **{k: v for k, v in event.items()
                                                                      if k not in ("body", "isBase64Encoded")}}
        try:
            result = self.runtime.invoke(self.api.authorizer_function, auth_event)
        except FunctionError as err:
            if err.message == "Unauthorized":
                return self.gateway_response("UNAUTHORIZED", request_id)
            return self.gateway_response("AUTHORIZER_FAILURE", request_id)
        if not isinstance(result, dict) or "principalId" not in result or "policyDocument" not in result:
            return self.gateway_response("AUTHORIZER_FAILURE", request_id)
        if not _policy_allows(result["policyDocument"], method_arn):
            return self.gateway_response("ACCESS_DENIED", request_id)
        context = {k: v for k, v in (result.get("context") or {}).items()}
        context["principalId"] = result["principalId"]
        event["requestContext"]["authorizer"] = context
        if route.api_key_required:
            key = result.get("usageIdentifierKey")
            if not key or self.meter is None:
                return self.gateway_response("INVALID_API_KEY", request_id)
            refusal = self.meter.admit(key)
            if refusal:
                return self.gateway_response(refusal, request_id)
            event["requestContext"]["identity"]["apiKey"] = key
        return None

    def _check_signature(self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes,
                         event: dict[str, Any], request_id: str) -> Reply | None:
        """AWS_IAM: a valid SigV4 signature of known credentials, whose identity the
        integration sees in ``requestContext.identity``; else the gateway's refusal."""
        if self.signatures is None:
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", request_id)
        try:
            signer = self.signatures.verify(method, raw_path, headers, body)
        except SignatureRefused as refusal:
            return self.gateway_response(refusal.kind, request_id)
        event["requestContext"]["identity"].update(signer.identity())
        return None

    def _integrate(self, route: Route, event: dict[str, Any], request_id: str) -> Reply:
        invocation = self.runtime.submit(route.function, event)
        try:
            result = invocation.result(timeout=self.integration_timeout)
        except FutureTimeout:  # the function goes on until its own timeout, as on AWS
            return self.gateway_response("INTEGRATION_TIMEOUT", request_id)
        except Throttled:
            return self.gateway_response("INTEGRATION_FAILURE", request_id, status=500)
        except FunctionError as err:
            timeout = self.runtime.timeout_of(self.runtime.spec(route.function))
            if err.error_type == "Sandbox.Timedout" and timeout >= self.integration_timeout:
                return self.gateway_response("INTEGRATION_TIMEOUT", request_id)  # the gateway gave up first
            return self.gateway_response("INTEGRATION_FAILURE", request_id)
        if not isinstance(result, dict) or "statusCode" not in result:
            return self.gateway_response("INTEGRATION_FAILURE", request_id)
        headers: list[tuple[str, str]] = []
        seen = set()
        for name, values in (result.get("multiValueHeaders") or {}).items():
            seen.add(name.lower())
            headers.extend((name, str(v)) for v in values)
        for name, value in (result.get("headers") or {}).items():
            if name.lower() not in seen:
                headers.append((name, str(value)))
        headers.append(("x-amzn-RequestId", request_id))
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
        return Reply(int(result["statusCode"]), headers, raw)

    # ------------------------------------------------------------------ gateway responses

    def gateway_response(self, kind: str, request_id: str, status: int | None = None) -> Reply:
        family = "DEFAULT_5XX" if DEFAULT_STATUS[kind] >= 500 else "DEFAULT_4XX"
        configured = self.api.gateway_responses.get(kind) or self.api.gateway_responses.get(family) or {}
        status = int(configured.get("StatusCode", status or DEFAULT_STATUS[kind]))
        message = MESSAGES[kind]
        template = (configured.get("ResponseTemplates") or {}).get("application/json")
        if template:
            body = template.replace("$context.requestId", request_id)
            body = body.replace("$context.error.messageString", json.dumps(message))
            body = body.replace("$context.error.message", message)
        else:
            body = json.dumps({"message": message})
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id),
                   ("x-amzn-ErrorType", kind)]
        for name, value in ((configured.get("ResponseParameters") or {}).get("Headers") or {}).items():
            headers.append((name, value.strip("'")))
        return Reply(status, headers, body.encode("utf-8"))

    # ------------------------------------------------------------------ HTTP server glue

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "AgentHQ-local-apigateway"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_PAYLOAD_BYTES:
                    # Don't read a body we will refuse anyway; close the connection after answering.
                    reply = front.gateway_response("REQUEST_TOO_LARGE", str(uuid.uuid4()))
                    self.close_connection = True
                else:
                    body = self.rfile.read(length) if length else b""
                    reply = front.handle(self.command, self.path, list(self.headers.items()), body,
                                         self.client_address[0])
                self.send_response(reply.status)
                for name, value in reply.headers:
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

            def __getattr__(self, name: str) -> Any:
                # Any other method (TRACE, CONNECT, PROPFIND …) is a method no route has:
                # API Gateway answers it like an unknown route, not with http.server's 501 page.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

        return Handler


def _principal_arn(user_arn: str | None) -> str | None:
    """``aws:PrincipalArn`` of a signer: an IAM user's own ARN; a role session's role (without its path)."""
    if not user_arn:
        return None
    parts = user_arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        return f"{parts[0]}:{parts[1]}:iam::{parts[4]}:role/{parts[5].split('/')[1]}"
    return user_arn


def _policy_allows(policy: dict[str, Any], method_arn: str) -> bool:
    """IAM-style evaluation of an authorizer policy: an explicit Deny wins."""
    allowed = False
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements:
        resources = statement.get("Resource") or []
        if isinstance(resources, str):
            resources = [resources]
        actions = statement.get("Action") or []
        if isinstance(actions, str):
            actions = [actions]
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions):
            continue
        if any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            if statement.get("Effect") == "Deny":
                return False
            if statement.get("Effect") == "Allow":
                allowed = True
    return allowed
