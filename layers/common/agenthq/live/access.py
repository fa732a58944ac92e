"""Who may connect to the WebSocket API.

A connect carries ``Authorization: Bearer <access JWT>`` or ``x-api-key`` as a
header — verified exactly as the REST authorizer verifies them — or, from a
browser (which cannot set headers), ``?ticket=<t>``: a one-time ticket from
``POST /v1/ws-tickets``, valid 60 s. A ticket is stored hashed, deleted by the
connect that uses it (a conditional delete: a second use finds nothing), and
its principal is checked again at connect (the session still open, the key
not revoked). A long-lived token or key in a URL is never accepted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import DeleteError

from agenthq.authorizer import AUTHORIZER_ATTRIBUTES, allow, principal_from_headers, session_is_valid
from agenthq.context import ROLE_SCOPES, Principal, PrincipalKind, principal_from_authorizer
from agenthq.errors import Unauthorized
from agenthq.security.secrets import new_secret, secret_hash
from agenthq.store import global_scope
from agenthq.store.items import ApiKey, LiveTicket

if TYPE_CHECKING:
    from agenthq.services import Services

TICKET_PREFIX = "wst_"


def issue_ticket(services: Services, principal: Principal) -> dict[str, Any]:
    """A one-time ticket to open one WebSocket connection as ``principal``."""
    ttl = services.settings.live_ticket_ttl_seconds
    ticket = new_secret(TICKET_PREFIX)
    valid_until = services.clock() + ttl
    item = LiveTicket(*LiveTicket.key(secret_hash(ticket)), workspace_id=principal.workspace_id,
                      principal=principal.to_authorizer_context(), valid_until=int(valid_until),
                      expires_at=datetime.fromtimestamp(valid_until + 60, UTC))
    with global_scope():
        item.save(condition=LiveTicket.pk.does_not_exist())
    return {"ticket": ticket, "expires_in": ttl,
            "expires_at": datetime.fromtimestamp(valid_until, UTC).isoformat()}


def authorize_connect(services: Services, event: dict[str, Any]) -> dict[str, Any]:
    """The ``$connect`` REQUEST authorizer: a policy for this connect, the principal as context; else Unauthorized."""
    headers: dict[str, Any] = event["headers"] if isinstance(event.get("headers"), dict) else {}
    query: dict[str, Any] = (event["queryStringParameters"] if isinstance(event.get("queryStringParameters"), dict)
                             else {})
    names = {str(k).lower() for k in headers}
    ticket = query.get("ticket")
    if "authorization" in names or "x-api-key" in names:
        principal, _ = principal_from_headers(services, headers)
    elif isinstance(ticket, str) and ticket.startswith(TICKET_PREFIX):
        principal = redeem_ticket(services, ticket)
    else:
        raise Unauthorized()
    return allow(principal, event, resource=str(event.get("methodArn", "")))


def redeem_ticket(services: Services, ticket: str) -> Principal:
    """The ticket's principal, once; Unauthorized for an unknown, used or expired ticket, or a principal
    that has lost its access since (logged out, removed, key revoked)."""
    if len(ticket) > 200:
        raise Unauthorized()
    hash_key, range_key = LiveTicket.key(secret_hash(ticket))
    with global_scope():
        try:
            response = LiveTicket._get_connection().delete_item(
                hash_key, range_key, condition=LiveTicket.pk.exists(), return_values="ALL_OLD")
        except DeleteError:
            raise Unauthorized() from None
    item = LiveTicket.from_raw_data(response.get("Attributes") or {})
    if item.valid_until < services.clock():
        raise Unauthorized()
    principal = principal_from_authorizer(item.principal)
    if principal.kind is PrincipalKind.user:
        role = session_is_valid(principal.workspace_id, principal.subject, principal.session_id)
        if role is None:
            raise Unauthorized()
        return Principal(principal.workspace_id, principal.subject, principal.kind, role=role,
                         scopes=ROLE_SCOPES[role], session_id=principal.session_id)
    with global_scope():  # the authorizer's own role reads WS#* items (as the REST authorizer does)
        key = ApiKey.get_or_none(*ApiKey.key(principal.workspace_id, principal.subject), consistent_read=False,
                                 attributes=AUTHORIZER_ATTRIBUTES)
    if key is None or key.revoked_at is not None:
        raise Unauthorized()
    return principal
