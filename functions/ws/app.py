"""The WebSocket API (live status): $connect, $disconnect, subscribe, unsubscribe, ping and $default.

A bad frame is answered with an error frame; the connection stays. (The $connect
authorizer is functions/ws_authorizer.)
"""

from agenthq.context import principal_from_authorizer
from agenthq.errors import AppError
from agenthq.live import connections
from agenthq.live.protocol import error_frame
from agenthq.observability import logger
from agenthq.services import get_services

MESSAGES = {"subscribe": connections.subscribe, "unsubscribe": connections.unsubscribe, "ping": connections.ping}


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: object) -> dict:
    request = event.get("requestContext") or {}
    route, connection_id = request.get("routeKey"), str(request.get("connectionId") or "")
    services = get_services()
    try:
        principal = principal_from_authorizer(request.get("authorizer"))
        if route == "$connect":
            connections.connect(services, principal, connection_id)
            return {"statusCode": 200}
        if route == "$disconnect":
            connections.disconnect(services, principal, connection_id)
            return {"statusCode": 200}
        action = MESSAGES.get(route)
        frame = action(services, principal, connection_id, event.get("body")) if action else \
            connections.unknown_action()
    except AppError as error:
        frame = connections.as_error_frame(error)
    except Exception:
        logger.exception("live route %s failed", route)
        if route in ("$connect", "$disconnect"):
            return {"statusCode": 500}
        frame = error_frame("internal_error", "Internal error.")
    return {"statusCode": 200, "body": connections.encode_frame(frame)}
