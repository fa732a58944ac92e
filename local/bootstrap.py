"""Create the template's table and state machines on local endpoints that are already running.

For ``sam local`` with docker-compose (docs/sam-local.md; ``make sam-local`` runs it)::

    python -m local.bootstrap [--dynamodb http://127.0.0.1:8000] [--stepfunctions http://127.0.0.1:8083]

The defaults are the ports docker-compose.yml publishes. The table — keys, index, stream and TTL —
comes from template.yaml, with the same code the local cloud uses (:func:`ensure_table`); an
existing table is left as it is. The state machines are ``statemachines/*.asl.json`` with their
``DefinitionSubstitutions`` resolved as ``sam local`` answers them: a function's ARN names its
logical id (``arn:aws:lambda:us-east-1:123456789012:function:RunStepsFunction``), which ``sam local
start-lambda`` invokes, and each machine is named as the stack names it (``agenthq-agent-run``, the
ARN local/sam-local-env.json gives the functions). An existing machine gets the current definition.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from local.template import ACCOUNT_ID, PARTITION, LocalStack, Resolver, load_template, state_machines, table_definition

DYNAMODB_URL = "http://127.0.0.1:8000"  # docker-compose.yml's dynamodb service, as published on the host
STEPFUNCTIONS_URL = "http://127.0.0.1:8083"  # its stepfunctions service
ROLE_ARN = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/agenthq-sam-local"  # Step Functions Local assumes no role

T = TypeVar("T")


def ensure_table(dynamodb: Any, template: dict[str, Any], table_name: str) -> bool:
    """Create the template's table as ``table_name`` (with its TTL) unless it exists.

    ``dynamodb`` is a boto3 DynamoDB client. Returns True if the table was created.
    """
    definition = table_definition(template, table_name)
    name = definition["create"]["TableName"]
    if name in _table_names(dynamodb):
        return False
    dynamodb.create_table(**definition["create"])
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    if definition["ttl_attribute"]:
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": definition["ttl_attribute"]},
        )
    return True


def _table_names(dynamodb: Any) -> set[str]:
    names: set[str] = set()
    for page in dynamodb.get_paginator("list_tables").paginate():
        names.update(page["TableNames"])
    return names


class SamLocalResolver(Resolver):
    """Intrinsics as ``sam local`` resolves them: a function is known by its logical id."""

    def get_att(self, name: str, attribute: str) -> str:
        kind = self.template.get("Resources", {}).get(name, {}).get("Type")
        if kind == "AWS::Serverless::Function" and attribute == "Arn":
            return f"arn:{PARTITION}:lambda:{self.stack.region}:{ACCOUNT_ID}:function:{name}"
        return super().get_att(name, attribute)


def ensure_state_machines(sfn: Any, template: dict[str, Any], stack: LocalStack) -> dict[str, tuple[str, bool]]:
    """Create the template's state machines, or give existing ones the current definition.

    ``sfn`` is a boto3 Step Functions client. Returns logical id → (ARN, created).
    """
    existing: dict[str, str] = {}
    for page in sfn.get_paginator("list_state_machines").paginate():
        existing.update({machine["name"]: machine["stateMachineArn"] for machine in page["stateMachines"]})
    result: dict[str, tuple[str, bool]] = {}
    for spec in state_machines(template, SamLocalResolver(template, stack)):
        if spec.name in existing:
            sfn.update_state_machine(stateMachineArn=existing[spec.name], definition=spec.definition)
            result[spec.logical_id] = (existing[spec.name], False)
        else:
            arn = sfn.create_state_machine(name=spec.name, definition=spec.definition, roleArn=ROLE_ARN,
                                           type=spec.type)["stateMachineArn"]
            result[spec.logical_id] = (arn, True)
    return result


def when_answering(call: Callable[[], T], wait_seconds: float) -> T:
    """``call()``, again every half second while nothing answers at its endpoint (a container that
    `docker compose up -d` has just started), for at most ``wait_seconds``."""
    import botocore.exceptions

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return call()
        except (botocore.exceptions.ConnectionError, botocore.exceptions.ConnectionClosedError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    stack = LocalStack()
    parser = argparse.ArgumentParser(prog="python -m local.bootstrap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dynamodb", default=DYNAMODB_URL, metavar="URL",
                        help=f"DynamoDB endpoint (default {DYNAMODB_URL}: docker-compose's DynamoDB Local)")
    parser.add_argument("--stepfunctions", default=STEPFUNCTIONS_URL, metavar="URL",
                        help=f"Step Functions endpoint (default {STEPFUNCTIONS_URL}: docker-compose's "
                             "Step Functions Local); '' = create no state machine")
    parser.add_argument("--table", default=stack.table_name, help=f"table name (default {stack.table_name})")
    parser.add_argument("--region", default=stack.region, help=f"region (default {stack.region})")
    parser.add_argument("--wait", type=float, default=30, metavar="SECONDS",
                        help="how long to wait for an endpoint to answer (default 30)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import boto3
    import botocore.config
    import botocore.exceptions

    args = parse_args(argv)
    stack = LocalStack(region=args.region, table_name=args.table)
    template = load_template()

    def client(service: str, url: str) -> Any:
        # The local services accept any credentials (DynamoDB Local's -sharedDb ignores them): don't require real
        # ones. One attempt per call: when_answering does the waiting.
        return boto3.client(service, endpoint_url=url, region_name=args.region, aws_access_key_id="local",
                            aws_secret_access_key="local",  # nosec B106  # dummy, local
                            config=botocore.config.Config(retries={"total_max_attempts": 1}, connect_timeout=2))

    dynamodb = client("dynamodb", args.dynamodb)
    try:
        created = when_answering(lambda: ensure_table(dynamodb, template, args.table), args.wait)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        print(f"error: could not create table {args.table!r} at {args.dynamodb}: {exc}", file=sys.stderr)
        return 1
    print(f"table {args.table} {'created' if created else 'already exists'} at {args.dynamodb}")
    if not args.stepfunctions:
        return 0
    sfn = client("stepfunctions", args.stepfunctions)
    try:
        machines = when_answering(lambda: ensure_state_machines(sfn, template, stack), args.wait)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        print(f"error: could not create the state machines at {args.stepfunctions}: {exc}", file=sys.stderr)
        return 1
    for arn, new in machines.values():
        print(f"state machine {arn} {'created' if new else 'updated'} at {args.stepfunctions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
