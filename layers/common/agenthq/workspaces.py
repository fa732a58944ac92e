"""Workspaces: settings and tier, members and roles, API keys, offboarding (started here, done by the job).

Every function takes the caller's ``Principal``; the workspace is always the
principal's own (handlers check the path's ``{wid}`` against it first), and
workspace data is read and written inside ``tenant_scope`` of that workspace.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from agenthq import ids, offboarding
from agenthq.accounts import normalize_email
from agenthq.context import API_KEY_SCOPES, Principal, Role, Scope
from agenthq.errors import Conflict, Forbidden, NotFound
from agenthq.live.connections import close_connections
from agenthq.observability import logger
from agenthq.pagination import Page, workspace_page
from agenthq.security.secrets import API_KEY_PREFIX, new_secret, secret_hash
from agenthq.store import global_scope, retry_transaction, tenant_scope, transaction
from agenthq.store.items import (
    ApiKey,
    ApiKeyLookup,
    Invitation,
    Member,
    UserEmail,
    Workspace,
)
from agenthq.text import NOT_BLANK, display_name
from agenthq.tiers import limits_for

_MEMBER_ATTEMPTS = 5  # a member change racing others is read, checked and written again this often
INVITATION_TTL = timedelta(days=7)
NO_USER = "-"  # never a user id (ids are ULIDs)

if TYPE_CHECKING:
    from agenthq.services import Services

# --------------------------------------------------------------------------- edge models


class WorkspaceUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=NOT_BLANK)
    # The tier and its overrides are the operator's (agenthq.admin): named here
    # only so that an attempt to set them is refused (403) rather than ignored.
    tier: Any = None
    limit_overrides: Any = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else display_name(value)

    def touches_the_tier(self) -> bool:
        return bool({"tier", "limit_overrides"} & self.model_fields_set)


class MemberInvite(BaseModel):
    email: str = Field(max_length=254)
    role: Role = Role.member

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalize_email(value)


class MemberUpdate(BaseModel):
    role: Role


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "ci", "scopes": ["runs:read", "runs:write"]}]})

    name: str = Field(min_length=1, max_length=100, pattern=NOT_BLANK)
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return display_name(value)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[Scope]) -> list[Scope]:
        not_allowed = sorted(s.value for s in value if s not in API_KEY_SCOPES)
        if not_allowed:
            raise ValueError(f"an API key cannot hold {', '.join(not_allowed)}; "
                             f"allowed: {', '.join(sorted(s.value for s in API_KEY_SCOPES))}")
        return sorted(set(value), key=lambda s: s.value)



# --------------------------------------------------------------------------- the workspace


def workspace_view(workspace: Workspace) -> dict[str, Any]:
    limits = limits_for(workspace.tier, workspace.limit_overrides)
    return {
        "id": workspace.id,
        "name": workspace.name,
        "tier": workspace.tier,
        "limits": limits.model_dump(mode="json"),
        "created_at": workspace.created_at.isoformat(),
    }


def get_workspace(principal: Principal) -> dict[str, Any]:
    principal.require(Scope.workspace_read)
    with tenant_scope(principal.workspace_id):
        return workspace_view(Workspace.load(principal.workspace_id))


def update_workspace(principal: Principal, change: WorkspaceUpdate) -> dict[str, Any]:
    """Rename the workspace. Its tier and limits are the operator's: an attempt
    to set them is refused as a whole (403), and nothing changes."""
    principal.require(Scope.workspace_write)
    if change.touches_the_tier():
        raise Forbidden("The tier and its limits are set by the AgentHQ operator; contact them to change your plan.")
    with tenant_scope(principal.workspace_id):
        workspace = Workspace.load(principal.workspace_id)
        if change.name is not None:
            workspace.update(actions=[Workspace.name.set(change.name.strip())], condition=Workspace.pk.exists())
        return workspace_view(workspace)


# --------------------------------------------------------------------------- members


def member_view(member: Member) -> dict[str, Any]:
    return {"user_id": member.user_id, "email": member.email, "role": member.role,
            "joined_at": member.joined_at.isoformat()}


def list_members(principal: Principal, cursor: str | None, limit: int) -> Page:
    principal.require(Scope.members_read)
    with tenant_scope(principal.workspace_id):
        return workspace_page(Member, principal.workspace_id, "MEMBER#", member_view, cursor, limit)


def list_invitations(services: Services, principal: Principal, cursor: str | None, limit: int) -> Page:
    """The pending invitations, by e-mail address; for those who may invite and withdraw (members:write).
    A lapsed one (its 7 days past, its TTL not yet swept) is not pending: left out."""
    principal.require(Scope.members_write)
    with tenant_scope(principal.workspace_id):
        return workspace_page(Invitation, principal.workspace_id, "INVITE#", invitation_view, cursor, limit,
                              filter_condition=Invitation.expires_at > services.now())


def invitation_view(invitation: Invitation) -> dict[str, Any]:
    expires = invitation.expires_at.isoformat() if invitation.expires_at else None
    return {"email": invitation.email, "role": invitation.role, "status": "invited",
            "invited_at": invitation.invited_at.isoformat(), "expires_at": expires}


def add_member(services: Services, principal: Principal, invite: MemberInvite) -> dict[str, Any]:
    """Invite an e-mail address. The answer is the same whether or not the address has an account, so
    that nobody learns which addresses have one: an invitation, which becomes the membership when its
    invitee logs in naming this workspace (``accounts.login``) — after signing up, for an address
    without an account. 409 when the address is a member already, or has a pending invitation."""
    principal.require(Scope.members_write)
    _may_grant(principal, invite.role)
    with global_scope():  # looked up for every address alike: to refuse one that is a member already
        entry = UserEmail.get_or_none(*UserEmail.key(invite.email), consistent_read=False)
    now = services.now()
    with tenant_scope(principal.workspace_id):
        workspace = Workspace.load(principal.workspace_id)
        # The same reads either way (no account: a key no member has), so the time taken tells nothing either.
        if Member.get_or_none(*Member.key(workspace.id, entry.user_id if entry else NO_USER)) is not None:
            raise Conflict("That user is already a member of this workspace.")
        invitation = Invitation(*Invitation.key(workspace.id, invite.email), workspace_id=workspace.id,
                                email=invite.email, role=invite.role.value, invited_by=principal.subject,
                                invited_at=now, expires_at=now + INVITATION_TTL)
        try:  # a lapsed invitation (its TTL not yet swept) is replaced
            invitation.save(condition=Invitation.pk.does_not_exist() | (Invitation.expires_at <= now))
        except PutError:
            raise Conflict("That address has a pending invitation to this workspace.") from None
    return invitation_view(invitation)


def change_member_role(services: Services, principal: Principal, user_id: str, change: MemberUpdate) -> dict[str, Any]:
    """A new role; the member's open WebSocket connections (opened with the old one) are closed."""
    principal.require(Scope.members_write)

    def check(member: Member) -> None:
        _may_manage(principal, Role(member.role))
        _may_grant(principal, change.role)

    def write(tx: TransactWrite, member: Member) -> None:
        tx.update(member, actions=[Member.role.set(change.role.value)], condition=Member.role == member.role)

    with tenant_scope(principal.workspace_id):
        member = _change_member(principal.workspace_id, user_id, check, write, stays_owner=change.role == Role.owner)
    if member.role != change.role.value:
        close_connections(services, principal.workspace_id, user_id=user_id)
    member.role = change.role.value
    return member_view(member)


def remove_member(services: Services, principal: Principal, user_id: str) -> None:
    """The membership ends, and with it the member's open WebSocket connections."""
    if user_id != principal.user_id:  # anyone may leave; removing others takes members:write
        principal.require(Scope.members_write)

    if "@" in user_id:  # an invited e-mail address: its pending invitation is withdrawn
        _withdraw_invitation(principal, user_id)
        return

    def check(member: Member) -> None:
        if user_id != principal.user_id:
            _may_manage(principal, Role(member.role))

    def write(tx: TransactWrite, member: Member) -> None:
        tx.delete(member, condition=Member.role == member.role)

    with tenant_scope(principal.workspace_id):
        _change_member(principal.workspace_id, user_id, check, write, stays_owner=False)
    close_connections(services, principal.workspace_id, user_id=user_id)


def _withdraw_invitation(principal: Principal, email: str) -> None:
    with tenant_scope(principal.workspace_id):
        invitation = Invitation.get_or_404(*Invitation.key(principal.workspace_id, email.strip().lower()))
        _may_manage(principal, Role(invitation.role))
        try:
            invitation.delete(condition=Invitation.pk.exists())
        except DeleteError:
            raise NotFound() from None  # accepted or withdrawn meanwhile


def _member(workspace_id: str, user_id: str) -> Member:
    return Member.get_or_404(*Member.key(workspace_id, user_id))


def _may_grant(principal: Principal, role: Role) -> None:
    if principal.role is None or (role == Role.owner and principal.role != Role.owner):
        raise Forbidden("Only an owner can make someone an owner.")
    if not principal.role.at_least(role):
        raise Forbidden("You cannot grant a role above your own.")


def _may_manage(principal: Principal, target: Role) -> None:
    if principal.role is None or (target == Role.owner and principal.role != Role.owner):
        raise Forbidden("Only an owner can change or remove an owner.")


def _change_member(workspace_id: str, user_id: str, check: Callable[[Member], None],
                   write: Callable[[TransactWrite, Member], None], *, stays_owner: bool) -> Member:
    """Read the member, ``check`` the caller may change them, and ``write`` the change in one
    transaction. An owner who stops being one (``stays_owner`` false: removed, leaving, demoted) needs
    another owner, and that owner's role is a condition of the same transaction: of owners removing or
    demoting each other at once, one wins and the others find no owner left besides them (409).
    ``write`` conditions on the role read, so any concurrent change makes the whole read-check-write
    start again. Returns the member as read."""

    def attempt() -> Member:
        member = _member(workspace_id, user_id)
        check(member)
        with transaction() as tx:
            if member.role == Role.owner.value and not stays_owner:
                other = _another_owner(workspace_id, member)
                tx.condition_check(Member, other.pk, other.sk, condition=Member.role == Role.owner.value)
            write(tx, member)
        return member

    def explain(exc: TransactWriteError) -> None:
        if not exc.cancellation_reasons:  # refused outright, not a race
            raise exc

    return retry_transaction(attempt, explain, attempts=_MEMBER_ATTEMPTS, exhausted=lambda: Conflict(
        "The workspace's members are being changed concurrently; try again."))


def _another_owner(workspace_id: str, leaving: Member) -> Member:
    """An owner of the workspace other than ``leaving`` (409 when there is none)."""
    for member in Member.query(Workspace.key(workspace_id)[0], Member.sk.startswith("MEMBER#"), consistent_read=True):
        if member.role == Role.owner.value and member.user_id != leaving.user_id:
            return member
    raise Conflict("A workspace must keep at least one owner.")


# --------------------------------------------------------------------------- API keys


def api_key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": sorted(key.scopes),
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def list_api_keys(principal: Principal, cursor: str | None, limit: int) -> Page:
    principal.require(Scope.keys_read)
    with tenant_scope(principal.workspace_id):
        return workspace_page(ApiKey, principal.workspace_id, "APIKEY#", api_key_view, cursor, limit)


def create_api_key(services: Services, principal: Principal, request: ApiKeyCreate) -> dict[str, Any]:
    """The key item is the workspace's (tenant role); the lookup the authorizer
    reads is global (this function's role), and no role may write both, so they
    are two writes: the key first, then the lookup that makes it work. A failed
    lookup write removes the key again (decisions.md, "API keys across roles")."""
    principal.require(Scope.keys_write)
    secret = new_secret(API_KEY_PREFIX)
    now = services.now()
    key_id = ids.new_id()
    scopes = {s.value for s in request.scopes}
    with tenant_scope(principal.workspace_id):
        workspace = Workspace.load(principal.workspace_id)
        key = ApiKey(*ApiKey.key(workspace.id, key_id), id=key_id, workspace_id=workspace.id, name=request.name,
                     prefix=secret[: len(API_KEY_PREFIX) + 6], secret_hash=secret_hash(secret), scopes=scopes,
                     created_at=now, created_by=principal.subject)
        key.save(condition=ApiKey.pk.does_not_exist())
    lookup = ApiKeyLookup(*ApiKeyLookup.key(key.secret_hash), workspace_id=workspace.id, key_id=key_id,
                          scopes=scopes, usage_key=workspace.usage_key)
    try:
        with global_scope():
            lookup.save(condition=ApiKeyLookup.pk.does_not_exist())
    except Exception:
        try:
            with tenant_scope(workspace.id):
                key.delete()
        except Exception:  # the key stays listed, never usable; revoking it is harmless
            logger.exception("API key %s: could not remove it after its lookup failed", key_id)
        raise
    return {**api_key_view(key), "key": secret}


def revoke_api_key(services: Services, principal: Principal, key_id: str) -> None:
    """Revoke at once: the lookup the authorizer reads is deleted first (access
    ends there), then the key is marked revoked, then the WebSocket connections
    it opened are closed. Idempotent, and a retry after a failure between any
    two finishes the job."""
    principal.require(Scope.keys_write)
    with tenant_scope(principal.workspace_id):
        key = ApiKey.get_or_404(*ApiKey.key(principal.workspace_id, key_id))
    if key.revoked_at is None:
        with global_scope():
            ApiKeyLookup(*ApiKeyLookup.key(key.secret_hash)).delete()
        with tenant_scope(principal.workspace_id):
            try:
                key.update(actions=[ApiKey.revoked_at.set(services.now())], condition=ApiKey.pk.exists())
            except UpdateError:
                raise NotFound() from None  # deleted meanwhile (offboarding)
    close_connections(services, principal.workspace_id, api_key_id=key.id)


# --------------------------------------------------------------------------- offboarding


def delete_workspace(services: Services, principal: Principal) -> dict[str, Any]:
    """Offboarding: start the job that deletes every item of the workspace
    (``agenthq.offboarding``); from now on the workspace answers 404. Repeating
    it while the job runs changes nothing; after a failed job it starts the next attempt."""
    principal.require(Scope.workspace_delete)
    principal.require_role(Role.owner)
    return offboarding.start(services, principal.workspace_id, by=principal.subject)
