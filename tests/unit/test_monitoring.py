"""Monitoring on AWS, as template.yaml declares it: the alarms issue 12 asks for, each notifying the
encrypted alarm topic and watching resources the template has; the dashboard's body (valid JSON once
substituted, naming only the template's resources, covering every function); the application's
metrics in one namespace; tracing and log retention everywhere."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from agenthq.observability import APPLICATION_METRICS
from local.template import LocalStack, Resolver, function_name, load_template, resources_of_type

TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PSEUDO = {"AWS::StackName", "AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::URLSuffix"}
FUNCTIONS = sorted(resources_of_type(TEMPLATE, "AWS::Serverless::Function"))
APP = "app"  # the application's own namespace (the MetricsNamespace parameter), in EXPECTED below

# alarm → (what it is for, the metrics it must watch: (namespace, metric, {dimension: the Ref it takes}))
EXPECTED: dict[str, tuple[str, set[tuple[str, str, tuple[tuple[str, str], ...]]]]] = {
    "ApiServerErrorsAlarm": ("API 5xx rate", {
        ("AWS/ApiGateway", "5XXError", (("ApiName", "AWS::StackName"), ("Stage", "RestApi.Stage"))),
        ("AWS/ApiGateway", "Count", (("ApiName", "AWS::StackName"), ("Stage", "RestApi.Stage")))}),
    "ApiLatencyAlarm": ("p99 latency", {
        ("AWS/ApiGateway", "Latency", (("ApiName", "AWS::StackName"), ("Stage", "RestApi.Stage")))}),
    "LambdaThrottlesAlarm": ("Lambda throttles", {("AWS/Lambda", "Throttles", ())}),
    "TableThrottlesAlarm": ("DynamoDB throttles", {
        ("AWS/DynamoDB", "ReadThrottleEvents", (("TableName", "Table"),)),
        ("AWS/DynamoDB", "WriteThrottleEvents", (("TableName", "Table"),)),
        ("AWS/DynamoDB", "ReadThrottleEvents", (("TableName", "Table"), ("GlobalSecondaryIndexName", "gsi1"))),
        ("AWS/DynamoDB", "WriteThrottleEvents", (("TableName", "Table"), ("GlobalSecondaryIndexName", "gsi1")))}),
    "ModelThrottlesAlarm": ("model API throttles", {(APP, "ModelThrottles", ())}),
    "RunsFailedAlarm": ("failed runs", {(APP, "RunsFailed", ()), (APP, "RunsSucceeded", ()),
                                        (APP, "RunsTimedOut", ())}),
    "StateMachineFailuresAlarm": ("Step Functions failures", {
        ("AWS/States", "ExecutionsFailed", (("StateMachineArn", "AgentRunStateMachine"),)),
        ("AWS/States", "ExecutionsFailed", (("StateMachineArn", "OffboardingStateMachine"),))}),
    "StateMachineTimeoutsAlarm": ("Step Functions timeouts", {
        ("AWS/States", "ExecutionsTimedOut", (("StateMachineArn", "AgentRunStateMachine"),)),
        ("AWS/States", "ExecutionsTimedOut", (("StateMachineArn", "OffboardingStateMachine"),))}),
    "BroadcasterErrorsAlarm": ("broadcaster errors", {
        ("AWS/Lambda", "Errors", (("FunctionName", "BroadcasterFunction"),)), (APP, "BroadcastFailures", ())}),
    "BroadcasterIteratorAgeAlarm": ("broadcaster iterator age", {
        ("AWS/Lambda", "IteratorAge", (("FunctionName", "BroadcasterFunction"),))}),
    "BudgetAlertsAlarm": ("budget alerts", {(APP, "BudgetAlerts", ())}),
    "PeriodResetDeadLetterAlarm": ("the period reset's dead letters", {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", (("QueueName", "PeriodResetDeadLetterQueue.QueueName"),))}),
    "WebhookDeadLetterAlarm": ("webhook deliveries' dead letters", {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", (("QueueName", "WebhookDeadLetterQueue.QueueName"),))}),
}


# alarms on a statistic other than a sum: the worst request, the oldest record
STATISTIC = {"ApiLatencyAlarm": ("ExtendedStatistic", "p99"), "BroadcasterIteratorAgeAlarm": ("Statistic", "Maximum")}


def _name(value: Any) -> str:
    """A dimension value as the name of what it refers to (Ref, GetAtt) or the literal."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return ".".join(value["Fn::GetAtt"])
    return str(value)


def watched(alarm: dict[str, Any]) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric, dimensions) of every metric an alarm reads, custom namespace shown as APP."""
    props = alarm["Properties"]
    metrics = [props] if "MetricName" in props else [q["MetricStat"]["Metric"] for q in props["Metrics"]
                                                     if "MetricStat" in q]
    found = set()
    for metric in metrics:
        namespace = APP if metric["Namespace"] == {"Ref": "MetricsNamespace"} else metric["Namespace"]
        dimensions = tuple((d["Name"], _name(d["Value"])) for d in metric.get("Dimensions", []))
        if namespace == APP:  # the application's metrics have one dimension, the service
            service = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
            assert dimensions == (("service", service),), alarm
            dimensions = ()
        found.add((namespace, metric["MetricName"], dimensions))
    return found


def references(value: Any) -> set[str]:
    """Every name a piece of the template refers to: Ref, GetAtt, and ${…} in Sub (minus its own variables)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref":
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0])
            elif key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                found |= {n.split(".")[0] if not n.startswith("AWS::") else n
                          for n in re.findall(r"\$\{([^}!]+)\}", text)} - set(variables)
                found |= references(variables)
            else:
                found |= references(arg)
    return found


def exists(name: str) -> bool:
    base = name.removesuffix(".Stage")  # SAM's <Api>.Stage
    return name in PSEUDO or base in RESOURCES or base in TEMPLATE["Parameters"]


@pytest.mark.parametrize("logical_id", sorted(EXPECTED))
def test_each_alarm_exists_watches_what_it_is_for_and_notifies_the_topic(logical_id):
    alarm = RESOURCES.get(logical_id)
    assert alarm and alarm["Type"] == "AWS::CloudWatch::Alarm", f"no {EXPECTED[logical_id][0]} alarm"
    props = alarm["Properties"]
    assert watched(alarm) == EXPECTED[logical_id][1]
    if logical_id in STATISTIC:
        key, statistic = STATISTIC[logical_id]
        assert props[key] == statistic
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert props.get("OKActions", [{"Ref": "AlarmTopic"}]) == [{"Ref": "AlarmTopic"}]
    assert props["TreatMissingData"] == "notBreaching", "no traffic is not an incident"
    assert len(props["AlarmDescription"].split()) >= 10, "say what it means and what to do"
    # named after the stack, so that the topic's key and policy admit it (…:alarm:<stack>-*)
    assert props["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-")
    missing = {name for name in references(alarm) if not exists(name)}
    assert not missing, f"{logical_id} refers to what the template does not have: {missing}"
    if "Metrics" in props:
        assert [q.get("ReturnData", True) for q in props["Metrics"]].count(True) == 1


def test_every_alarm_of_the_template_is_one_of_these():
    assert set(resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm")) == set(EXPECTED)


def test_the_alarm_topic_is_encrypted_with_a_key_the_stacks_alarms_may_use():
    topic = RESOURCES["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}  # not alias/aws/sns: CloudWatch cannot use it
    key = RESOURCES["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    grants = [s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert len(grants) == 1 and set(grants[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    publish = RESOURCES["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Principal"] for s in publish] == [{"Service": "cloudwatch.amazonaws.com"}]
    for statement in (grants[0], *publish):
        source = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
        assert source.endswith(":alarm:${AWS::StackName}-*"), "only this stack's alarms"
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    subscription = RESOURCES["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail" and subscription["Properties"]["Protocol"] == "email"
    assert TEMPLATE["Parameters"]["AlarmEmail"]["Default"] == "", "the e-mail is optional"


def test_the_application_metrics_have_one_namespace_set_in_one_place():
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    for logical_id, alarm in resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm").items():
        for namespace, metric, _ in watched(alarm):
            if not namespace.startswith("AWS/"):
                assert namespace == APP, logical_id
                assert metric in APPLICATION_METRICS, f"{logical_id}: no code emits {metric}"


def dashboard() -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The dashboard's body as deployed in the local stack's names, its template text and Sub variables."""
    text, variables = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    resolved = Resolver(TEMPLATE, LocalStack()).resolve(RESOURCES["Dashboard"]["Properties"]["DashboardBody"])
    return json.loads(resolved), text, variables


def test_the_dashboard_body_is_json_and_names_only_the_templates_resources():
    body, text, variables = dashboard()
    assert body["widgets"]
    missing = {name for name in references(RESOURCES["Dashboard"]) if not exists(name)}
    assert not missing, f"the dashboard refers to what the template does not have: {missing}"
    assert variables["ServiceName"] == TEMPLATE["Globals"]["Function"]["Environment"]["Variables"][
        "POWERTOOLS_SERVICE_NAME"]
    assert "arn:aws" not in text and "AgentHQ" not in text.replace("# AgentHQ", ""), "names come from the template"


def _metric_rows(body: dict[str, Any]) -> list[list[Any]]:
    return [row for w in body["widgets"] if w["type"] == "metric" for row in w["properties"]["metrics"]
            if isinstance(row[0], str)]


def _expand(rows: list[list[Any]]) -> list[tuple[str, str, dict[str, str]]]:
    """CloudWatch's metric rows ("." repeats the row above) as (namespace, metric, dimensions)."""
    out, previous = [], []
    for row in rows:
        cells = [c for c in row if not isinstance(c, dict)]
        cells = [previous[i] if c == "." and i < len(previous) else c for i, c in enumerate(cells)]
        previous = cells
        out.append((cells[0], cells[1], dict(zip(cells[2::2], cells[3::2], strict=True))))
    return out


def test_the_dashboard_shows_every_function_the_apis_the_state_machines_the_table_and_the_alarms():
    body, _, _ = dashboard()
    stack = LocalStack()
    resolver = Resolver(TEMPLATE, stack)
    rows = _expand(_metric_rows(body))
    per_function = {metric: {d["FunctionName"] for ns, m, d in rows if ns == "AWS/Lambda" and m == metric}
                    for metric in ("Errors", "Throttles", "Duration")}
    for metric, names in per_function.items():
        assert names == {function_name(stack, f) for f in FUNCTIONS}, f"Lambda {metric}: every function, no other"
    apis = {(m, d.get("ApiName") or d.get("ApiId")) for ns, m, d in rows if ns == "AWS/ApiGateway"}
    assert {("5XXError", stack.stack_name), ("4XXError", stack.stack_name), ("Latency", stack.stack_name),
            ("ConnectCount", resolver.ref("LiveApi"))} <= apis
    machines = {d["StateMachineArn"] for ns, m, d in rows if ns == "AWS/States" and m == "ExecutionsFailed"}
    assert machines == {resolver.ref(sm) for sm in resources_of_type(TEMPLATE, "AWS::Serverless::StateMachine")}
    assert {m for ns, m, d in rows if ns == "AWS/DynamoDB" and d.get("TableName") == stack.table_name} >= {
        "ReadThrottleEvents", "WriteThrottleEvents"}
    assert ("AWS/Lambda", "IteratorAge", {"FunctionName": function_name(stack, "BroadcasterFunction")}) in rows
    custom = {m for ns, m, d in rows if ns == resolver.ref("MetricsNamespace")}
    assert custom <= APPLICATION_METRICS, f"no code emits {custom - APPLICATION_METRICS}"
    assert {"RunsStarted", "RunsSucceeded", "RunsFailed", "ModelCalls", "ModelCostMicroUSD", "ModelInputTokens",
            "ModelOutputTokens", "ModelThrottles", "RequestsRateLimited", "RequestsQuotaExceeded", "UsageAlerts",
            "BudgetAlerts"} <= custom
    [alarms] = [w["properties"]["alarms"] for w in body["widgets"] if w["type"] == "alarm"]
    assert len(alarms) == len(EXPECTED), "the alarm widget lists every alarm"


def test_tracing_and_log_retention_everywhere():
    assert TEMPLATE["Globals"]["Function"]["Tracing"] == "Active"
    assert RESOURCES["RestApi"]["Properties"]["TracingEnabled"] is True
    for logical_id in resources_of_type(TEMPLATE, "AWS::Serverless::StateMachine"):
        assert RESOURCES[logical_id]["Properties"]["Tracing"] == {"Enabled": True}, logical_id
    for logical_id in FUNCTIONS:
        group = RESOURCES[logical_id]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert RESOURCES[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}, logical_id
