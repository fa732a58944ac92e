"""SQS queues of template.yaml, and their Lambda event-source mappings, as AWS runs them.

The queues live in moto's SQS (created from the template, a queue's RedrivePolicy with them):
moto keeps SQS's own semantics — ``DelaySeconds``, the visibility timeout, ``ChangeMessageVisibility``,
the receive count and the redrive to a dead-letter queue after ``maxReceiveCount`` receives.

For each function event of type ``SQS`` (``queue_mappings``), pollers receive up to BatchSize messages
(about four polls a second each; ``ScalingConfig.MaximumConcurrency`` pollers at most, 2 here) and
invoke the function with Lambda's SQS event. As Lambda does: when the invocation fails, no message is
deleted (each comes back after its visibility timeout); with ``ReportBatchItemFailures``, the
messages the answer names stay, the others are deleted; an answer naming an unknown message id
fails the whole batch.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from local.lambda_runtime import FunctionError, LambdaRuntime
from local.template import Resolver, resources_of_type

log = logging.getLogger("local.queues")

POLL_SECONDS = 0.25
LOCAL_POLLERS = 2


def queue_name(resolver: Resolver, logical_id: str) -> str:
    return resolver.get_att(logical_id, "QueueName")


def create_queues(template: dict[str, Any], resolver: Resolver, sqs: Any) -> None:
    """Every AWS::SQS::Queue of the template, dead-letter queues first; their URLs become their Refs."""
    queues = resources_of_type(template, "AWS::SQS::Queue")
    ordered = sorted(queues, key=lambda name: "RedrivePolicy" in queues[name].get("Properties", {}))
    for logical_id in ordered:
        props = queues[logical_id].get("Properties", {})
        attributes: dict[str, str] = {}
        for name in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
            if name in props:
                attributes[name] = str(props[name])
        if "RedrivePolicy" in props:
            import json

            redrive = resolver.resolve(props["RedrivePolicy"])
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": redrive["deadLetterTargetArn"],
                                                      "maxReceiveCount": int(redrive["maxReceiveCount"])})
        url = sqs.create_queue(QueueName=queue_name(resolver, logical_id), Attributes=attributes)["QueueUrl"]
        resolver.stack.refs[logical_id] = url


@dataclass(frozen=True)
class QueueMappingSpec:
    function: str  # logical id
    queue: str  # the queue's logical id
    batch_size: int
    report_item_failures: bool
    maximum_concurrency: int | None


def queue_mappings(template: dict[str, Any]) -> list[QueueMappingSpec]:
    found = []
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") != "SQS":
                continue
            props = event["Properties"]
            queue = props["Queue"]
            queue_id = queue["Fn::GetAtt"][0] if isinstance(queue, dict) and "Fn::GetAtt" in queue else str(queue)
            found.append(QueueMappingSpec(
                function=logical_id, queue=queue_id, batch_size=int(props.get("BatchSize", 10)),
                report_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                maximum_concurrency=(props.get("ScalingConfig") or {}).get("MaximumConcurrency")))
    return found


@dataclass
class QueueMapping:
    spec: QueueMappingSpec
    runtime: LambdaRuntime
    sqs: Any
    queue_url: str
    queue_arn: str
    region: str = "us-east-1"
    poll_seconds: float = POLL_SECONDS
    invocations: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> QueueMapping:
        pollers = min(LOCAL_POLLERS, self.spec.maximum_concurrency or LOCAL_POLLERS)
        for index in range(pollers):
            thread = threading.Thread(target=self._run, name=f"sqs-{self.spec.function}-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.poll_once():
                    continue  # more may be waiting: poll again at once
            except Exception:  # noqa: BLE001 - keep polling, as the service does
                log.exception("queue mapping of %s", self.spec.function)
            self._stop.wait(self.poll_seconds)

    def poll_once(self) -> int:
        """One receive and its invocation; how many messages it handed over."""
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.spec.batch_size,
                                            MessageSystemAttributeNames=["All"],
                                            MessageAttributeNames=["All"]).get("Messages", [])
        if not messages:
            return 0
        records = [self._record(m) for m in messages]
        self.invocations += 1
        try:
            answer = self.runtime.invoke(self.spec.function, {"Records": records})
        except FunctionError as error:
            log.warning("%s failed on a batch of %d messages: %s", self.spec.function, len(records), error)
            return len(records)  # nothing deleted: each comes back after its visibility timeout
        kept = self._kept(answer, records)
        done = [m for m in messages if m["MessageId"] not in kept]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        return len(records)

    def _kept(self, answer: Any, records: list[dict[str, Any]]) -> set[str]:
        """The message ids the answer hands back (all of them when it names one Lambda does not know)."""
        ids = {r["messageId"] for r in records}
        if not self.spec.report_item_failures or not isinstance(answer, dict):
            return set()
        failures = answer.get("batchItemFailures") or []
        kept = set()
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if identifier not in ids:
                return ids
            kept.add(identifier)
        return kept

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        body = message.get("Body", "")
        return {
            "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": body,
            "attributes": message.get("Attributes", {}), "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
            "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn, "awsRegion": self.region,
        }


def queue_arn(resolver: Resolver, logical_id: str) -> str:
    return resolver.get_att(logical_id, "Arn")
