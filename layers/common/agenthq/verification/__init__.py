"""E-mail verification: a workspace spends nothing until its creator's address is proven.

When the deployment requires it (``REQUIRE_VERIFIED_EMAIL``, template.yaml's
``RequireVerifiedEmail``), signup stores the address unverified, marks the new
workspace ``verification_pending`` and mails a one-time link (Amazon SES,
``agenthq.adapters.mail``). Until the link is used the workspace launches no
run — a 403 ``email_unverified`` that writes nothing (``require_verified``,
called where every root run is created) — whoever asks: its owner, an invited
member or an API key (keys act as the workspace, so the gate is the
workspace's, not a user's).

The link carries a random token (``ahv_`` + 256 bits); only its SHA-256 is
stored (``EmailVerification``, pk ``VERIFY#<hash>``), valid 24 hours, used
once. Verifying clears the flag on every workspace the user created (each an
idempotent conditional update), then marks the token used and the user
verified in one conditional transaction: a second use of the token is refused
and changes nothing; a crash between the two steps leaves the token unused, so
using it again finishes the job. A new link can be asked for (``resend``),
at most once a minute and five times a day per account.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, SecretStr
from pynamodb.exceptions import TransactWriteError, UpdateError

from agenthq.adapters.mail import MailNotSent
from agenthq.errors import Forbidden, InvalidRequest, ServiceUnavailable, Unauthorized
from agenthq.observability import logger
from agenthq.security import request_rates
from agenthq.security.secrets import new_secret, secret_hash
from agenthq.store import global_scope, tenant_scope, transaction
from agenthq.store.items import EmailVerification, Member, User, Workspace

if TYPE_CHECKING:
    from agenthq.services import Services
    from agenthq.settings import Settings

TOKEN_PREFIX = "ahv_"  # nosec B105  # the public prefix of verification tokens, not a secret
#: A new link at most once a minute and five times a day per account (mail costs, and is someone's inbox).
RESEND_PER_MINUTE = request_rates.RequestRate("verify-mail", limit=1, window_seconds=60)
RESEND_PER_DAY = request_rates.RequestRate("verify-mail-day", limit=5, window_seconds=86400)
SUBJECT = "Verify your e-mail address for AgentHQ"


class EmailUnverified(Forbidden):
    code = "email_unverified"
    message = ("Verify your e-mail address before this workspace launches runs: open the link we mailed you "
               "(a new one: POST /v1/auth/verify-email/resend).")


class InvalidVerificationLink(InvalidRequest):
    code = "invalid_verification_token"
    message = "This verification link is not valid: ask for a new one (POST /v1/auth/verify-email/resend)."


class VerifyEmailRequest(BaseModel):
    token: SecretStr = Field(min_length=1, max_length=256)


def pending_at_signup(settings: Settings) -> bool | None:
    """The ``verification_pending`` a new workspace starts with (None: absent, it may launch runs)."""
    return True if settings.require_verified_email else None


def require_verified(settings: Settings, workspace: Workspace) -> None:
    """Refuse (403 ``email_unverified``) what spends money in a workspace that awaits its creator's
    verification. A workspace without the flag (verified, or made while verification was off) passes;
    so does every workspace when the operator turns verification off."""
    if settings.require_verified_email and workspace.verification_pending:
        raise EmailUnverified()


def status(user: User) -> dict[str, Any]:
    return {"email": user.email, "email_verified": user.email_verified_at is not None}


def send_link(services: Services, user: User, api_url: str) -> None:
    """Store a new one-time token for the user's address and mail its link (MailNotSent if SES refused)."""
    token = new_secret(TOKEN_PREFIX)
    now = services.now()
    valid_until = now + timedelta(seconds=services.settings.verification_link_ttl_seconds)
    link = EmailVerification(*EmailVerification.key(secret_hash(token)), user_id=user.id, email=user.email,
                             created_at=now, valid_until=valid_until, expires_at=valid_until + timedelta(days=1))
    with global_scope():
        link.save(condition=EmailVerification.pk.does_not_exist())
    hours = services.settings.verification_link_ttl_seconds // 3600
    url = f"{api_url.rstrip('/')}/console/#/verify-email/{token}"
    services.mailer.send(user.email, SUBJECT, (
        "Someone (we hope you) signed up to AgentHQ with this address.\n\n"
        f"To verify it, open this link within {hours} hours:\n\n{url}\n\n"
        f"or run: agenthq verify-email {token}\n\n"
        "The link works once. If you did not sign up, ignore this mail: the address stays unverified.\n"))


def send_link_at_signup(services: Services, user: User, api_url: str) -> bool:
    """The signup's link: a mail that SES refuses does not undo the signup (``resend`` tries again)."""
    try:
        send_link(services, user, api_url)
    except MailNotSent:
        logger.exception("the verification mail could not be sent")
        return False
    return True


def verify(services: Services, request: VerifyEmailRequest, source_ip: str) -> dict[str, Any]:
    """Use a link's token: the workspaces its user created may launch runs, the user is verified."""
    now = services.now()
    request_rates.admit(request_rates.PER_SOURCE, source_ip, services.clock())
    token = request.token.get_secret_value()
    with global_scope():
        link = EmailVerification.get_or_none(*EmailVerification.key(secret_hash(token)))
        user = User.get_or_none(*User.key(link.user_id)) if link is not None else None
    if link is None or user is None or user.email != link.email:
        raise InvalidVerificationLink()
    used = InvalidVerificationLink("This verification link was already used: each link works once.")
    if link.used_at is not None:
        raise used
    if link.valid_until <= now:
        raise InvalidVerificationLink("This verification link has expired: ask for a new one "
                                      "(POST /v1/auth/verify-email/resend).")
    release_workspaces(user)
    try:
        with global_scope(), transaction() as tx:
            tx.update(link, actions=[EmailVerification.used_at.set(now)],
                      condition=EmailVerification.used_at.does_not_exist())
            tx.update(user, actions=[User.email_verified_at.set(User.email_verified_at | now)],
                      condition=User.email == link.email)
    except TransactWriteError:  # a concurrent use of the same token won (or the address changed)
        raise used from None
    user.email_verified_at = user.email_verified_at or now
    return status(user)


def release_workspaces(user: User) -> None:
    """Every workspace the user created may launch runs: its pending flag removed, on the condition that
    the user created it (an idempotent update per workspace, through the workspace's tenant role)."""
    with global_scope():
        memberships = list(Member.gsi1.query(f"USER#{user.id}"))
    for member in memberships:
        with tenant_scope(member.workspace_id):
            try:
                Workspace(*Workspace.key(member.workspace_id)).update(
                    actions=[Workspace.verification_pending.remove()],
                    condition=(Workspace.created_by == user.id) & Workspace.verification_pending.exists())
            except UpdateError as exc:
                if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                    raise  # not the user's own workspace, or released already: nothing to do


def resend(services: Services, user_id: str, api_url: str) -> dict[str, Any]:
    """A new link for the signed-in user's address; 429 past the account's resend rate. An address
    verified already gets no mail (and its workspaces are released again, should one have been missed)."""
    with global_scope():
        user = User.get_or_none(*User.key(user_id))
    if user is None:
        raise Unauthorized()
    if user.email_verified_at is not None:
        release_workspaces(user)
        return {**status(user), "sent": False}
    subject = f"user:{user.id}"
    request_rates.admit(RESEND_PER_MINUTE, subject, services.clock())
    request_rates.admit(RESEND_PER_DAY, subject, services.clock())
    try:
        send_link(services, user, api_url)
    except MailNotSent as exc:
        logger.exception("the verification mail could not be sent")
        raise ServiceUnavailable("The mail could not be sent; try again later.") from exc
    return {**status(user), "sent": True}
