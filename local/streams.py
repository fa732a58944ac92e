"""DynamoDB stream → function, as Lambda's event-source mapping does it.

For each DynamoDB event source in template.yaml (``local.template.stream_mappings``):
the table's stream in DynamoDB Local is read shard by shard (open shards from
the starting position, shards that appear later from their start, a child
after its parent is read to the end), about four times a second per shard as
Lambda polls; records are filtered with the mapping's FilterCriteria (dropped
records are never delivered, as on AWS), and handed to the function in
batches of at most BatchSize, in order. A batch whose invocation fails is
retried whole; with ``ReportBatchItemFailures`` a batch answering
``batchItemFailures`` is retried from the first failed record on (Lambda's
checkpoint). After MaximumRetryAttempts the records are skipped (AWS would
send them to an on-failure destination; none is configured).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from local.lambda_runtime import FunctionError, LambdaRuntime
from local.template import StreamMappingSpec

log = logging.getLogger("local.streams")

POLL_SECONDS = 0.25
DISCOVER_SECONDS = 5.0


def matches(pattern: dict[str, Any], record: Any) -> bool:
    """Lambda's event filtering for the patterns this template uses: nested objects, lists of allowed values."""
    if not isinstance(record, dict):
        return False
    for key, expected in pattern.items():
        value = record.get(key)
        if isinstance(expected, dict):
            if not matches(expected, value):
                return False
        elif isinstance(expected, list):
            if value not in expected:
                return False
        elif value != expected:
            return False
    return True


@dataclass
class _Shard:
    id: str
    parent: str | None
    iterator: str | None = None
    done: bool = False


@dataclass
class StreamMapping:
    spec: StreamMappingSpec
    runtime: LambdaRuntime
    dynamodb: Any  # boto3 clients
    streams: Any
    table_name: str
    region: str = "us-east-1"
    poll_seconds: float = POLL_SECONDS
    invocations: int = 0
    skipped: int = 0
    _shards: dict[str, _Shard] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _stream_arn: str = ""

    def start(self) -> StreamMapping:
        self._stream_arn = self.dynamodb.describe_table(TableName=self.table_name)["Table"]["LatestStreamArn"]
        self._discover(initial=True)
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.spec.function}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _discover(self, initial: bool = False) -> None:
        description = self.streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id in self._shards:
                continue
            found = _Shard(shard_id, shard.get("ParentShardId"))
            closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
            if initial:
                if closed and self.spec.starting_position == "LATEST":
                    found.done = True
                else:
                    found.iterator = self._iterator(shard_id, self.spec.starting_position)
            self._shards[shard_id] = found

    def _iterator(self, shard_id: str, position: str) -> str | None:
        iterator: str | None = self.streams.get_shard_iterator(
            StreamArn=self._stream_arn, ShardId=shard_id, ShardIteratorType=position)["ShardIterator"]
        return iterator

    def _run(self) -> None:
        last_discovery = time.monotonic()
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_discovery > DISCOVER_SECONDS:
                    self._discover()
                    last_discovery = time.monotonic()
                for shard in list(self._shards.values()):
                    if self._stop.is_set():
                        break
                    self._poll(shard)
            except Exception:  # noqa: BLE001 - keep polling, as the service does
                log.exception("stream mapping of %s", self.spec.function)
            self._stop.wait(self.poll_seconds)

    def _poll(self, shard: _Shard) -> None:
        if shard.done:
            return
        if shard.iterator is None:
            parent = self._shards.get(shard.parent or "")
            if parent is not None and not parent.done:
                return  # a child waits for its parent: records of a key stay in order
            shard.iterator = self._iterator(shard.id, "TRIM_HORIZON")
        response = self.streams.get_records(ShardIterator=shard.iterator, Limit=1000)
        shard.iterator = response.get("NextShardIterator")
        records = [self._event_record(r) for r in response.get("Records", [])]
        records = [r for r in records if not self.spec.filters or any(matches(p, r) for p in self.spec.filters)]
        for start in range(0, len(records), self.spec.batch_size):
            self._deliver(records[start:start + self.spec.batch_size])
        if shard.iterator is None:
            shard.done = True

    def _event_record(self, record: dict[str, Any]) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return int(value.timestamp())
            if isinstance(value, (bytes, bytearray)):
                import base64

                return base64.b64encode(value).decode()
            raise TypeError(type(value))

        event = json.loads(json.dumps(record, default=plain))
        event["eventSourceARN"] = self._stream_arn
        event.setdefault("awsRegion", self.region)
        return event

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Invoke with ``batch``, retrying (from the first failed record) up to MaximumRetryAttempts."""
        retries = 0
        while batch and not self._stop.is_set():
            self.invocations += 1
            try:
                answer = self.runtime.invoke(self.spec.function, {"Records": batch})
                failed = _failed_from(answer, batch) if self.spec.report_item_failures else None
            except FunctionError as error:
                log.warning("%s failed on a batch of %d: %s", self.spec.function, len(batch), error)
                failed = 0
            if failed is None:
                return
            batch = batch[failed:]
            retries += 1
            if 0 <= self.spec.maximum_retry_attempts < retries:
                log.error("%s: %d records skipped after %d retries", self.spec.function, len(batch), retries - 1)
                self.skipped += len(batch)
                return
            self._stop.wait(min(2.0, 0.1 * 2 ** retries))


def _failed_from(answer: Any, batch: list[dict[str, Any]]) -> int | None:
    """The index of the first failed record (Lambda checkpoints before it), or None if all succeeded."""
    failures = (answer or {}).get("batchItemFailures") if isinstance(answer, dict) else None
    if not failures:
        return None
    positions = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(batch)}
    indexes = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if identifier not in positions:
            return 0  # an identifier Lambda does not know: the whole batch fails
        indexes.append(positions[identifier])
    return min(indexes)
