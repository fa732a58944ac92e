"""The WebSocket API (live status): $connect, $disconnect, subscribe, unsubscribe, ping and $default.

A bad frame is answered with an error frame; the connection stays. (The $connect
authorizer is functions/ws_authorizer.)
"""

from agenthq.context import Principal, principal_from_authorizer
from agenthq.errors import AppError
from agenthq.live import connections, limits
from agenthq.live.protocol import error_frame
from agenthq.observability import logger
from agenthq.services import Services, get_services

MESSAGES = {"subscribe": connections.subscribe, "unsubscribe": connections.unsubscribe, "ping": connections.ping}


def connect(services: Services, principal: Principal, connection_id: str) -> dict:
    """A refused connect (the workspace's live connections used up) is a refused handshake: its status."""
    try:
        connections.connect(services, principal, connection_id)
    except AppError as error:
        return {"statusCode": error.status}
    return {"statusCode": 200}


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: object) -> dict:
    request = event.get("requestContext") or {}
    route, connection_id = request.get("routeKey"), str(request.get("connectionId") or "")
    services = get_services()
    try:
        principal = principal_from_authorizer(request.get("authorizer"))
        if route == "$connect":
            return connect(services, principal, connection_id)
        if route == "$disconnect":
            connections.disconnect(services, principal, connection_id)
            return {"statusCode": 200}
        # the connection's subscribe window, then an API call of the workspace (refused: an error frame)
        limits.meter_message(services, principal, connection_id, subscribing=route == "subscribe")
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
