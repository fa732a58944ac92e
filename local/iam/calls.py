"""What IAM checks one AWS API call implies: actions, resources and condition keys.

For DynamoDB, as its fine-grained access control documents:

- item calls (GetItem, PutItem, UpdateItem, DeleteItem) are one check on the
  table, with ``dynamodb:LeadingKeys`` = the item's partition key value;
- TransactWriteItems is one check per item, with that item's own action
  (Put → PutItem, Update → UpdateItem, Delete → DeleteItem, ConditionCheck →
  ConditionCheckItem) and partition key; TransactGetItems likewise (GetItem);
- BatchGetItem / BatchWriteItem are one check per key or item, with the
  batch action and that item's partition key;
- Query checks the table or the index it names, with the partition key value
  the key condition gives (the index's partition key for an index); Scan has
  no leading keys (so ``ForAllValues`` conditions on them hold, as on AWS);
- ``dynamodb:Attributes`` lists the top-level attribute names a request
  reads, writes or tests (key, projection, update and condition expressions);
  a read without a projection reads every attribute, written ``*``;
  ``dynamodb:Select`` and ``dynamodb:ReturnValues`` carry their defaults.

Other services: Step Functions, SSM, Secrets Manager, STS (AssumeRole, plus
TagSession when tags are passed, with ``aws:RequestTag/…`` and
``aws:TagKeys``), API Gateway (``apigateway:<HTTP method>`` on the path),
Lambda (``lambda:InvokeFunction``), EventBridge (``events:PutEvents`` per
bus), EventBridge Scheduler (schedules, and ``iam:PassRole`` of a target's role), SQS (``sqs:<Operation>``
on the queue its QueueUrl names), the WebSocket API's @connections API (``execute-api:ManageConnections``
on the connection's ARN). Any other call is ``<service>:<Operation>`` on ``*``, which only a
policy allowing every resource allows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.iam.policy import ContextValue


@dataclass(frozen=True)
class Call:
    """One API call as botocore is about to send it."""

    service: str  # botocore's service name: dynamodb, stepfunctions, ...
    prefix: str  # the IAM service prefix (botocore's signing name): dynamodb, states, ...
    operation: str  # GetItem, StartExecution, ...
    params: Mapping[str, Any]  # the API parameters
    region: str
    account: str
    method: str = "POST"  # HTTP method of the request (API Gateway's actions are methods)
    path: str = "/"  # HTTP path of the request, without the query
    url: str = ""  # the whole URL (the WebSocket API's @connections endpoint carries its API and stage)


@dataclass(frozen=True)
class Check:
    action: str
    resource: str
    context: dict[str, ContextValue] = field(default_factory=dict)
    what: str = ""  # which part of the call, for the log ("TransactWriteItems item 2 (Put)")


@dataclass
class Lookups:
    """What the checks need to know about the local resources."""

    partition_keys: dict[tuple[str, str | None], str] = field(default_factory=dict)  # (table, index) -> attribute
    secret_arn: Callable[[str], str] = lambda secret_id: secret_id
    websocket_api_id: str = ""  # the local WebSocket API's id (its @connections endpoint is on 127.0.0.1)


def checks_for(call: Call, lookups: Lookups) -> list[Check]:
    """The checks a call must pass, every one of them."""
    handler = _SERVICES.get(call.service)
    if handler is not None:
        return handler(call, lookups)
    return [Check(f"{call.prefix}:{call.operation}", "*")]


# --------------------------------------------------------------------------- DynamoDB

_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                 "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def _dynamodb(call: Call, lookups: Lookups) -> list[Check]:
    p, op = call.params, call.operation
    if op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
        return [_item_check(call, lookups, op, op, p)]
    if op in ("TransactWriteItems", "TransactGetItems"):
        checks = []
        for number, entry in enumerate(p.get("TransactItems", []), start=1):
            (kind, body), = entry.items()
            checks.append(_item_check(call, lookups, _ITEM_ACTIONS[kind], kind, body,
                                      what=f"{op} item {number} ({kind})"))
        return checks
    if op == "BatchGetItem":
        return [_item_check(call, lookups, op, "Get", {"TableName": table, "Key": key, **_projection(spec)},
                            what=f"{op} {table} key {number}")
                for table, spec in p.get("RequestItems", {}).items()
                for number, key in enumerate(spec.get("Keys", []), start=1)]
    if op == "BatchWriteItem":
        checks = []
        for table, requests in p.get("RequestItems", {}).items():
            for number, request in enumerate(requests, start=1):
                (kind, body), = request.items()
                shape = "Put" if kind == "PutRequest" else "Delete"
                checks.append(_item_check(call, lookups, op, shape, {"TableName": table, **body},
                                          what=f"{op} {table} item {number} ({kind})"))
        return checks
    if op in ("Query", "Scan"):
        return [_read_check(call, lookups)]
    resource = p.get("StreamArn") or p.get("ResourceArn") or (_table_arn(call, p["TableName"]) if "TableName" in p
                                                               else "*")
    return [Check(f"dynamodb:{op}", resource)]


def _projection(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in ("ProjectionExpression", "AttributesToGet", "ExpressionAttributeNames") if k in spec}


def _item_check(call: Call, lookups: Lookups, action: str, shape: str, body: Mapping[str, Any],
                what: str = "") -> Check:
    """One item: ``shape`` says how the body reads (Get, Put, Update, Delete, ConditionCheck)."""
    table = body["TableName"]
    item = body.get("Item") if shape in ("Put", "PutItem") else body.get("Key")
    item = item or {}
    names = body.get("ExpressionAttributeNames", {})
    partition = lookups.partition_keys.get((_table_name(table), None)) or next(iter(item), None)
    attributes: set[str] = set(item)
    attributes |= expression_attributes(body.get("ConditionExpression"), names)
    attributes |= set(body.get("Expected", {}))
    context: dict[str, ContextValue] = {"dynamodb:LeadingKeys": [_scalar(item[partition])] if partition in item else []}
    if shape in ("Get", "GetItem"):
        projected = _projected(body, names)
        attributes |= projected if projected else {"*"}
    if shape in ("Update", "UpdateItem"):
        attributes |= expression_attributes(body.get("UpdateExpression"), names)
        attributes |= set(body.get("AttributeUpdates", {}))
    if shape in ("Put", "PutItem", "Update", "UpdateItem", "Delete", "DeleteItem"):
        context["dynamodb:ReturnValues"] = body.get("ReturnValues", "NONE")
    context["dynamodb:Attributes"] = sorted(attributes)
    if "ReturnConsumedCapacity" in call.params:
        context["dynamodb:ReturnConsumedCapacity"] = call.params["ReturnConsumedCapacity"]
    return Check(f"dynamodb:{action}", _table_arn(call, table), context, what or call.operation)


def _read_check(call: Call, lookups: Lookups) -> Check:
    p = call.params
    index = p.get("IndexName")
    resource = _table_arn(call, p["TableName"]) + (f"/index/{index}" if index else "")
    names = p.get("ExpressionAttributeNames", {})
    projected = _projected(p, names)
    attributes = set(projected) if projected else {"*"}
    attributes |= expression_attributes(p.get("FilterExpression"), names)
    context: dict[str, ContextValue] = {
        "dynamodb:Select": p.get("Select") or ("SPECIFIC_ATTRIBUTES" if projected else
                                               "ALL_PROJECTED_ATTRIBUTES" if index else "ALL_ATTRIBUTES"),
    }
    if call.operation == "Query":
        partition = lookups.partition_keys.get((_table_name(p["TableName"]), index))
        values = p.get("ExpressionAttributeValues", {})
        key_condition = p.get("KeyConditionExpression")
        attributes |= expression_attributes(key_condition, names)
        leading = key_condition_value(key_condition, names, values, partition) if key_condition else None
        if leading is None and p.get("KeyConditions"):  # the legacy parameter
            conditions = p["KeyConditions"]
            key = partition if partition in conditions else next(iter(conditions))
            attributes |= set(conditions)
            leading = _scalar(conditions[key]["AttributeValueList"][0])
        context["dynamodb:LeadingKeys"] = [leading] if leading is not None else []
    context["dynamodb:Attributes"] = sorted(attributes)
    if "ReturnConsumedCapacity" in p:
        context["dynamodb:ReturnConsumedCapacity"] = p["ReturnConsumedCapacity"]
    return Check(f"dynamodb:{call.operation}", resource, context, call.operation)


def _projected(body: Mapping[str, Any], names: Mapping[str, str]) -> set[str]:
    if body.get("ProjectionExpression"):
        return expression_attributes(body["ProjectionExpression"], names)
    return set(body.get("AttributesToGet", []))


_TOKEN = re.compile(r":[A-Za-z0-9_]+|#[A-Za-z0-9_]+|[A-Za-z_][A-Za-z0-9_]*|\S")
_KEYWORDS = {"set", "remove", "add", "delete", "and", "or", "not", "between", "in", "attribute_exists",
             "attribute_not_exists", "attribute_type", "begins_with", "contains", "size", "if_not_exists",
             "list_append"}


def expression_attributes(expression: str | None, names: Mapping[str, str]) -> set[str]:
    """The top-level attribute names an expression refers to (``#n`` resolved;
    ``a.b[0]`` is ``a``; values, functions and keywords are not names)."""
    found: set[str] = set()
    previous = ""
    for token in _TOKEN.findall(expression or ""):
        if previous != "." and token.startswith("#"):
            found.add(names.get(token, token))
        elif previous != "." and (token[0].isalpha() or token[0] == "_") and token.lower() not in _KEYWORDS:
            found.add(token)
        previous = token
    return found


def key_condition_value(expression: str, names: Mapping[str, str], values: Mapping[str, Any],
                        partition: str | None) -> str | None:
    """The partition key value in a key condition (``pk = :v`` or ``:v = pk``)."""
    for left, right in re.findall(r"([#:]?[A-Za-z0-9_]+)\s*=\s*([#:]?[A-Za-z0-9_]+)", expression):
        for name, value in ((left, right), (right, left)):
            attribute = names.get(name, name)
            if value.startswith(":") and not name.startswith(":") and (partition is None or attribute == partition):
                return _scalar(values[value]) if value in values else None
    return None


def _scalar(value: Mapping[str, Any]) -> str:
    (kind, raw), = value.items()
    if kind == "B" and isinstance(raw, (bytes, bytearray)):
        import base64

        return base64.b64encode(raw).decode()
    return str(raw)


def _table_name(table: str) -> str:
    return table.split(":table/", 1)[1].split("/", 1)[0] if table.startswith("arn:") else table


def _table_arn(call: Call, table: str) -> str:
    return table if table.startswith("arn:") else f"arn:aws:dynamodb:{call.region}:{call.account}:table/{table}"


# --------------------------------------------------------------------------- other services


def _stepfunctions(call: Call, lookups: Lookups) -> list[Check]:
    p = call.params
    resource = p.get("executionArn") or p.get("stateMachineArn") or p.get("mapRunArn") or "*"
    return [Check(f"states:{call.operation}", resource)]


def _ssm(call: Call, lookups: Lookups) -> list[Check]:
    p = call.params
    names = p.get("Names") or ([p["Name"]] if "Name" in p else [p["Path"]] if "Path" in p else [])
    if not names:
        return [Check(f"ssm:{call.operation}", "*")]
    return [Check(f"ssm:{call.operation}",
                  f"arn:aws:ssm:{call.region}:{call.account}:parameter/{name.lstrip('/')}") for name in names]


def _secretsmanager(call: Call, lookups: Lookups) -> list[Check]:
    secret = call.params.get("SecretId") or call.params.get("Name")
    resource = "*" if secret is None else secret if secret.startswith("arn:") else lookups.secret_arn(secret)
    return [Check(f"secretsmanager:{call.operation}", resource)]


def _sts(call: Call, lookups: Lookups) -> list[Check]:
    p = call.params
    if call.operation in ("GetCallerIdentity", "GetSessionToken"):
        return []  # every principal may ask who it is
    if call.operation != "AssumeRole":
        return [Check(f"sts:{call.operation}", "*")]
    tags = {t["Key"]: t["Value"] for t in p.get("Tags", [])}
    context: dict[str, ContextValue] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    context["sts:RoleSessionName"] = p.get("RoleSessionName", "")
    if tags:
        context["aws:TagKeys"] = sorted(tags)
    checks = [Check("sts:AssumeRole", p["RoleArn"], context, "AssumeRole")]
    if tags:
        checks.append(Check("sts:TagSession", p["RoleArn"], context, "AssumeRole (session tags)"))
    return checks


def _apigateway(call: Call, lookups: Lookups) -> list[Check]:
    return [Check(f"apigateway:{call.method.upper()}", f"arn:aws:apigateway:{call.region}::{call.path}")]


def _lambda(call: Call, lookups: Lookups) -> list[Check]:
    name = call.params.get("FunctionName", "*")
    if name != "*" and not name.startswith("arn:"):
        name = f"arn:aws:lambda:{call.region}:{call.account}:function:{name}"
    action = "lambda:InvokeFunction" if call.operation == "Invoke" else f"lambda:{call.operation}"
    return [Check(action, name)]


def _events(call: Call, lookups: Lookups) -> list[Check]:
    if call.operation != "PutEvents":
        name = call.params.get("EventBusName") or call.params.get("Name")
        return [Check(f"events:{call.operation}", _bus_arn(call, name) if name else "*")]
    buses = {entry.get("EventBusName") or "default" for entry in call.params.get("Entries", [])}
    return [Check("events:PutEvents", _bus_arn(call, bus)) for bus in sorted(buses)]


def _bus_arn(call: Call, name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:events:{call.region}:{call.account}:event-bus/{name}"


def _ses(call: Call, lookups: Lookups) -> list[Check]:
    """SES (API v1): ``ses:SendEmail`` on the sending identity's ARN, with ``ses:FromAddress`` (the address in
    ``Source``, without a display name) and ``ses:Recipients``. The identity is the From address's (the local
    cloud verifies the address itself; on AWS it may be its domain, which a policy on ``identity/*`` with the
    ``ses:FromAddress`` condition covers alike)."""
    import email.utils

    p = call.params
    if call.operation not in ("SendEmail", "SendRawEmail"):
        return [Check(f"ses:{call.operation}", "*")]
    source = email.utils.parseaddr(p.get("Source", ""))[1]
    recipients = sorted({a for kind in ("ToAddresses", "CcAddresses", "BccAddresses")
                         for a in p.get("Destination", {}).get(kind, [])})
    context: dict[str, ContextValue] = {"ses:FromAddress": source, "ses:Recipients": recipients,
                                        "ses:ApiVersion": "1"}
    return [Check(f"ses:{call.operation}", f"arn:aws:ses:{call.region}:{call.account}:identity/{source}", context)]


def _connections(call: Call, lookups: Lookups) -> list[Check]:
    """The WebSocket API's @connections API: ``execute-api:ManageConnections`` on
    ``arn:aws:execute-api:<region>:<account>:<api id>/<stage>/<METHOD>/@connections/<id>``."""
    import urllib.parse

    url = urllib.parse.urlsplit(call.url)
    host = url.hostname or ""
    api_id = host.split(".", 1)[0] if ".execute-api." in host else lookups.websocket_api_id or "*"
    path = url.path or call.path
    stage, _, rest = path.lstrip("/").partition("/")
    if not rest.startswith("@connections"):  # an endpoint without a stage: the path is the operation's
        stage, rest = "*", path.lstrip("/")
    return [Check("execute-api:ManageConnections",
                  f"arn:aws:execute-api:{call.region}:{call.account}:{api_id}/{stage}/{call.method.upper()}/{rest}")]


def _scheduler(call: Call, lookups: Lookups) -> list[Check]:
    """EventBridge Scheduler: a schedule's actions on ``…:schedule/<group>/<name>``, a group's on
    ``…:schedule-group/<name>``; creating or updating a schedule also passes its target's role
    (``iam:PassRole``, with ``iam:PassedToService``), as AWS checks it."""
    p = call.params
    base = f"arn:aws:scheduler:{call.region}:{call.account}"
    if call.operation in ("CreateSchedule", "UpdateSchedule", "DeleteSchedule", "GetSchedule"):
        checks = [Check(f"scheduler:{call.operation}",
                        f"{base}:schedule/{p.get('GroupName') or 'default'}/{p.get('Name', '')}")]
        role = (p.get("Target") or {}).get("RoleArn")
        if role and call.operation in ("CreateSchedule", "UpdateSchedule"):
            checks.append(Check("iam:PassRole", role, {"iam:PassedToService": "scheduler.amazonaws.com"},
                                "the target's role"))
        return checks
    if call.operation in ("CreateScheduleGroup", "DeleteScheduleGroup", "GetScheduleGroup"):
        return [Check(f"scheduler:{call.operation}", f"{base}:schedule-group/{p.get('Name', '')}")]
    return [Check(f"scheduler:{call.operation}", "*")]


def _sqs(call: Call, lookups: Lookups) -> list[Check]:
    """``sqs:<Operation>`` on the queue the call's QueueUrl names (``…/<account>/<name>``)."""
    parts = str(call.params.get("QueueUrl") or "").rstrip("/").split("/")
    if len(parts) < 2 or not parts[-1]:
        return [Check(f"sqs:{call.operation}", "*")]
    resource = f"arn:aws:sqs:{call.region}:{parts[-2] or call.account}:{parts[-1]}"
    return [Check(f"sqs:{call.operation}", resource)]


_SERVICES: dict[str, Callable[[Call, Lookups], list[Check]]] = {
    "apigatewaymanagementapi": _connections,
    "dynamodb": _dynamodb,
    "stepfunctions": _stepfunctions,
    "ssm": _ssm,
    "secretsmanager": _secretsmanager,
    "sts": _sts,
    "apigateway": _apigateway,
    "lambda": _lambda,
    "events": _events,
    "scheduler": _scheduler,
    "ses": _ses,
    "sqs": _sqs,
}
