"""Who is calling: the principal the authorizer vouched for.

The workspace a request acts on comes from here and only from here: the
authorizer puts it into the API Gateway request context, and handlers read it
back with :func:`principal_from_authorizer`. A workspace id in a path is only
ever compared with it (see ``agenthq.http.workspace_principal``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from agenthq.errors import Forbidden, NotFound, Unauthorized


class Role(str, Enum):
    viewer = "viewer"
    member = "member"
    admin = "admin"
    owner = "owner"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_ROLE_RANK = {Role.viewer: 0, Role.member: 1, Role.admin: 2, Role.owner: 3}


class Scope(str, Enum):
    """What a request may do. Roles grant sets of scopes; API keys carry
    an explicit subset of the scopes an API key may hold."""

    workspace_read = "workspace:read"
    workspace_write = "workspace:write"
    workspace_delete = "workspace:delete"
    members_read = "members:read"
    members_write = "members:write"
    keys_read = "keys:read"
    keys_write = "keys:write"
    agents_read = "agents:read"
    agents_write = "agents:write"
    runs_read = "runs:read"
    runs_write = "runs:write"
    usage_read = "usage:read"


_VIEWER = {Scope.workspace_read, Scope.members_read, Scope.agents_read, Scope.runs_read, Scope.usage_read}
_MEMBER = _VIEWER | {Scope.runs_write}
_ADMIN = _MEMBER | {Scope.workspace_write, Scope.members_write, Scope.keys_read, Scope.keys_write, Scope.agents_write}
_OWNER = _ADMIN | {Scope.workspace_delete}

ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.viewer: frozenset(_VIEWER),
    Role.member: frozenset(_MEMBER),
    Role.admin: frozenset(_ADMIN),
    Role.owner: frozenset(_OWNER),
}

# An API key acts as the workspace, never as a person: it can use the product
# (agents, runs, usage) but never manage people, keys or the workspace itself.
API_KEY_SCOPES: frozenset[Scope] = frozenset(
    {Scope.workspace_read, Scope.agents_read, Scope.agents_write, Scope.runs_read, Scope.runs_write, Scope.usage_read}
)


class PrincipalKind(str, Enum):
    user = "user"
    api_key = "api_key"
    schedule = "schedule"  # a schedule's fire launching its run: acts as the workspace, like an API key


@dataclass(frozen=True)
class Principal:
    workspace_id: str
    subject: str  # user id, or API key id
    kind: PrincipalKind
    role: Role | None = None  # users only
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    session_id: str = ""  # users only: the login session (refresh-token family)

    @property
    def user_id(self) -> str | None:
        return self.subject if self.kind is PrincipalKind.user else None

    def require_user(self) -> str:
        """The user id; API keys act as the workspace and have none."""
        if self.kind is not PrincipalKind.user:
            raise Forbidden("This needs a signed-in user, not an API key.")
        return self.subject

    def can(self, scope: Scope) -> bool:
        return scope in self.scopes

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"This needs the '{scope.value}' permission.")

    def require_role(self, role: Role) -> None:
        if self.role is None or not self.role.at_least(role):
            raise Forbidden(f"This needs the {role.value} role.")

    def for_workspace(self, workspace_id: str) -> Principal:
        """This principal, if ``workspace_id`` is its workspace; 404 otherwise
        (another workspace's resources are never acknowledged to exist)."""
        if workspace_id != self.workspace_id:
            raise NotFound()
        return self

    def to_authorizer_context(self) -> dict[str, str]:
        """The flat string map API Gateway carries from the authorizer."""
        return {
            "workspace_id": self.workspace_id,
            "subject": self.subject,
            "kind": self.kind.value,
            "role": self.role.value if self.role else "",
            "scopes": " ".join(sorted(s.value for s in self.scopes)),
            "session_id": self.session_id,
        }


def principal_from_authorizer(authorizer: Mapping[str, Any] | None) -> Principal:
    """Read the principal back from ``requestContext.authorizer``."""
    if not authorizer or not authorizer.get("workspace_id") or not authorizer.get("subject"):
        raise Unauthorized()
    try:
        kind = PrincipalKind(authorizer.get("kind", ""))
        role = Role(authorizer["role"]) if authorizer.get("role") else None
        scopes = frozenset(Scope(s) for s in str(authorizer.get("scopes", "")).split())
    except ValueError:
        raise Unauthorized() from None
    return Principal(
        workspace_id=str(authorizer["workspace_id"]),
        subject=str(authorizer["subject"]),
        kind=kind,
        role=role,
        scopes=scopes,
        session_id=str(authorizer.get("session_id") or ""),
    )
