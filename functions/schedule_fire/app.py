"""A schedule's fire (EventBridge Scheduler's target): launch its run, or record why not."""

from agenthq.observability import logger, metrics
from agenthq.schedules.fire import fire
from agenthq.services import get_services


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    return fire(get_services(), event)
