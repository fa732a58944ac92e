"""Webhook delivery: the table's stream (deliverable events) → deliveries on the queue; the queue → attempts.

Two event sources, one concern. Failures are reported per record (``ReportBatchItemFailures``): a
stream record that failed is retried by the mapping from it on; a queue message handed back waits its
backoff (``ChangeMessageVisibility``) and comes again (agenthq.webhooks.delivery).
"""

import json

from agenthq.observability import logger
from agenthq.services import get_services
from agenthq.webhooks import delivery


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: object) -> dict:
    records = event.get("Records", [])
    if records and records[0].get("eventSource") == "aws:sqs":
        return _attempts(records)
    return _fan_out(records)


def _fan_out(records: list[dict]) -> dict:
    services = get_services()
    for record in records:
        try:
            if record.get("eventName") == "INSERT":
                delivery.fan_out(services, (record.get("dynamodb") or {}).get("NewImage") or {})
        except Exception:
            logger.exception("webhook fan-out failed; the mapping retries from this record")
            return {"batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}
    return {"batchItemFailures": []}


def _attempts(records: list[dict]) -> dict:
    services = get_services()
    failures = []
    for record in records:
        try:
            outcome = delivery.attempt(services, json.loads(record.get("body") or "{}"))
            if outcome.postpone is not None:
                services.webhook_queue.postpone(record["receiptHandle"], outcome.postpone)
                failures.append({"itemIdentifier": record["messageId"]})
        except Exception:
            logger.exception("webhook delivery attempt failed; the queue delivers the message again")
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
