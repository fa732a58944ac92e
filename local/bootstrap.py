"""Create the template's table on a DynamoDB endpoint that is already running.

For ``sam local`` with docker-compose (docs/sam-local.md)::

    python -m local.bootstrap --dynamodb http://127.0.0.1:8000 [--table agenthq-local]

The table — keys, index, stream and TTL — comes from template.yaml, with the
same code the local cloud uses (:func:`ensure_table`). An existing table is
left as it is.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from local.template import LocalStack, load_template, table_definition


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    stack = LocalStack()
    parser = argparse.ArgumentParser(prog="python -m local.bootstrap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dynamodb", required=True, metavar="URL",
                        help="DynamoDB endpoint, e.g. http://127.0.0.1:8000 (DynamoDB Local)")
    parser.add_argument("--table", default=stack.table_name, help=f"table name (default {stack.table_name})")
    parser.add_argument("--region", default=stack.region, help=f"region (default {stack.region})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import boto3
    import botocore.exceptions

    args = parse_args(argv)
    # DynamoDB Local accepts any credentials (and -sharedDb ignores them): don't require real ones.
    dynamodb = boto3.client("dynamodb", endpoint_url=args.dynamodb, region_name=args.region,
                            aws_access_key_id="local", aws_secret_access_key="local")  # nosec B106  # dummy, local
    try:
        created = ensure_table(dynamodb, load_template(), args.table)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        print(f"error: could not create table {args.table!r} at {args.dynamodb}: {exc}", file=sys.stderr)
        return 1
    print(f"table {args.table} {'created' if created else 'already exists'} at {args.dynamodb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
