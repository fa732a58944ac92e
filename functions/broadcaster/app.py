"""The broadcaster: the table's stream (new RunEvent and Alert items) → subscribed WebSocket connections.

Failures are reported per record (``ReportBatchItemFailures``): the
event-source mapping retries from the first failed record, never the whole batch.
"""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from agenthq.live import broadcast
from agenthq.observability import BROADCAST_FAILURES, count, logger, publish_metrics
from agenthq.services import get_services

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def deliver(record: DynamoDBRecord, batch: broadcast.Batch) -> None:
    broadcast.deliver_record(get_services(), record.raw_event, broadcast.pool(get_services()), batch=batch)


@logger.inject_lambda_context(clear_state=True)
@publish_metrics
def handler(event: dict, context: object) -> dict:
    try:
        batch = broadcast.Batch()  # the batch's records share their subscriber reads
        result = process_partial_response(event=event, record_handler=lambda record: deliver(record, batch),
                                          processor=processor, context=context)
    except BatchProcessingError:  # every record failed: the invocation fails (Lambda's Errors metric)
        count(BROADCAST_FAILURES, len(event.get("Records", [])))
        raise
    if failed := len(result.get("batchItemFailures", [])):
        count(BROADCAST_FAILURES, failed)  # retried by the mapping from the first of them
    return result
