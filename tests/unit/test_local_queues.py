"""The local cloud's SQS event-source mapping (local/queues.py) does what Lambda's does, on moto's SQS:
handed-back messages stay (and come back), the others are deleted, a failed invocation deletes nothing,
and a message received ``maxReceiveCount`` times moves to the dead-letter queue (the template's
RedrivePolicy)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.lambda_runtime import FunctionError, LambdaRuntime
from local.queues import QueueMapping, QueueMappingSpec, create_queues, queue_arn, queue_mappings
from local.template import LocalStack, Resolver, load_template

TEMPLATE = {"Resources": {
    "Dead": {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": 1209600}},
    "Work": {"Type": "AWS::SQS::Queue", "Properties": {
        "VisibilityTimeout": 180, "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["Dead", "Arn"]},
                                                    "maxReceiveCount": 2}}},
}}


class ScriptedRuntime(LambdaRuntime):
    """The runtime with one function whose answer the test scripts: it hands back the messages whose body
    says ``fail``, or raises when told to."""

    def __init__(self) -> None:
        super().__init__({})
        self.batches: list[list[dict[str, Any]]] = []
        self.crash = False

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        self.batches.append(event["Records"])
        if self.crash:
            raise FunctionError("Runtime.ExitError", "the function crashed")
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                                      if json.loads(r["body"]).get("fail")]}


@pytest.fixture()
def sqs() -> Any:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def mapping_on(sqs: Any, runtime: ScriptedRuntime) -> tuple[QueueMapping, Resolver]:
    # queues of their own: a local cloud of the same test session may share moto's backend
    resolver = Resolver(TEMPLATE, LocalStack(stack_name=f"queues-{uuid.uuid4().hex[:12]}"))
    create_queues(TEMPLATE, resolver, sqs)
    spec = QueueMappingSpec(function="Fn", queue="Work", batch_size=10, report_item_failures=True,
                            maximum_concurrency=None)
    return QueueMapping(spec, runtime, sqs, resolver.ref("Work"), queue_arn(resolver, "Work")), resolver


def visible(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def in_flight(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_the_template_s_queues_and_mapping_are_read_as_aws_would() -> None:
    (spec,) = [m for m in queue_mappings(load_template()) if m.function == "WebhookDeliveryFunction"]
    assert (spec.queue, spec.batch_size, spec.report_item_failures, spec.maximum_concurrency) == (
        "WebhookQueue", 2, True, 10)


def test_handed_back_messages_stay_and_the_others_are_deleted(sqs) -> None:
    runtime = ScriptedRuntime()
    mapping, resolver = mapping_on(sqs, runtime)
    url = resolver.ref("Work")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 1}))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 2, "fail": True}))
    assert mapping.poll_once() == 2
    record = runtime.batches[0][0]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == resolver.get_att("Work", "Arn")
    assert {"messageId", "receiptHandle", "body", "attributes", "md5OfBody"} <= set(record)
    assert (visible(sqs, url), in_flight(sqs, url)) == (0, 1)  # the handed-back one, hidden for its timeout
    assert mapping.poll_once() == 0  # not visible: not received again yet


def test_a_failed_invocation_deletes_nothing(sqs) -> None:
    runtime = ScriptedRuntime()
    runtime.crash = True
    mapping, resolver = mapping_on(sqs, runtime)
    url = resolver.ref("Work")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 1}))
    assert mapping.poll_once() == 1
    assert (visible(sqs, url), in_flight(sqs, url)) == (0, 1)


def test_a_message_received_max_receive_count_times_goes_to_the_dead_letter_queue(sqs) -> None:
    runtime = ScriptedRuntime()
    mapping, resolver = mapping_on(sqs, runtime)
    url, dead = resolver.ref("Work"), resolver.ref("Dead")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"fail": True}))
    for _ in range(2):
        assert mapping.poll_once() == 1
        receipt = runtime.batches[-1][0]["receiptHandle"]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0)  # due again now
    assert mapping.poll_once() == 0  # the third receive finds it moved
    assert visible(sqs, dead) == 1 and len(runtime.batches) == 2
