"""Who may read MCP servers' header secrets (template.yaml): only the MCP servers function and the
run worker read them, only through Secrets Manager with their own key; offboarding may delete them,
never read them; no function reads every secret."""

from __future__ import annotations

import json
from typing import Any

from local.template import load_template, resources_of_type


def _statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in function.get("Properties", {}).get("Policies", []):
        if isinstance(policy, dict):
            found += policy.get("Statement", [])
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def _grants(action: str, about: str) -> set[str]:
    """The functions with an Allow of ``action`` whose resource mentions ``about``."""
    functions = resources_of_type(load_template(), "AWS::Serverless::Function")
    return {name for name, function in functions.items() for s in _statements(function)
            if s.get("Effect") == "Allow" and action in _actions(s) and about in json.dumps(s.get("Resource"))}


def test_only_the_mcp_function_and_the_run_worker_read_mcp_header_secrets():
    assert _grants("secretsmanager:GetSecretValue", "/mcp/*") == {"McpServersFunction", "RunStepsFunction"}
    assert _grants("kms:Decrypt", "McpHeadersKey") == {"McpServersFunction", "RunStepsFunction"}
    assert _grants("secretsmanager:CreateSecret", "/mcp/*") == {"McpServersFunction"}
    assert _grants("secretsmanager:DeleteSecret", "/mcp/*") == {"McpServersFunction", "OffboardingFunction"}
    assert _grants("secretsmanager:GetSecretValue", '"*"') == set(), "no function reads every secret"


def test_the_key_is_used_only_through_secrets_manager():
    functions = resources_of_type(load_template(), "AWS::Serverless::Function")
    for name, function in functions.items():
        for statement in _statements(function):
            if "McpHeadersKey" in json.dumps(statement.get("Resource")):
                assert "kms:ViaService" in json.dumps(statement.get("Condition")), name
