"""Which IAM checks an AWS call implies (local.iam.calls), and the roles read
from template.yaml (local.iam.roles)."""

from __future__ import annotations

from local.iam.calls import Call, Lookups, checks_for, expression_attributes
from local.iam.roles import roles_from_template
from local.template import LocalStack, Resolver, load_template

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/t"
LOOKUPS = Lookups(partition_keys={("t", None): "pk", ("t", "gsi1"): "gsi1pk"})


def ddb(operation: str, **params) -> list:
    return checks_for(Call("dynamodb", "dynamodb", operation, params, "us-east-1", "123456789012"), LOOKUPS)


def s(value: str) -> dict:
    return {"S": value}


def test_an_item_call_is_one_check_with_its_partition_key():
    (check,) = ddb("GetItem", TableName="t", Key={"sk": s("META"), "pk": s("WS#1")})
    assert (check.action, check.resource) == ("dynamodb:GetItem", TABLE)
    assert check.context["dynamodb:LeadingKeys"] == ["WS#1"]
    assert check.context["dynamodb:Attributes"] == ["*", "pk", "sk"]  # no projection: every attribute


def test_each_item_of_a_transaction_is_checked_with_its_own_action_and_key():
    checks = ddb("TransactWriteItems", TransactItems=[
        {"Put": {"TableName": "t", "Item": {"pk": s("WS#1"), "sk": s("A"), "name": s("x")}}},
        {"Update": {"TableName": "t", "Key": {"pk": s("APIKEY#h"), "sk": s("META")}, "UpdateExpression": "SET #n = :v",
                    "ExpressionAttributeNames": {"#n": "revoked_at"}, "ExpressionAttributeValues": {":v": s("now")}}},
        {"Delete": {"TableName": "t", "Key": {"pk": s("SESSION#f"), "sk": s("META")}}},
        {"ConditionCheck": {"TableName": "t", "Key": {"pk": s("WS#2"), "sk": s("M")},
                            "ConditionExpression": "attribute_exists(pk)"}},
    ])
    assert [(c.action, c.context["dynamodb:LeadingKeys"]) for c in checks] == [
        ("dynamodb:PutItem", ["WS#1"]), ("dynamodb:UpdateItem", ["APIKEY#h"]),
        ("dynamodb:DeleteItem", ["SESSION#f"]), ("dynamodb:ConditionCheckItem", ["WS#2"])]
    assert checks[1].context["dynamodb:Attributes"] == ["pk", "revoked_at", "sk"]
    assert checks[0].context["dynamodb:Attributes"] == ["name", "pk", "sk"]


def test_batches_are_checked_key_by_key():
    gets = ddb("BatchGetItem", RequestItems={"t": {"Keys": [{"pk": s("WS#1"), "sk": s("A")},
                                                          {"pk": s("SESSION#2"), "sk": s("META")}]}})
    assert [(c.action, c.context["dynamodb:LeadingKeys"]) for c in gets] == [
        ("dynamodb:BatchGetItem", ["WS#1"]), ("dynamodb:BatchGetItem", ["SESSION#2"])]
    writes = ddb("BatchWriteItem", RequestItems={"t": [{"DeleteRequest": {"Key": {"pk": s("WS#1"), "sk": s("A")}}},
                                                       {"PutRequest": {"Item": {"pk": s("WS#9"), "sk": s("B")}}}]})
    assert [(c.action, c.context["dynamodb:LeadingKeys"]) for c in writes] == [
        ("dynamodb:BatchWriteItem", ["WS#1"]), ("dynamodb:BatchWriteItem", ["WS#9"])]


def test_a_query_checks_the_partition_key_value_of_its_table_or_index():
    (table_query,) = ddb("Query", TableName="t", KeyConditionExpression="#pk = :pk AND begins_with(#sk, :p)",
                         ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
                         ExpressionAttributeValues={":pk": s("WS#1"), ":p": s("RUN#")})
    assert (table_query.resource, table_query.context["dynamodb:LeadingKeys"]) == (TABLE, ["WS#1"])
    assert table_query.context["dynamodb:Select"] == "ALL_ATTRIBUTES"
    (index_query,) = ddb("Query", TableName="t", IndexName="gsi1",
                         KeyConditionExpression="gsi1sk > :s AND gsi1pk = :h",
                         ExpressionAttributeValues={":h": s("USER#7"), ":s": s("WS#")})
    assert index_query.resource == TABLE + "/index/gsi1"
    assert index_query.context["dynamodb:LeadingKeys"] == ["USER#7"]
    (scan,) = ddb("Scan", TableName="t")
    assert scan.action == "dynamodb:Scan" and "dynamodb:LeadingKeys" not in scan.context


def test_expression_attributes_are_the_top_level_names():
    names = {"#a": "last_used_at", "#b": "body"}
    assert expression_attributes("SET #a = :v, counts.tools = counts.tools + :one REMOVE #b[0]", names) == {
        "last_used_at", "counts", "body"}
    assert expression_attributes("attribute_exists(pk) AND NOT begins_with(sk, :p) OR size(items) > :n", {}) == {
        "pk", "sk", "items"}


def test_other_services_actions_and_resources():
    def checks(service, prefix, operation, params, **kw):
        return [(c.action, c.resource) for c in
                checks_for(Call(service, prefix, operation, params, "us-east-1", "123456789012", **kw), LOOKUPS)]

    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:agenthq-agent-run"
    assert checks("stepfunctions", "states", "StartExecution", {"stateMachineArn": arn}) == [
        ("states:StartExecution", arn)]
    assert checks("stepfunctions", "states", "SendTaskSuccess", {"taskToken": "x"}) == [("states:SendTaskSuccess", "*")]
    assert checks("ssm", "ssm", "GetParameter", {"Name": "/agenthq/jwt-public-keys"}) == [
        ("ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter/agenthq/jwt-public-keys")]
    assert checks("apigateway", "apigateway", "CreateUsagePlanKey", {"usagePlanId": "p1"}, method="POST",
                  path="/usageplans/p1/keys") == [("apigateway:POST", "arn:aws:apigateway:us-east-1::/usageplans/p1/keys")]
    assert checks("lambda", "lambda", "Invoke", {"FunctionName": "agenthq-RunStepsFunction"}) == [
        ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:123456789012:function:agenthq-RunStepsFunction")]
    assert checks("events", "events", "PutEvents", {"Entries": [{"EventBusName": "ops"}, {}]}) == [
        ("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/default"),
        ("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/ops")]
    role = "arn:aws:iam::123456789012:role/agenthq-TenantDataRole"
    assert checks("sts", "sts", "AssumeRole", {"RoleArn": role, "RoleSessionName": "ws-1",
                                               "Tags": [{"Key": "workspace_id", "Value": "1"}]}) == [
        ("sts:AssumeRole", role), ("sts:TagSession", role)]
    assert checks("sts", "sts", "GetCallerIdentity", {}) == []
    assert checks("sqs", "sqs", "SendMessage", {"QueueUrl": "q"}) == [("sqs:SendMessage", "*")]


def test_every_function_and_state_machine_has_its_role_from_the_template():
    template = load_template()
    stack = LocalStack()
    stack.refs["AnthropicApiKeySecret"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:agenthq/key-AbCdEf"
    for tier in ("Free", "Starter", "Pro"):  # the auth function may attach keys to these plans only
        stack.refs[f"{tier}UsagePlan"] = f"plan{tier.lower()}"
    roles = roles_from_template(template, Resolver(template, stack))
    functions = {k for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert set(roles.of_function) == functions
    assert roles.of_function["HealthFunction"].name == "agenthq-HealthFunctionRole"
    invokes = {"AgentRunStateMachine": "RunStepsFunction", "OffboardingStateMachine": "OffboardingFunction"}
    assert set(roles.of_state_machine) == set(invokes)
    for machine, function in invokes.items():  # SAM's LambdaInvokePolicy, expanded and resolved
        (statement,) = roles.of_state_machine[machine].policies[0]["Statement"]
        assert statement["Action"] == ["lambda:InvokeFunction"]
        assert statement["Resource"] == f"arn:aws:lambda:us-east-1:123456789012:function:agenthq-{function}*"
    tenant = roles.by_arn["arn:aws:iam::123456789012:role/agenthq-TenantDataRole"]
    assert tenant.trust_policy["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    # every intrinsic resolved to a local resource (Resolver answers "local-…" for what it cannot)
    assert "local-" not in repr([r.policies for r in roles.by_arn.values()])
