"""The steps of an agent run, invoked by the agent-run state machine."""

from agenthq.observability import logger, metrics, tracer
from agenthq.runs.engine import run_step
from agenthq.services import get_services


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict, context: object) -> dict:
    return run_step(get_services(), event)
