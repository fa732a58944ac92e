"""The REST API's Lambda REQUEST authorizer (JWT or API key → workspace principal)."""

from agenthq.authorizer import authorize
from agenthq.errors import Unauthorized
from agenthq.observability import logger
from agenthq.services import get_services


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: object) -> dict:
    try:
        return authorize(get_services(), event)
    except Unauthorized:
        # API Gateway turns exactly this message into a 401.
        raise Exception("Unauthorized") from None  # noqa: TRY002
