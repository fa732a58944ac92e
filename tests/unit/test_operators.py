"""Who is the operator: the principals the deployment names (OperatorPrincipalArns), nobody else (issue 18).

API Gateway has verified the signature and the caller's IAM policy; being allowed
``execute-api:Invoke`` is not being the operator. The admin function checks the
signer against ``OPERATOR_PRINCIPAL_ARNS`` as the REST API's resource policy does.
"""

from __future__ import annotations

import pytest

from agenthq.errors import Forbidden, Unauthorized
from agenthq.operators import is_operator_principal, operator_from_identity, principal_arn
from agenthq.settings import Settings

OPS = ("arn:aws:iam::123456789012:user/ops-alice", "arn:aws:iam::123456789012:role/ops/AgentHQOperator")


def identity(user_arn: str) -> dict[str, str]:
    return {"userArn": user_arn, "caller": "AIDAEXAMPLE", "accountId": "123456789012", "accessKey": "AKIAEXAMPLE"}


@pytest.mark.parametrize("user_arn", [
    "arn:aws:iam::123456789012:user/ops-alice",
    "arn:aws:sts::123456789012:assumed-role/AgentHQOperator/alice@example.com",  # a session of the named role
])
def test_the_named_principals_are_the_operator(user_arn):
    operator = operator_from_identity(identity(user_arn), OPS)
    assert operator.arn == user_arn and operator.account_id == "123456789012"


@pytest.mark.parametrize("user_arn", [
    "arn:aws:iam::123456789012:user/ci-deployer",  # a CI user allowed execute-api:Invoke on *
    "arn:aws:sts::123456789012:assumed-role/AdministratorAccess/bob",  # an administrator's session
    "arn:aws:iam::123456789012:root",
    "arn:aws:iam::210987654321:user/ops-alice",  # the same name in another account
    "arn:aws:sts::123456789012:assumed-role/AgentHQOperatorX/x",
    "arn:aws:iam::123456789012:user/ops-alice-2",
])
def test_any_other_signer_is_refused(user_arn):
    with pytest.raises(Forbidden):
        operator_from_identity(identity(user_arn), OPS)


def test_no_named_operator_means_nobody_and_an_unsigned_request_is_401():
    with pytest.raises(Forbidden):
        operator_from_identity(identity("arn:aws:iam::123456789012:user/ops-alice"), ())
    with pytest.raises(Unauthorized):
        operator_from_identity({}, OPS)


def test_wildcards_match_as_arn_like_does():
    assert is_operator_principal("arn:aws:iam::123456789012:user/ops-bob", ["arn:aws:iam::123456789012:user/ops-*"])
    assert not is_operator_principal("arn:aws:iam::123456789012:user/dev-bob",
                                     ["arn:aws:iam::123456789012:user/ops-*"])
    assert principal_arn("arn:aws:sts::123456789012:assumed-role/R/s") == "arn:aws:iam::123456789012:role/R"


def test_the_setting_is_the_templates_comma_separated_parameter():
    settings = Settings.from_env({"TABLE_NAME": "agenthq-test", "OPERATOR_PRINCIPAL_ARNS": ",".join(OPS) + ", "})
    assert settings.operator_principal_arns == OPS
