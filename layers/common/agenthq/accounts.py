"""Accounts and sessions: signup, login, refresh-token rotation, logout, /me.

A session is a *family* of refresh tokens started by a login (or signup).
Refresh tokens are opaque, stored only as SHA-256 hashes, and rotate on every
use; presenting a rotated token again (after a short grace period that absorbs
racing retries) revokes the whole family. Access tokens are 15-minute JWTs
naming the user, the workspace and the session; the authorizer also checks
that the session is alive, so logout takes effect at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pynamodb.exceptions import TransactWriteError, UpdateError

from agenthq import ids
from agenthq.context import Role
from agenthq.errors import Conflict, Forbidden, RateLimited, ServiceUnavailable, Unauthorized
from agenthq.live.connections import close_connections
from agenthq.observability import logger
from agenthq.security import request_rates, throttle
from agenthq.security.passwords import check_password_policy, dummy_hash, hash_password, needs_rehash, verify_password
from agenthq.security.secrets import REFRESH_TOKEN_PREFIX, fingerprint, new_secret, secret_hash
from agenthq.store import global_scope, retry_transaction, tenant_scope, transaction
from agenthq.store.items import (
    Invitation,
    Member,
    RefreshToken,
    SessionFamily,
    User,
    UserEmail,
    Workspace,
    WorkspaceDirectoryEntry,
    WorkspaceSession,
)
from agenthq.text import NOT_BLANK, display_name
from agenthq.verification import pending_at_signup, send_link_at_signup

if TYPE_CHECKING:
    from agenthq.services import Services

EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
SIGNUP_RETRY_WINDOW = timedelta(hours=24)
REFRESH_RACE_GRACE_SECONDS = 10
INVALID_LOGIN = "Invalid e-mail or password."
#: A login starting with less of its invocation left than this is shed (429): half the auth function's 20 s,
#: against a password hash that takes well under a second on an idle core.
LOGIN_SECONDS_NEEDED = 10.0
LOGIN_BUSY_RETRY_AFTER = 5


# --------------------------------------------------------------------------- edge models


def normalize_email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 254 or not EMAIL_PATTERN.match(value):
        raise ValueError("must be a valid e-mail address")
    return value


class SignupRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"email": "ada@example.com", "password": "analytical-engine-1843",  # nosec B105  # a documented example
         "workspace_name": "Engines Ltd"}]})

    email: str = Field(max_length=254)
    password: SecretStr = Field(max_length=1024)
    workspace_name: str = Field(min_length=1, max_length=100, pattern=NOT_BLANK)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalize_email(value)

    @field_validator("workspace_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return display_name(value)


class LoginRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"email": "ada@example.com", "password": "analytical-engine-1843"}]})  # nosec B105  # a documented example

    email: str = Field(max_length=254)
    password: SecretStr = Field(max_length=1024)
    workspace_id: str | None = Field(default=None, max_length=64)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return value.strip().lower()


class RefreshRequest(BaseModel):
    refresh_token: SecretStr = Field(max_length=512)


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    workspace_id: str


# --------------------------------------------------------------------------- helpers



def user_view(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "email_verified": user.email_verified_at is not None,
            "created_at": user.created_at.isoformat()}


def workspace_summary(workspace: Workspace) -> dict[str, Any]:
    """The workspace as signup shows it (``GET /workspaces/{wid}`` adds its limits)."""
    return {"id": workspace.id, "name": workspace.name, "tier": workspace.tier,
            "created_at": workspace.created_at.isoformat()}


def _start_session(services: Services, user_id: str, workspace_id: str) -> tuple[list[Any], str, str]:
    """Items that start a session (to write in the caller's transaction),
    the family id and the first refresh token."""
    now = services.now()
    family_id = ids.new_id()
    token = new_secret(REFRESH_TOKEN_PREFIX)
    ttl = now + timedelta(seconds=services.settings.refresh_token_ttl_seconds)
    family = SessionFamily(*SessionFamily.key(family_id), user_id=user_id, workspace_id=workspace_id,
                           created_at=now, expires_at=ttl)
    refresh = RefreshToken(*RefreshToken.key(secret_hash(token)), family_id=family_id, user_id=user_id,
                           workspace_id=workspace_id, issued_at=now, expires_at=ttl)
    index = WorkspaceSession(*WorkspaceSession.key(workspace_id, family_id), family_id=family_id, user_id=user_id,
                             expires_at=ttl)
    return [family, refresh, index], family_id, token


def _tokens(services: Services, user_id: str, workspace_id: str, family_id: str, refresh_token: str) -> Tokens:
    access, expires_in = services.token_signer.issue(user_id, workspace_id, family_id, now=services.clock())
    return Tokens(access_token=access, refresh_token=refresh_token, expires_in=expires_in, workspace_id=workspace_id)


def _new_session(services: Services, user_id: str, workspace_id: str) -> Tokens:
    """Start a session of the user in the workspace (a login): its items and its tokens."""
    session_items, family_id, refresh_token = _start_session(services, user_id, workspace_id)
    with global_scope(), transaction() as tx:
        for item in session_items:
            tx.save(item)
    return _tokens(services, user_id, workspace_id, family_id, refresh_token)


def ensure_gateway_key(services: Services, workspace: Workspace) -> None:
    """Give the workspace its API Gateway key if it has none yet (first signup,
    or a signup that failed half-way and is being retried).

    Each attempt creates a key with a new value and stores its id and value (on
    the workspace and its members, whose copy the authorizer returns) only if no
    attempt stored one before: a retry after a crash between the creation and the
    write makes a new key rather than looking the lost one up (a lookup lists
    every key value of the region; decisions.md 195). A lost attempt's key is
    left attached to its tier's plan with a value no item holds: it meters nothing."""
    if workspace.gateway_key_id:
        return
    value = new_secret("", 30)
    try:
        key_id = services.gateway_keys.create_key(workspace.id, value, workspace.tier)
    except Exception as exc:
        logger.exception("could not create the workspace's API Gateway key")
        raise ServiceUnavailable("Your workspace is not ready yet; please retry.") from exc
    with tenant_scope(workspace.id):
        members = list(Member.query(Workspace.key(workspace.id)[0], Member.sk.startswith("MEMBER#"),
                                    consistent_read=True))
        try:
            with transaction() as tx:
                tx.update(workspace, actions=[Workspace.gateway_key_id.set(key_id), Workspace.usage_key.set(value)],
                          condition=Workspace.gateway_key_id.does_not_exist())
                for member in members:
                    tx.update(member, actions=[Member.usage_key.set(value)], condition=Member.pk.exists())
        except TransactWriteError:  # a concurrent attempt stored its key first (or a member left): use what is
            workspace.refresh(consistent_read=True)
            if not workspace.gateway_key_id:
                raise ServiceUnavailable("Your workspace is not ready yet; please retry.") from None
            return
    workspace.gateway_key_id, workspace.usage_key = key_id, value


def admit_caller(services: Services, source_ip: str | None, account: str | None = None) -> None:
    """Count an auth request against its source address's and its account's request rates (429 past
    either, before any other work): one caller's retries cannot use up another's (request_rates)."""
    now = services.clock()
    if source_ip is not None:
        request_rates.admit(request_rates.PER_SOURCE, source_ip, now)
    if account is not None:
        request_rates.admit(request_rates.PER_ACCOUNT, account, now)


# --------------------------------------------------------------------------- signup


def signup(services: Services, request: SignupRequest, source_ip: str, api_url: str = "") -> dict[str, Any]:
    """Create the user, their workspace (tier free) and the owner membership.

    Retrying the same signup (same e-mail, password and workspace name, within
    a day) returns the same user and workspace with a new session instead of
    a second workspace; any other signup with a known e-mail is a 409.

    When e-mail verification is required the workspace starts ``verification_pending`` and a one-time
    link is mailed (its links point under ``api_url``, the API's public URL): agenthq.verification."""
    admit_caller(services, source_ip, f"email:{request.email}")
    password = request.password.get_secret_value()
    check_password_policy(password, email=request.email, other_words=(request.workspace_name,))
    signup_print = fingerprint("signup", request.email, request.workspace_name)

    existing = _signup_retry(services, request, password, signup_print)
    if existing is not None:
        return existing

    now = services.now()
    user_id, workspace_id = ids.new_id(), ids.new_id()
    usage_key = new_secret("", 30)
    user = User(*User.key(user_id), id=user_id, email=request.email, password_hash=hash_password(password),
                created_at=now)
    email = UserEmail(*UserEmail.key(request.email), user_id=user_id)
    workspace = Workspace(*Workspace.key(workspace_id), id=workspace_id, name=request.workspace_name, tier="free",
                          usage_key=usage_key, created_at=now, created_by=user_id, signup_fingerprint=signup_print,
                          verification_pending=pending_at_signup(services.settings))
    member = Member(*Member.key(workspace_id, user_id), workspace_id=workspace_id, user_id=user_id,
                    email=request.email, role=Role.owner.value, usage_key=usage_key, joined_at=now,
                    gsi1pk=f"USER#{user_id}", gsi1sk=f"WS#{workspace_id}")
    session_items, family_id, refresh_token = _start_session(services, user_id, workspace_id)
    try:
        with global_scope(), transaction() as tx:
            tx.save(email, condition=UserEmail.pk.does_not_exist())
            tx.save(user, condition=User.pk.does_not_exist())
            tx.save(workspace, condition=Workspace.pk.does_not_exist())
            tx.save(WorkspaceDirectoryEntry(*WorkspaceDirectoryEntry.key(workspace_id), workspace_id=workspace_id,
                                            created_at=now))
            tx.save(member)
            for item in session_items:
                tx.save(item)
    except TransactWriteError:
        # Lost a race with a concurrent signup for the same e-mail.
        existing = _signup_retry(services, request, password, signup_print)
        if existing is not None:
            return existing
        raise Conflict("An account with this e-mail address already exists.") from None

    ensure_gateway_key(services, workspace)
    if workspace.verification_pending:  # a retried signup sends no second mail: the resend route does
        send_link_at_signup(services, user, api_url)
    tokens = _tokens(services, user_id, workspace_id, family_id, refresh_token)
    return {"user": user_view(user), "workspace": workspace_summary(workspace), **tokens.model_dump()}


def _signup_retry(services: Services, request: SignupRequest, password: str, signup_print: str) -> dict[str, Any] | None:
    with global_scope():
        email = UserEmail.get_or_none(*UserEmail.key(request.email))
        user = User.get_or_none(*User.key(email.user_id)) if email is not None else None
        if user is None:
            return None
        workspaces = [m for m in Member.gsi1.query(f"USER#{user.id}") if m.role == Role.owner.value]
    for member in workspaces:
        with tenant_scope(member.workspace_id):
            workspace = Workspace.get_or_none(*Workspace.key(member.workspace_id))
        if workspace is None:
            continue
        recent = services.now() - workspace.created_at < SIGNUP_RETRY_WINDOW
        if workspace.signup_fingerprint == signup_print and recent and verify_password(user.password_hash, password):
            ensure_gateway_key(services, workspace)
            tokens = _new_session(services, user.id, workspace.id)
            return {"user": user_view(user), "workspace": workspace_summary(workspace), **tokens.model_dump()}
    raise Conflict("An account with this e-mail address already exists.")


# --------------------------------------------------------------------------- login


def login(services: Services, request: LoginRequest, source_ip: str, seconds_left: float = math.inf) -> Tokens:
    """A session for the user in a workspace. ``seconds_left``: the invocation's remaining time. A login
    that has waited so long to start (for an execution environment, past a busy hour) that its password
    hash may not finish in time is shed at once: 429 with ``Retry-After``, no hash, nothing recorded,
    instead of a timeout at the function's end (a 502) after the CPU was spent (decisions.md, 157)."""
    if seconds_left < LOGIN_SECONDS_NEEDED:
        raise RateLimited("The service is busy; try again in a few seconds.", retry_after=LOGIN_BUSY_RETRY_AFTER)
    admit_caller(services, source_ip, f"email:{request.email}")
    now = services.clock()
    waits = [w for w in (throttle.retry_after(throttle.ACCOUNT, request.email, now),
                         throttle.retry_after(throttle.SOURCE_IP, source_ip, now)) if w]
    if waits:
        raise RateLimited("Too many failed logins; try again later.", retry_after=max(waits))

    password = request.password.get_secret_value()
    user = _user_by_email(request.email)
    if user is None or not verify_password(user.password_hash, password):
        if user is None:
            verify_password(dummy_hash(), password)  # same work, same timing
        throttle.record_failure(throttle.ACCOUNT, request.email, now)
        throttle.record_failure(throttle.SOURCE_IP, source_ip, now)
        raise Unauthorized(INVALID_LOGIN)
    throttle.reset(throttle.ACCOUNT, request.email)
    if needs_rehash(user.password_hash):
        with global_scope():
            user.update(actions=[User.password_hash.set(hash_password(password))])

    member = _membership(user.id, request.workspace_id, lambda: _accept_invitation(services, user, request.workspace_id))
    with tenant_scope(member.workspace_id):
        workspace = Workspace.get(*Workspace.key(member.workspace_id))
    ensure_gateway_key(services, workspace)
    return _new_session(services, user.id, member.workspace_id)


def _user_by_email(email: str) -> User | None:
    with global_scope():
        entry = UserEmail.get_or_none(*UserEmail.key(email), consistent_read=False)
        return User.get_or_none(*User.key(entry.user_id), consistent_read=False) if entry is not None else None


class NotAMember(Forbidden):
    """A login (with the right password) naming a workspace the user is not a member of, or by a user
    who is a member of none. The same for a workspace that does not exist: nothing is revealed."""

    message = "You are not a member of that workspace (or of any workspace, when none is named)."


def _membership(user_id: str, workspace_id: str | None, invited: Callable[[], Member | None]) -> Member:
    if workspace_id is not None and ids.is_id(workspace_id):
        # A strongly consistent read of the membership itself (the index lags its table: a membership a
        # concurrent login just made from an invitation is not there yet, and its invitation is gone).
        with tenant_scope(workspace_id):  # a workspace's item: through its tenant role
            found = Member.get_or_none(*Member.key(workspace_id, user_id))
        if found is not None or (found := invited()) is not None:
            return found
        raise NotAMember("You are not a member of that workspace.")
    if workspace_id is not None:
        raise NotAMember("You are not a member of that workspace.")
    with global_scope():
        memberships = sorted(Member.gsi1.query(f"USER#{user_id}"), key=lambda m: m.joined_at)
    if not memberships:
        raise NotAMember("You are not a member of any workspace.")
    first: Member = memberships[0]
    return first


def _accept_invitation(services: Services, user: User, workspace_id: str | None) -> Member | None:
    """The user's pending invitation to the workspace (``workspaces.add_member``), made their membership
    as its login's first act: the member item and the invitation's removal in one transaction, so an
    invitation makes one membership. None when there is none (or it lapsed, or the workspace is gone)."""
    if workspace_id is None or not ids.is_id(workspace_id):
        return None
    now = services.now()
    with tenant_scope(workspace_id):  # the invitation, the workspace and the member are all the workspace's items
        invitation = Invitation.get_or_none(*Invitation.key(workspace_id, user.email))
        if invitation is None or (invitation.expires_at is not None and invitation.expires_at <= now):
            return None
        workspace = Workspace.get_or_none(*Workspace.key(workspace_id))
        if workspace is None or workspace.deleting:
            return None
        member = Member(*Member.key(workspace_id, user.id), workspace_id=workspace_id, user_id=user.id,
                        email=user.email, role=invitation.role, usage_key=workspace.usage_key, joined_at=now,
                        gsi1pk=f"USER#{user.id}", gsi1sk=f"WS#{workspace_id}")
        try:
            with transaction() as tx:
                tx.save(member, condition=Member.pk.does_not_exist())
                tx.delete(invitation, condition=Invitation.role == invitation.role)
        except TransactWriteError:  # a concurrent login took it, or it was withdrawn meanwhile
            return Member.get_or_none(*Member.key(workspace_id, user.id))
    return member


# --------------------------------------------------------------------------- refresh and logout


def refresh(services: Services, request: RefreshRequest, source_ip: str) -> Tokens:
    admit_caller(services, source_ip)
    presented = request.refresh_token.get_secret_value()
    now = services.now()
    invalid = "The refresh token is not valid."
    with global_scope():
        current = RefreshToken.get_or_none(*RefreshToken.key(secret_hash(presented)))
        family = SessionFamily.get_or_none(*SessionFamily.key(current.family_id)) if current else None
    if current is None or family is None:
        raise Unauthorized(invalid)
    admit_caller(services, None, f"user:{current.user_id}")
    if family.revoked_at is not None or (current.expires_at and current.expires_at <= now):
        raise Unauthorized(invalid)
    if current.used_at is not None:
        _handle_reuse(services, current, family, now)

    member = _current_member(current.user_id, current.workspace_id)
    if member is None:
        raise Unauthorized("You are no longer a member of this workspace.")

    token = new_secret(REFRESH_TOKEN_PREFIX)
    token_hash = secret_hash(token)
    replacement = RefreshToken(*RefreshToken.key(token_hash), family_id=current.family_id,
                               user_id=current.user_id, workspace_id=current.workspace_id, issued_at=now,
                               expires_at=family.expires_at)
    used = "The refresh token has already been used."

    def rotate() -> None:
        with global_scope(), transaction() as tx:
            tx.update(current, actions=[RefreshToken.used_at.set(now), RefreshToken.replaced_by.set(token_hash)],
                      condition=RefreshToken.used_at.does_not_exist())
            tx.condition_check(SessionFamily, family.pk, family.sk,
                               condition=SessionFamily.revoked_at.does_not_exist())
            tx.save(replacement)

    def explain(exc: TransactWriteError) -> None:
        if _refused_by_a_condition(exc):  # a concurrent refresh with the same token won, or the session ended
            raise Unauthorized(used)

    retry_transaction(rotate, explain, attempts=5, exhausted=lambda: Unauthorized(used))
    return _tokens(services, current.user_id, current.workspace_id, replacement.family_id, token)


def _refused_by_a_condition(exc: TransactWriteError) -> bool:
    return any(r is not None and r.code == "ConditionalCheckFailed" for r in exc.cancellation_reasons)


def _handle_reuse(services: Services, token: RefreshToken, family: SessionFamily, now: datetime) -> None:
    if (now - token.used_at).total_seconds() > REFRESH_RACE_GRACE_SECONDS:
        revoke_session(family, now, reason="refresh token reuse")
        close_connections(services, family.workspace_id, user_id=family.user_id, session_id=token.family_id)
        logger.warning("refresh token reuse: session revoked", extra={"workspace_id": token.workspace_id})
    raise Unauthorized("The refresh token has already been used.")


def revoke_session(family: SessionFamily, now: datetime, reason: str) -> None:
    with global_scope():
        try:
            family.update(actions=[SessionFamily.revoked_at.set(now), SessionFamily.revoked_reason.set(reason)],
                          condition=SessionFamily.revoked_at.does_not_exist())
        except UpdateError:  # already revoked
            pass


def logout(services: Services, session_id: str) -> None:
    with global_scope():
        family = SessionFamily.get_or_none(*SessionFamily.key(session_id), consistent_read=False)
    if family is None:
        return
    revoke_session(family, services.now(), reason="logout")
    close_connections(services, family.workspace_id, user_id=family.user_id, session_id=session_id)


def _current_member(user_id: str, workspace_id: str) -> Member | None:
    with tenant_scope(workspace_id):
        return Member.get_or_none(*Member.key(workspace_id, user_id))


# --------------------------------------------------------------------------- me


def me(user_id: str, required: bool = False) -> dict[str, Any]:
    """The user (``email_verified``: whether a link sent to the address was used), whether this deployment
    holds a new workspace's runs until then (``email_verification_required``), and the memberships."""
    with global_scope():
        user = User.get_or_none(*User.key(user_id), consistent_read=False)
        if user is None:
            raise Unauthorized()
        memberships = sorted(Member.gsi1.query(f"USER#{user_id}"), key=lambda m: m.joined_at)
        names = {}
        if memberships:
            keys = [Workspace.key(m.workspace_id) for m in memberships]
            names = {w.id: w.name for w in Workspace.batch_get(keys, attributes_to_get=["pk", "sk", "type", "id", "name"])}
    return {
        "user": user_view(user),
        "email_verification_required": required,
        "memberships": [
            {"workspace_id": m.workspace_id, "workspace_name": names.get(m.workspace_id, ""), "role": m.role,
             "joined_at": m.joined_at.isoformat()}
            for m in memberships
        ],
    }

