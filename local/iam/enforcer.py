"""IAM enforced on every AWS call a function makes in the local cloud.

A botocore ``before-call`` hook, registered for every botocore session (the
way moto registers its own), authorizes each call before it is sent — to
DynamoDB Local or to moto alike — and answers a refused one exactly as AWS
would: the service's error code (``AccessDeniedException``; ``AccessDenied``
for STS) and AWS's message, ``User: <arn> is not authorized to perform:
<action> on resource: <arn> because no identity-based policy allows the
<action> action``.

Who is calling is read from the credentials that sign the call:

- the functions' own credentials (the Lambda environment's): the function
  whose handler is running (``local.lambda_runtime.running_function``), with
  its role from template.yaml;
- credentials STS issued (``AssumeRole``): the role and session tags they were
  issued for — so code inside ``tenant_scope`` is checked as the tenant role
  with its ``workspace_id`` tag (``${aws:PrincipalTag/workspace_id}``);
- the credentials moto's Step Functions interpreter signs with: the role of
  the state machine whose execution the calling thread works for
  (``local.lambda_runtime.running_state_machine``).

Calls made outside any function with the environment's credentials are the
local cloud's own (creating the table, seeding parameters) or a test's, the
operator's: they are not checked. Each decision is logged on ``local.iam`` at
debug level; refusals at warning level too.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.iam.calls import Call, Check, Lookups, checks_for
from local.iam.policy import ContextValue, Decision, Request, evaluate
from local.iam.roles import Role, Roles
from local.template import ACCOUNT_ID

log = logging.getLogger("local.iam")

STEP_FUNCTIONS_ACCESS_KEY = "ak"  # what moto's ASL interpreter signs its service calls with

# Service -> (error code, HTTP status) AWS answers a refused call with.
ACCESS_DENIED = {
    "sts": ("AccessDenied", 403),
    "iam": ("AccessDenied", 403),
    "s3": ("AccessDenied", 403),
    "apigateway": ("AccessDeniedException", 403),
    "lambda": ("AccessDeniedException", 403),
}
DEFAULT_ACCESS_DENIED = ("AccessDeniedException", 400)

_PARAMS = "local_iam_params"


@dataclass(frozen=True)
class Principal:
    """Who signs a call: a role, in a session, with its session tags."""

    role: Role
    session_name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    function: str | None = None  # the function whose own role this is
    assumed: bool = False  # credentials STS issued (AssumeRole)
    issued_to: str | None = None  # the function that assumed them (None: the local cloud or a test)

    @property
    def arn(self) -> str:
        return f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{self.role.name}/{self.session_name}"

    def context(self) -> dict[str, ContextValue]:
        context: dict[str, ContextValue] = {
            "aws:PrincipalArn": self.role.arn,
            "aws:PrincipalAccount": ACCOUNT_ID,
            "aws:PrincipalType": "AssumedRole",
            "aws:userid": f"AROA{self.role.name.upper()[:17]}:{self.session_name}",
            "aws:SecureTransport": "true",
        }
        context.update({f"aws:PrincipalTag/{k}": v for k, v in self.tags.items()})
        return context


class AccessDenied(Exception):
    def __init__(self, principal: Principal, check: Check, decision: Decision) -> None:
        reason = ("with an explicit deny in an identity-based policy" if decision.explicit_deny
                  else f"because no identity-based policy allows the {check.action} action")
        super().__init__(f"User: {principal.arn} is not authorized to perform: {check.action} "
                         f"on resource: {check.resource} {reason}")


class LocalIam:
    """Authorizes the AWS calls of the local cloud's functions against their roles."""

    def __init__(self, roles: Roles, lookups: Lookups, function_names: Mapping[str, str],
                 running_function: Callable[[], str | None], function_access_key: str,
                 state_machine_names: Mapping[str, str] | None = None,
                 running_state_machine: Callable[[], str | None] = lambda: None) -> None:
        self.roles = roles
        self.lookups = lookups
        self.function_names = dict(function_names)  # logical id -> function name (its role session name)
        self.running_function = running_function  # () -> logical id of the handler running here, or None
        self.function_access_key = function_access_key
        # state machine name -> logical id; () -> the name of the state machine whose execution calls, or None
        self.state_machines = {name: logical_id for logical_id, name in (state_machine_names or {}).items()}
        self.running_state_machine = running_state_machine
        self._sessions: dict[str, Principal] = {}
        self._lock = threading.Lock()
        self._decisions: dict[int, tuple[Any, dict[tuple[Any, ...], Decision]]] = {}  # per policies object

    # ------------------------------------------------------------------ who

    def principal_for(self, access_key: str) -> Principal | None:
        with self._lock:
            session = self._sessions.get(access_key)
        if session is not None:
            return session
        if access_key == self.function_access_key:
            return self._running_function_role()  # None: the local cloud itself, or a test acting as the operator
        if access_key == STEP_FUNCTIONS_ACCESS_KEY:
            return self._running_state_machine_role()
        return None

    def _running_state_machine_role(self) -> Principal | None:
        """The role of the state machine whose execution makes the call (the only
        one, when the template has one); None when it cannot be told."""
        logical_id = self.state_machines.get(self.running_state_machine() or "")
        if logical_id is None and len(self.roles.of_state_machine) == 1:
            (logical_id, _), = self.roles.of_state_machine.items()
        role = self.roles.of_state_machine.get(logical_id or "")
        return None if role is None else Principal(role, f"{logical_id}-execution")

    def record_session(self, access_key: str, role_arn: str, session_name: str, tags: Mapping[str, str]) -> None:
        role = self.roles.by_arn.get(role_arn)
        if role is not None:
            with self._lock:
                self._sessions[access_key] = Principal(role, session_name, dict(tags), assumed=True,
                                                       issued_to=self.running_function())

    def may_hold(self, session: Principal) -> None:
        """Raise AccessDenied if the running function could not have assumed these credentials.

        All functions share this process (and agenthq's cache of tenant
        credentials); on AWS each function assumes the tenant role itself, so
        one whose policy does not allow that never holds such credentials."""
        own = self._running_function_role()
        if own is None or own.function == session.issued_to:
            return
        tags = [{"Key": k, "Value": v} for k, v in session.tags.items()]
        assume = Call("sts", "sts", "AssumeRole", {"RoleArn": session.role.arn, "RoleSessionName": session.session_name,
                                                   **({"Tags": tags} if tags else {})}, "us-east-1", ACCOUNT_ID)
        self.authorize(own, assume)

    def _running_function_role(self) -> Principal | None:
        function = self.running_function()
        if function not in self.roles.of_function:
            return None
        return Principal(self.roles.of_function[function], self.function_names.get(function, function),
                         function=function)

    # ------------------------------------------------------------------ may it

    def authorize(self, principal: Principal, call: Call) -> None:
        """Raise AccessDenied unless every check of the call is allowed."""
        for check in checks_for(call, self.lookups):
            decision = self.decide(principal, check)
            log.debug("%s %s %s on %s%s %s", decision.verdict, principal.arn, check.action, check.resource,
                      f" ({check.what})" if check.what and check.what != call.operation else "",
                      _interesting(check.context))
            if not decision.allowed:
                error = AccessDenied(principal, check, decision)
                log.warning("refused: %s", error)
                raise error

    def decide(self, principal: Principal, check: Check) -> Decision:
        context = {**principal.context(), **check.context}
        request = Request(check.action, check.resource, context, principal=principal.role.arn)
        if check.action in ("sts:AssumeRole", "sts:TagSession"):  # the target's trust policy decides too
            decision = evaluate(principal.role.policies, request)
            return self._trusted(check, request) if decision.allowed else decision
        # The same question to the same policies gets the same answer: remembered per policies object
        # (a test that swaps a role's policies gets a fresh memory).
        policies = principal.role.policies
        with self._lock:
            held, memory = self._decisions.get(id(policies), (None, {}))
            if held is not policies or len(memory) > 20_000:
                memory = {}
                self._decisions[id(policies)] = (policies, memory)
        key = (check.action, check.resource,
               tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in context.items())))
        decision = memory.get(key)
        if decision is None:
            decision = memory[key] = evaluate(policies, request)
        return decision

    def _trusted(self, check: Check, request: Request) -> Decision:
        """AssumeRole / TagSession also need the target role's trust policy to allow the caller."""
        target = self.roles.by_arn.get(check.resource)
        if target is None or target.trust_policy is None:
            return Decision(allowed=False)
        return evaluate([target.trust_policy], request)


def _interesting(context: Mapping[str, ContextValue]) -> str:
    keys = {k: v for k, v in context.items() if not k.startswith("aws:")}
    return str(keys) if keys else ""


# --------------------------------------------------------------------------- botocore hooks

_active: LocalIam | None = None
_installed = False


def install_hooks() -> None:
    """Put the hooks on every botocore session created from now on. Idempotent.

    They join botocore's built-in handlers (as moto's do), so every session
    created afterwards — boto3's, PynamoDB's per-thread ones — carries them;
    they do nothing until an enforcer is activated."""
    global _installed
    from botocore.handlers import BUILTIN_HANDLERS

    if not _installed:
        BUILTIN_HANDLERS.append(("before-parameter-build", _remember_params))
        BUILTIN_HANDLERS.append(("before-call", _authorize_call))
        # botocore calls the most specific handlers first: the Lambda runtime's own
        # before-call.lambda.Invoke would answer before the generic hook runs.
        BUILTIN_HANDLERS.append(("before-call.lambda.Invoke", _authorize_call))
        BUILTIN_HANDLERS.append(("after-call.sts.AssumeRole", _record_assumed_role))
        _installed = True


def activate(iam: LocalIam | None) -> None:
    """Authorize every AWS call of this process with ``iam`` (None: stop checking)."""
    global _active
    install_hooks()
    _active = iam


def active() -> LocalIam | None:
    return _active


def _remember_params(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
    context[_PARAMS] = params


def _authorize_call(model: Any, params: Mapping[str, Any], request_signer: Any, context: dict[str, Any],
                    **_: Any) -> Any:
    iam = _active
    credentials = getattr(request_signer, "_credentials", None)
    if iam is None or credentials is None:
        return None
    principal = iam.principal_for(credentials.get_frozen_credentials().access_key)
    service = model.service_model
    if principal is None:
        log.debug("unchecked (not a function's call): %s:%s", service.signing_name, model.name)
        return None
    call = Call(service=service.service_name, prefix=service.signing_name, operation=model.name,
                params=context.get(_PARAMS, {}), region=context.get("client_region") or "us-east-1",
                account=ACCOUNT_ID, method=params.get("method", "POST"),
                path=params.get("url_path", "/").split("?", 1)[0], url=params.get("url", ""))
    try:
        if principal.assumed:
            iam.may_hold(principal)
        iam.authorize(principal, call)
    except AccessDenied as denied:
        return _refusal(service.service_name, params.get("url", ""), str(denied))
    return None


def _refusal(service: str, url: str, message: str) -> tuple[Any, dict[str, Any]]:
    from botocore.awsrequest import AWSResponse

    code, status = ACCESS_DENIED.get(service, DEFAULT_ACCESS_DENIED)
    request_id = str(uuid.uuid4())
    parsed = {"Error": {"Code": code, "Message": message},
              "ResponseMetadata": {"RequestId": request_id, "HTTPStatusCode": status,
                                   "HTTPHeaders": {"x-amzn-requestid": request_id}, "RetryAttempts": 0}}
    return AWSResponse(url, status, {"x-amzn-requestid": request_id}, None), parsed


def _record_assumed_role(http_response: Any, parsed: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
    iam = _active
    if iam is None or http_response is None or http_response.status_code >= 300 or "Credentials" not in parsed:
        return
    params = context.get(_PARAMS, {})
    tags = {t["Key"]: t["Value"] for t in params.get("Tags", [])}
    iam.record_session(parsed["Credentials"]["AccessKeyId"], params.get("RoleArn", ""),
                       params.get("RoleSessionName", ""), tags)
