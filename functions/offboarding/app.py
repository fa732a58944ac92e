"""The steps of a workspace's offboarding, invoked by the offboarding state machine."""

from typing import Any

from agenthq.observability import logger
from agenthq.offboarding import run_step
from agenthq.services import get_services


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: Any) -> dict:
    return run_step(get_services(), event, lambda: context.get_remaining_time_in_millis() / 1000)
