"""Test-only handlers: what the Lambda runtime runs instead of a function's handler
(``LambdaRuntime.handler_replaced(logical_id, "tests.handlers:<name>")``), in the
function's worker process, with its environment and its role. They probe the
execution model itself; nothing in the application imports them."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

_invocations = 0
_lock = threading.Lock()


def whereabouts(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Where and as what this invocation runs: its process, the environment it sees, its Lambda context,
    how many invocations this environment has served; after ``hold_seconds`` (to overlap with others)."""
    global _invocations
    started = time.time()
    time.sleep(float(event.get("hold_seconds", 0)))
    with _lock:
        _invocations += 1
        served = _invocations
    return {"pid": os.getpid(), "environment": dict(os.environ), "served": served,
            "function_name": context.function_name, "remaining_ms": context.get_remaining_time_in_millis(),
            "started": started, "ended": time.time()}


def attempts(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Try AWS calls the health function's role does and does not allow, and report each as 'ok' or
    the error AWS answered."""
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(health_role_attempts())}


def health_role_attempts(**more: Any) -> dict[str, str]:
    """Each call the IAM tests try as the health function (and ``more``: name → call): 'ok', or the
    error code and message AWS answered."""
    import boto3
    from botocore.exceptions import ClientError

    def attempt(call: Any) -> str:
        try:
            call()
        except ClientError as error:
            return f"{error.response['Error']['Code']}: {error.response['Error']['Message']}"
        return "ok"

    dynamodb, sfn = boto3.client("dynamodb"), boto3.client("stepfunctions")
    table = os.environ["TABLE_NAME"]
    calls = {
        "health item": lambda: dynamodb.get_item(TableName=table, Key={"pk": {"S": "HEALTH"}, "sk": {"S": "HEALTH"}}),
        "describe state machine": lambda: sfn.describe_state_machine(stateMachineArn=os.environ["STATE_MACHINE_ARN"]),
        "a user item": lambda: dynamodb.get_item(
            TableName=table, Key={"pk": {"S": "USER#someone"}, "sk": {"S": "META"}}),
        "start an execution": lambda: sfn.start_execution(stateMachineArn=os.environ["STATE_MACHINE_ARN"], input="{}"),
        "the model's secret": lambda: boto3.client("secretsmanager").get_secret_value(
            SecretId=os.environ["ANTHROPIC_API_KEY_SECRET_ARN"]),
        "the tenant role": lambda: boto3.client("sts").assume_role(
            RoleArn=os.environ["TENANT_ROLE_ARN"], RoleSessionName="health",
            Tags=[{"Key": "workspace_id", "Value": "01AAAAAAAAAAAAAAAAAAAAAAAA"}]),
    }
    return {name: attempt(call) for name, call in calls.items()} | {name: call() for name, call in more.items()}


def fails(event: dict[str, Any], context: Any) -> Any:
    """A handler that raises, as a handler with a bug does."""
    raise ValueError("as planned")
