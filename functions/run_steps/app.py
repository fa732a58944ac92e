"""The steps of an agent run, invoked by the agent-run state machine."""

from agenthq.observability import logger, metrics, tracer
from agenthq.runs.steps import run_step


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict, context: object) -> dict:
    return run_step(event)
