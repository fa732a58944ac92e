"""The WebSocket API's $connect REQUEST authorizer: an access JWT or API key header (verified as the
REST authorizer verifies them), or a one-time ticket from POST /v1/ws-tickets."""

from agenthq.errors import Unauthorized
from agenthq.live import access
from agenthq.observability import logger
from agenthq.services import get_services


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: object) -> dict:
    try:
        return access.authorize_connect(get_services(), event)
    except Unauthorized:
        raise Exception("Unauthorized") from None  # noqa: TRY002 - API Gateway answers exactly this with a 401
