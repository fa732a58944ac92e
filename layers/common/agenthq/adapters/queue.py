"""The webhook delivery queue (SQS): messages naming one delivery, sent now or later.

SQS delays a message at most 15 minutes (``DelaySeconds``); a received message can be hidden for
up to 12 hours (``ChangeMessageVisibility``), which is how a failed attempt waits for the next one
(agenthq.webhooks.delivery).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

MAX_DELAY_SECONDS = 15 * 60
MAX_VISIBILITY_SECONDS = 12 * 3600


class DeliveryQueue(Protocol):
    def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None: ...

    def postpone(self, receipt_handle: str, seconds: int) -> None: ...


class SqsDeliveryQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message, sort_keys=True),
                                 DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(delay_seconds))))

    def postpone(self, receipt_handle: str, seconds: int) -> None:
        self.client.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=receipt_handle,
                                              VisibilityTimeout=max(0, min(MAX_VISIBILITY_SECONDS, int(seconds))))
