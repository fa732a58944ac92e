"""The WebSocket API's ``@connections`` management API: send a frame to one
connection, or close it. ``ConnectionGone`` is API Gateway's 410
(``GoneException``): the client left; ``SendThrottled`` its 429
(``LimitExceededException``): back off and try again."""

from __future__ import annotations

from typing import Any, Protocol


class ConnectionGone(Exception):
    """The connection no longer exists (410 GoneException)."""


class SendThrottled(Exception):
    """API Gateway throttled the management API (429 LimitExceededException)."""


class Connections(Protocol):
    def send(self, connection_id: str, data: bytes) -> None: ...

    def close(self, connection_id: str) -> None: ...

    def exists(self, connection_id: str) -> bool: ...


class ApiGatewayConnections:
    def __init__(self, client: Any) -> None:
        self.client = client

    def send(self, connection_id: str, data: bytes) -> None:
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=data)
        except Exception as exc:
            raise _translated(exc) from exc

    def close(self, connection_id: str) -> None:
        try:
            self.client.delete_connection(ConnectionId=connection_id)
        except Exception as exc:
            error = _translated(exc)
            if not isinstance(error, ConnectionGone):
                raise error from exc


    def exists(self, connection_id: str) -> bool:
        """Whether the connection is still open (GetConnection; 410: it is gone)."""
        try:
            self.client.get_connection(ConnectionId=connection_id)
        except Exception as exc:
            error = _translated(exc)
            if isinstance(error, ConnectionGone):
                return False
            raise error from exc
        return True


def _translated(exc: Exception) -> Exception:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "GoneException" or status == 410:
        return ConnectionGone()
    if code in ("LimitExceededException", "TooManyRequestsException", "ThrottlingException") or status == 429:
        return SendThrottled()
    return exc
