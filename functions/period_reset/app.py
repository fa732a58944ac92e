"""The day's start (an EventBridge schedule): resume runs paused at a limit
that has room again; cancel runs paused for more than 7 days."""

from agenthq.observability import logger, metrics
from agenthq.runs.pausing import resume_paused
from agenthq.services import get_services


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    return resume_paused(get_services())
