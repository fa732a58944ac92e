"""Who is calling an operator route: the AgentHQ operator, as IAM vouched for them.

Operator routes (``/v1/admin/…``) use API Gateway's ``AWS_IAM`` authorization:
the request is SigV4-signed with the operator's AWS credentials, API Gateway
checks the signature and that the caller's IAM policies allow
``execute-api:Invoke`` on the route, and passes the caller's identity in
``requestContext.identity`` (``userArn``, ``caller``, ``accountId``, ``accessKey``).
There is no Lambda authorizer and no workspace: this module is the one place
that turns that identity into an :class:`Operator`.

Being allowed ``execute-api:Invoke`` is not enough: any role of the account
with AdministratorAccess, PowerUser or ``execute-api:Invoke`` on ``*`` (a CI
role, another application's) would pass. The operator is who the deployment
names: template.yaml's ``OperatorPrincipalArns``, which the REST API's resource
policy enforces at the gateway and :func:`operator_from_identity` enforces again
here (``OPERATOR_PRINCIPAL_ARNS``): an IAM user's ARN, or a role's ARN for the
sessions of that role (``assumed-role/<name>/<session>``). docs/decisions.md 174.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agenthq.errors import Forbidden, Unauthorized


@dataclass(frozen=True)
class Operator:
    """An operator of this AgentHQ deployment (an IAM user or role session)."""

    arn: str  # requestContext.identity.userArn, e.g. arn:aws:iam::123456789012:user/ops-alice
    caller: str  # requestContext.identity.caller: the principal id (AIDA… or AROA…:session)
    account_id: str = ""
    access_key: str = ""

    def log_keys(self) -> dict[str, str]:
        """What to put into log lines about an operator action."""
        return {"operator_arn": self.arn, "operator_caller": self.caller}


def operator_from_identity(identity: Mapping[str, Any] | None, allowed: Sequence[str]) -> Operator:
    """The operator from ``requestContext.identity`` of an ``AWS_IAM``-authorized request.

    API Gateway sets ``userArn`` and ``caller`` only after it verified the
    signature and the IAM policy; without them the request did not come
    through an ``AWS_IAM`` route, and it is refused (401). A signer that is not
    one of the ``allowed`` principals (``OPERATOR_PRINCIPAL_ARNS``) is refused
    (403): the gateway's resource policy already refuses them, this is the second lock."""
    identity = identity or {}
    arn = str(identity.get("userArn") or "")
    caller = str(identity.get("caller") or "")
    if not arn.startswith("arn:") or not caller:
        raise Unauthorized("This route needs a request signed with the operator's AWS credentials.")
    if not is_operator_principal(arn, allowed):
        raise Forbidden("Only the deployment's operators (its OperatorPrincipalArns) may use this route.")
    return Operator(arn=arn, caller=caller, account_id=str(identity.get("accountId") or ""),
                    access_key=str(identity.get("accessKey") or ""))


def principal_arn(user_arn: str) -> str:
    """The IAM principal behind a caller's ARN, as ``aws:PrincipalArn`` names it: a role's
    session (``arn:aws:sts::<acct>:assumed-role/<role>/<session>``) is its role
    (``arn:aws:iam::<acct>:role/<role>``, without the role's path, which the session's ARN lacks)."""
    parts = user_arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        return f"{parts[0]}:{parts[1]}:iam::{parts[4]}:role/{role}"
    return user_arn


def is_operator_principal(user_arn: str, allowed: Sequence[str]) -> bool:
    """Whether the caller is one of ``allowed`` (ARNs, ``*``/``?`` wildcards as ``ArnLike``); a role
    listed with a path (``role/ops/name``) admits the sessions of ``role/name``. None allowed: nobody."""
    principal = principal_arn(user_arn)
    for pattern in allowed:
        head, _, resource = pattern.partition(":role/")
        if resource and principal.startswith(f"{head}:role/"):
            pattern = f"{head}:role/{resource.rsplit('/', 1)[-1]}"  # sessions name the role without its path
        if fnmatch.fnmatchcase(principal, pattern):
            return True
    return False
