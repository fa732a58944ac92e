"""Whether a live connection's principal still has the access it connected with.

A WebSocket connection acts, for up to API Gateway's 2 hours, as the principal
its ``$connect`` vouched for. Access can end sooner — a member removed or given
another role, a session logged out or revoked for refresh-token reuse, an API
key revoked, the workspace offboarded — and then it ends at once, twice over:

- the principal's open connections are closed (``connections.close_connections``,
  the @connections API's DELETE), found through the connection items' index
  (gsi1, :func:`index_partition`): a member's, a session's, a key's connections
  are one Query each, never a Scan;
- because a close can be missed ($disconnect is best effort, a DELETE can fail,
  and the index is eventually consistent, so a connection opened a moment
  before the change can be missing from it), the principal is checked again
  against the items that grant the access (:func:`scopes_held`) where a
  connection subscribes and where the broadcaster fans out. The broadcaster's
  read is consistent and made after the event it sends was stored, so an event
  stored after the change never reaches a connection of that principal.

A user's connection keeps the role it connected with: a role changed since,
either way, ends the connection (the client connects again with the new role).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agenthq.context import API_KEY_SCOPES, ROLE_SCOPES, Principal, PrincipalKind, Role, Scope
from agenthq.store import BaseItem, global_scope, ws_pk
from agenthq.store.items import ApiKey, Member, SessionFamily, Workspace

USER = PrincipalKind.user.value
API_KEY = PrincipalKind.api_key.value

#: The only attributes the check reads (its roles may read no more: template.yaml's dynamodb:Attributes).
CHECKED_ATTRIBUTES = ("pk", "sk", "type", "role", "revoked_at", "deleting", "scopes", "user_id", "workspace_id")
NOTHING: frozenset[Scope] = frozenset()


def index_partition(workspace_id: str, kind: str, subject: str) -> str:
    """The gsi1 partition of the connections a member (``user``) or an API key opened in a workspace."""
    return ws_pk(workspace_id, "LIVE", "USER" if kind == USER else "KEY", subject)


def session_prefix(session_id: str) -> str:
    """The gsi1 sort-key prefix of the connections one login session opened."""
    return f"SESSION#{session_id}#"


@dataclass(frozen=True)
class Holder:
    """Who a connection acts as: its ``$connect`` principal, as recorded on its items."""

    workspace_id: str
    kind: str  # user | api_key
    subject: str  # user id or API key id
    session_id: str = ""  # users: the login session
    role: str = ""  # users: the role it connected with

    @classmethod
    def of(cls, principal: Principal) -> Holder:
        return cls(principal.workspace_id, principal.kind.value, principal.subject, principal.session_id or "",
                   principal.role.value if principal.role else "")

    @classmethod
    def recorded(cls, workspace_id: str, item: Any) -> Holder | None:
        """The holder a subscription or connection item records; None for one that records none."""
        kind, subject = getattr(item, "kind", None), getattr(item, "subject", None)
        if kind not in (USER, API_KEY) or not subject:
            return None
        return cls(workspace_id, str(kind), str(subject), getattr(item, "session_id", None) or "",
                   getattr(item, "role", None) or "")

    def fields(self) -> dict[str, Any]:
        """The attributes that record it on a LiveSubscription."""
        return {"subject": self.subject, "kind": self.kind, "session_id": self.session_id or None,
                "role": self.role or None}

    def connection_fields(self, connection_id: str) -> dict[str, Any]:
        """The attributes that record it on a LiveConnection, its index keys included."""
        sort = (session_prefix(self.session_id) if self.kind == USER else "") + f"CONN#{connection_id}"
        return {**self.fields(), "gsi1pk": index_partition(self.workspace_id, self.kind, self.subject),
                "gsi1sk": sort}


def scopes_held(holders: Iterable[Holder]) -> dict[Holder, frozenset[Scope]]:
    """The scopes each holder still has — none once its access ended — from one consistent
    BatchGetItem of the items that grant it: the workspace (not being offboarded), a user's
    membership (the same role) and session (open), an API key (not revoked)."""
    wanted = set(holders)
    if not wanted:
        return {}
    keys: set[tuple[str, str]] = set()
    for holder in wanted:
        keys.add(Workspace.key(holder.workspace_id))
        if holder.kind == USER:
            keys.add(Member.key(holder.workspace_id, holder.subject))
            if holder.session_id:
                keys.add(SessionFamily.key(holder.session_id))
        else:
            keys.add(ApiKey.key(holder.workspace_id, holder.subject))
    with global_scope():
        found = {(item.pk, item.sk): item for item in
                 BaseItem.batch_get(keys, consistent_read=True, attributes_to_get=list(CHECKED_ATTRIBUTES))}
    return {holder: _scopes(holder, found) for holder in wanted}


def _scopes(holder: Holder, found: Mapping[tuple[str, str], BaseItem]) -> frozenset[Scope]:
    workspace = found.get(Workspace.key(holder.workspace_id))
    if not isinstance(workspace, Workspace) or workspace.deleting:
        return NOTHING
    if holder.kind == USER:
        member = found.get(Member.key(holder.workspace_id, holder.subject))
        session = found.get(SessionFamily.key(holder.session_id)) if holder.session_id else None
        if not isinstance(member, Member) or member.role != holder.role or member.role not in Role.__members__:
            return NOTHING
        if (not isinstance(session, SessionFamily) or session.revoked_at is not None
                or session.user_id != holder.subject or session.workspace_id != holder.workspace_id):
            return NOTHING
        return ROLE_SCOPES[Role(member.role)]
    key = found.get(ApiKey.key(holder.workspace_id, holder.subject))
    if not isinstance(key, ApiKey) or key.revoked_at is not None:
        return NOTHING
    allowed = {scope.value for scope in API_KEY_SCOPES}
    return frozenset(Scope(s) for s in (key.scopes or set()) if s in allowed)
