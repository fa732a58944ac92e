"""The run worker: a slice of an agent run's steps, invoked by the agent-run state machine."""

from typing import Any

from agenthq.observability import logger, metrics, tracer
from agenthq.runs.engine import run_step
from agenthq.services import get_services
from agenthq.usage import infra


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict, context: Any) -> dict:
    services = get_services()
    # this invocation's AWS cost (its memory × wall time at its architecture's price), metered per commit
    with infra.metering(memory_mb=int(context.memory_limit_in_mb), architecture=services.settings.lambda_architecture):
        return run_step(services, event, lambda: context.get_remaining_time_in_millis() / 1000)
