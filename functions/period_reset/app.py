"""The day's start (an EventBridge schedule): resume runs paused at a limit
that has room again; cancel runs paused for more than 7 days; start (or end)
launched runs whose execution never started."""

from agenthq.observability import logger, metrics
from agenthq.runs.pausing import resume_paused
from agenthq.runs.unstarted import start_unstarted
from agenthq.services import get_services


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    services = get_services()
    return {**resume_paused(services), **start_unstarted(services)}
