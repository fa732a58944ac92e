"""The REST API's Lambda REQUEST authorizer: who is calling, for which workspace.

Accepts ``Authorization: Bearer <access JWT>`` or ``x-api-key: <AgentHQ key>``.
Every request is checked against the table (API Gateway's authorizer cache is
off, because a request carries one of two alternative headers and REQUEST
authorizer caching needs all identity sources present): a removed member, a
logged-out session or a revoked key stops working at once.

Returns an IAM policy allowing the API, the principal in ``context`` (read
back by ``agenthq.context.principal_from_authorizer``), and the workspace's
usage-plan key as ``usageIdentifierKey``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agenthq.context import API_KEY_SCOPES, ROLE_SCOPES, Principal, PrincipalKind, Role, Scope
from agenthq.errors import Unauthorized
from agenthq.observability import logger
from agenthq.security.secrets import secret_hash
from agenthq.security.tokens import InvalidToken
from agenthq.store import get_many, global_scope
from agenthq.store.items import ApiKey, ApiKeyLookup, Member, SessionFamily

if TYPE_CHECKING:
    from agenthq.services import Services

LAST_USED_RESOLUTION_SECONDS = 60

# Everything an authorizer reads of an item (members, sessions, API keys and their lookups): it reads no
# more, and its role may read no more (template.yaml, dynamodb:Attributes) — never a run's input or output,
# an agent's prompt or a note, though they share the workspace's partition.
AUTHORIZER_ATTRIBUTES = ("pk", "sk", "type", "workspace_id", "user_id", "role", "usage_key", "revoked_at",
                         "key_id", "scopes")
_last_used_written: dict[str, float] = {}
_last_used_lock = threading.Lock()


def authorize(services: Services, event: dict[str, Any]) -> dict[str, Any]:
    principal, usage_key = principal_from_headers(services, event.get("headers"))
    return allow(principal, event) | {"usageIdentifierKey": usage_key}


def principal_from_headers(services: Services, raw_headers: Any) -> tuple[Principal, str]:
    """The principal of ``x-api-key`` or ``Authorization: Bearer`` (and its usage-plan key); else Unauthorized.
    Also what the WebSocket API's $connect authorizer verifies (agenthq.live.access)."""
    headers = {str(k).lower(): str(v) for k, v in (raw_headers or {}).items()} if isinstance(raw_headers, dict) else {}
    api_key = headers.get("x-api-key", "").strip()
    bearer = headers.get("authorization", "").strip()
    if api_key:
        return _from_api_key(services, api_key)
    if bearer[:7].lower() == "bearer " and bearer[7:].strip():
        return _from_access_token(services, bearer[7:].strip())
    raise Unauthorized()


def allow(principal: Principal, event: dict[str, Any], resource: str | None = None) -> dict[str, Any]:
    """An authorizer's answer: the principal, a policy allowing ``resource`` (default: the API's stage),
    the principal as context."""
    return {
        "principalId": f"{principal.kind.value}:{principal.subject}",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow",
                           "Resource": resource or _api_arn(event)}],
        },
        "context": principal.to_authorizer_context(),
    }


def session_is_valid(workspace_id: str, user_id: str, session_id: str) -> Role | None:
    """The member's role if the user is still a member and the session still open; else None."""
    with global_scope():
        found = get_many(Member.key(workspace_id, user_id), SessionFamily.key(session_id),
                         attributes=AUTHORIZER_ATTRIBUTES)
    member = next((item for item in found if isinstance(item, Member)), None)
    session = next((item for item in found if isinstance(item, SessionFamily)), None)
    if member is None or not _session_open(session, workspace_id, user_id):
        return None
    return Role(member.role)


def _api_arn(event: dict[str, Any]) -> str:
    # arn:aws:execute-api:region:account:api-id/stage/METHOD/path -> the whole stage
    arn = event.get("methodArn", "")
    prefix, _, rest = arn.partition("/")
    stage = rest.split("/", 1)[0]
    return f"{prefix}/{stage}/*/*"


def _from_access_token(services: Services, token: str) -> tuple[Principal, str]:
    try:
        claims = services.token_verifier().verify(token)
    except InvalidToken as exc:
        if str(exc) != "unknown key":
            raise Unauthorized() from None
        try:  # keys may have been rotated since we loaded them
            claims = services.token_verifier(refresh=True).verify(token)
        except InvalidToken:
            raise Unauthorized() from None
    with global_scope():
        found = get_many(Member.key(claims.workspace_id, claims.user_id), SessionFamily.key(claims.session_id),
                         attributes=AUTHORIZER_ATTRIBUTES)
    member = next((item for item in found if isinstance(item, Member)), None)
    session = next((item for item in found if isinstance(item, SessionFamily)), None)
    if member is None or not _session_open(session, claims.workspace_id, claims.user_id):
        raise Unauthorized()
    role = Role(member.role)
    principal = Principal(workspace_id=claims.workspace_id, subject=claims.user_id, kind=PrincipalKind.user,
                          role=role, scopes=ROLE_SCOPES[role], session_id=claims.session_id)
    return principal, member.usage_key


def _session_open(session: SessionFamily | None, workspace_id: str, user_id: str) -> bool:
    return (session is not None and session.revoked_at is None and session.user_id == user_id
            and session.workspace_id == workspace_id)


def _from_api_key(services: Services, secret: str) -> tuple[Principal, str]:
    with global_scope():
        lookup = ApiKeyLookup.get_or_none(*ApiKeyLookup.key(secret_hash(secret)), consistent_read=False,
                                          attributes=AUTHORIZER_ATTRIBUTES)
    if lookup is None:
        raise Unauthorized()
    scopes = frozenset(Scope(s) for s in lookup.scopes if s in {x.value for x in API_KEY_SCOPES})
    _touch_last_used(services, lookup)
    principal = Principal(workspace_id=lookup.workspace_id, subject=lookup.key_id, kind=PrincipalKind.api_key,
                          role=None, scopes=scopes)
    return principal, lookup.usage_key


def _touch_last_used(services: Services, lookup: ApiKeyLookup) -> None:
    """Record the key's last use, at most once a minute per key per container."""
    now = services.clock()
    with _last_used_lock:
        if now - _last_used_written.get(lookup.key_id, 0) < LAST_USED_RESOLUTION_SECONDS:
            return
        _last_used_written[lookup.key_id] = now
    at = datetime.fromtimestamp(now, UTC)
    item = ApiKey(*ApiKey.key(lookup.workspace_id, lookup.key_id))
    with global_scope():
        try:
            item.update(actions=[ApiKey.last_used_at.set(at)], condition=ApiKey.pk.exists())
        except Exception:  # best effort: never fail a request over bookkeeping, but say so
            logger.warning("could not record an API key's last use", exc_info=True,
                           extra={"workspace_id": lookup.workspace_id, "api_key_id": lookup.key_id})

