"""Who is calling an operator route: the AgentHQ operator, as IAM vouched for them.

Operator routes (``/v1/admin/…``) use API Gateway's ``AWS_IAM`` authorization:
the request is SigV4-signed with the operator's AWS credentials, API Gateway
checks the signature and that the caller's IAM policies allow
``execute-api:Invoke`` on the route, and passes the caller's identity in
``requestContext.identity`` (``userArn``, ``caller``, ``accountId``, ``accessKey``).
There is no Lambda authorizer and no workspace: this module is the one place
that turns that identity into an :class:`Operator`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agenthq.errors import Unauthorized


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


def operator_from_identity(identity: Mapping[str, Any] | None) -> Operator:
    """The operator from ``requestContext.identity`` of an ``AWS_IAM``-authorized request.

    API Gateway sets ``userArn`` and ``caller`` only after it verified the
    signature and the IAM policy; without them the request did not come
    through an ``AWS_IAM`` route, and it is refused (401)."""
    identity = identity or {}
    arn = str(identity.get("userArn") or "")
    caller = str(identity.get("caller") or "")
    if not arn.startswith("arn:") or not caller:
        raise Unauthorized("This route needs a request signed with the operator's AWS credentials.")
    return Operator(arn=arn, caller=caller, account_id=str(identity.get("accountId") or ""),
                    access_key=str(identity.get("accessKey") or ""))
