"""IAM in the local cloud: each function's AWS calls are checked against its role.

- ``policy``: the policy evaluator (actions, resources, conditions, variables).
- ``roles``: the roles template.yaml defines, SAM policy templates expanded.
- ``calls``: the checks one API call implies (per item for DynamoDB).
- ``enforcer``: who is calling, the botocore hooks, AWS's refusal.

``local_iam`` builds the enforcer for a template; ``LocalCloud`` puts the
hooks in place before any AWS client exists and activates the enforcer once
the stack's resources do, unless told not to (``--no-iam``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from local.iam.calls import Lookups
from local.iam.enforcer import LocalIam, activate, active, install_hooks
from local.iam.roles import roles_from_template
from local.template import ACCOUNT_ID, LIVE_API_ID, FunctionSpec, Resolver, resources_of_type

__all__ = ["LocalIam", "activate", "active", "install_hooks", "local_iam", "secret_arns"]


def local_iam(template: dict[str, Any], resolver: Resolver, functions: dict[str, FunctionSpec],
              running_function: Callable[[], str | None], function_access_key: str,
              running_state_machine: Callable[[], str | None] = lambda: None,
              secret_arn: Callable[[str], str] | None = None) -> LocalIam:
    """The enforcer for ``template``'s roles, resolved against the local stack. ``secret_arn`` turns a
    secret's id into its ARN (default: asked of moto's Secrets Manager in this process)."""
    return LocalIam(
        roles=roles_from_template(template, resolver),
        lookups=Lookups(partition_keys=_partition_keys(template, resolver.stack.table_name),
                        secret_arn=secret_arn or (lambda secret_id: _secret_arn(secret_id, resolver.stack.region)),
                        websocket_api_id=LIVE_API_ID),
        function_names={logical_id: spec.name for logical_id, spec in functions.items()},
        running_function=running_function,
        function_access_key=function_access_key,
        state_machine_names={logical_id: resolver.state_machine_name(logical_id)
                             for logical_id in resources_of_type(template, "AWS::Serverless::StateMachine")},
        running_state_machine=running_state_machine,
    )


def _partition_keys(template: dict[str, Any], table_name: str) -> dict[tuple[str, str | None], str]:
    """(table, index) -> its partition key attribute, for the template's table."""
    keys: dict[tuple[str, str | None], str] = {}
    for table in resources_of_type(template, "AWS::DynamoDB::Table").values():
        props = table["Properties"]
        keys[(table_name, None)] = _hash_key(props["KeySchema"])
        for index in props.get("GlobalSecondaryIndexes", []) + props.get("LocalSecondaryIndexes", []):
            keys[(table_name, index["IndexName"])] = _hash_key(index["KeySchema"])
    return keys


def _hash_key(schema: list[dict[str, str]]) -> str:
    return next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")


def _secret_arn(secret_id: str, region: str) -> str:
    """A secret's ARN from its name, as Secrets Manager resolves it (moto holds the secrets)."""
    try:
        from moto.secretsmanager.models import secretsmanager_backends

        return secretsmanager_backends[ACCOUNT_ID][region].describe_secret(secret_id).arn
    except Exception:  # unknown secret: an ARN no policy names
        return f"arn:aws:secretsmanager:{region}:{ACCOUNT_ID}:secret:{secret_id}"


def secret_arns(region: str) -> dict[str, str]:
    """Each secret moto holds, by name and by ARN -> its ARN (for enforcers in other processes)."""
    from moto.secretsmanager.models import secretsmanager_backends

    known: dict[str, str] = {}
    for secret in secretsmanager_backends[ACCOUNT_ID][region].secrets.values():
        known[secret.name] = known[secret.arn] = secret.arn
    return known
