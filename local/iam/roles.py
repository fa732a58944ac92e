"""The IAM roles template.yaml gives each function, state machine and role resource.

Read as SAM and CloudFormation would create them:

- an ``AWS::Serverless::Function`` without ``Role`` gets the role SAM makes,
  ``<LogicalId>Role``, holding its ``Policies``: inline documents as written,
  SAM policy templates (``DynamoDBCrudPolicy: {TableName: …}``) expanded with
  SAM's own template table (aws-sam-translator, which aws-sam-cli installs);
  with ``Role`` it uses that role;
- an ``AWS::Serverless::StateMachine`` likewise gets ``<LogicalId>Role``;
- an ``AWS::IAM::Role`` has its inline ``Policies`` and its trust policy.

Intrinsics are resolved against the local stack (``local.template.Resolver``),
so ARNs name the local table, state machine, secret and parameters. Managed
policies (``ManagedPolicyArns``, or a policy given by name) are not known
locally and grant nothing here; SAM's implicit ones (CloudWatch Logs, X-Ray)
cover calls the local cloud does not make.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from local.template import ACCOUNT_ID, PARTITION, Resolver, function_name, resources_of_type

log = logging.getLogger("local.iam")


@dataclass(frozen=True)
class Role:
    logical_id: str
    name: str
    policies: tuple[dict[str, Any], ...]  # identity-based policy documents, intrinsics resolved
    trust_policy: dict[str, Any] | None = None
    managed_policies: tuple[str, ...] = ()  # named but not evaluated locally (they grant nothing here)
    path: str = "/"  # the role's IAM path (``Path``; a function's ``RolePath``): part of its ARN, not its sessions'

    @property
    def arn(self) -> str:
        return f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role{self.path}{self.name}"


@dataclass
class Roles:
    """Every role of the stack, and which one each function and state machine runs with."""

    by_arn: dict[str, Role] = field(default_factory=dict)
    of_function: dict[str, Role] = field(default_factory=dict)  # function logical id -> role
    of_state_machine: dict[str, Role] = field(default_factory=dict)

    def add(self, role: Role) -> Role:
        self.by_arn[role.arn] = role
        return role


def roles_from_template(template: dict[str, Any], resolver: Resolver) -> Roles:
    roles = Roles()
    stack = resolver.stack.stack_name
    for logical_id, resource in resources_of_type(template, "AWS::IAM::Role").items():
        props = resource.get("Properties", {})
        documents = [resolver.resolve(p["PolicyDocument"]) for p in props.get("Policies", [])]
        roles.add(Role(logical_id=logical_id, name=props.get("RoleName") or f"{stack}-{logical_id}",
                       policies=tuple(documents), trust_policy=resolver.resolve(props.get("AssumeRolePolicyDocument")),
                       managed_policies=tuple(str(resolver.resolve(m)) for m in props.get("ManagedPolicyArns", [])),
                       path=str(resolver.resolve(props.get("Path", "/")))))
    for kind, mapping in (("AWS::Serverless::Function", roles.of_function),
                          ("AWS::Serverless::StateMachine", roles.of_state_machine)):
        for logical_id, resource in resources_of_type(template, kind).items():
            props = resource.get("Properties", {})
            if props.get("Role"):
                arn = resolver.resolve(props["Role"])
                if arn not in roles.by_arn:
                    raise ValueError(f"{logical_id}: role {arn} is not a role of the template")
                mapping[logical_id] = roles.by_arn[arn]
                continue
            documents, managed = sam_policies(props.get("Policies", []), resolver)
            mapping[logical_id] = roles.add(Role(logical_id=f"{logical_id}Role", name=f"{stack}-{logical_id}Role",
                                                 policies=tuple(documents), managed_policies=tuple(managed),
                                                 path=str(resolver.resolve(props.get("RolePath", "/")))))
    acted_as = {r.arn for r in (*roles.of_function.values(), *roles.of_state_machine.values())}
    for role in roles.by_arn.values():
        # a role only an AWS service assumes (API Gateway's logging role) is never acted as locally
        trusted = [st.get("Principal", {}) for st in (role.trust_policy or {}).get("Statement", [])]
        if role.arn not in acted_as and not any(isinstance(p, dict) and "AWS" in p for p in trusted):
            continue
        if role.managed_policies:
            log.warning("role %s: managed policies %s are not evaluated locally (they grant nothing here)",
                        role.name, ", ".join(role.managed_policies))
    return roles


def sam_policies(policies: Any, resolver: Resolver) -> tuple[list[dict[str, Any]], list[str]]:
    """A SAM resource's ``Policies`` as policy documents (and the managed policies it names)."""
    documents: list[dict[str, Any]] = []
    managed: list[str] = []
    for entry in policies if isinstance(policies, list) else [policies]:
        if isinstance(entry, str):
            managed.append(entry)
        elif "Statement" in entry:
            documents.append(resolver.resolve(entry))
        elif len(entry) == 1 and next(iter(entry)) not in ("Ref", "Fn::Sub", "Fn::GetAtt", "Fn::If"):
            (template_name, parameters), = entry.items()
            documents.append(resolver.resolve(_sam_policy_templates().convert(template_name, parameters or {})))
        else:
            managed.append(str(resolver.resolve(entry)))
    return documents, managed


_processor: Any = None


def _sam_policy_templates() -> Any:
    global _processor
    if _processor is None:
        from samtranslator.policy_template_processor.processor import PolicyTemplatesProcessor

        _processor = PolicyTemplatesProcessor(PolicyTemplatesProcessor.get_default_policy_templates_json())
    return _processor


def function_session_name(resolver: Resolver, logical_id: str) -> str:
    """Lambda names a function's role session after the function."""
    return function_name(resolver.stack, logical_id)
