"""Every item type of the table. Key layout and access patterns: docs/data-model.md.

Workspace-owned items have partition keys starting ``WS#<workspace_id>``
(see ``ws_pk``); global items (users, e-mail index, API-key and refresh-token
hashes, login throttles) are reached only by the functions that need them.
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)

from agenthq.store.base import BaseItem, ws_pk


class HealthProbe(BaseItem, discriminator="HealthProbe"):
    """A fixed key the health check reads; it need not exist."""

    @classmethod
    def probe(cls) -> None:
        """One consistent GetItem round trip; raises if DynamoDB can't answer."""
        try:
            cls.get("HEALTH", "HEALTH", consistent_read=True)
        except cls.DoesNotExist:
            pass


# --------------------------------------------------------------------------- people (global)


class User(BaseItem, discriminator="User"):
    """pk USER#<user_id>, sk META."""

    id = UnicodeAttribute()
    email = UnicodeAttribute()
    password_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()

    @staticmethod
    def key(user_id: str) -> tuple[str, str]:
        return f"USER#{user_id}", "META"


class UserEmail(BaseItem, discriminator="UserEmail"):
    """pk EMAIL#<normalized email>, sk META: makes e-mail addresses unique."""

    user_id = UnicodeAttribute()

    @staticmethod
    def key(email: str) -> tuple[str, str]:
        return f"EMAIL#{email}", "META"


class RefreshToken(BaseItem, discriminator="RefreshToken"):
    """pk REFRESH#<sha256 of the token>, sk META. One per issued refresh token;
    ``used_at`` is set when it is rotated (a second use is reuse)."""

    family_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    issued_at = UTCDateTimeAttribute()
    used_at = UTCDateTimeAttribute(null=True)
    replaced_by = UnicodeAttribute(null=True)  # hash of the token that replaced it

    @staticmethod
    def key(token_hash: str) -> tuple[str, str]:
        return f"REFRESH#{token_hash}", "META"


class SessionFamily(BaseItem, discriminator="SessionFamily"):
    """pk SESSION#<family_id>, sk META: one login's chain of refresh tokens.
    Revoked on logout, on reuse of a rotated token, and on offboarding."""

    user_id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    revoked_at = UTCDateTimeAttribute(null=True)
    revoked_reason = UnicodeAttribute(null=True)

    @staticmethod
    def key(family_id: str) -> tuple[str, str]:
        return f"SESSION#{family_id}", "META"


class LoginThrottle(BaseItem, discriminator="LoginThrottle"):
    """pk LOGIN#<kind>#<hash of e-mail or IP>, sk META: recent failed logins."""

    failures = NumberAttribute(default=0)
    window_start = NumberAttribute()  # unix seconds
    last_failure = NumberAttribute(default=0)

    @staticmethod
    def key(subject: str) -> tuple[str, str]:
        return f"LOGIN#{subject}", "META"


class ApiKeyLookup(BaseItem, discriminator="ApiKeyLookup"):
    """pk APIKEY#<sha256 of the secret>, sk META: what the authorizer reads.
    Deleted when the key is revoked, so a revoked key finds nothing."""

    workspace_id = UnicodeAttribute()
    key_id = UnicodeAttribute()
    scopes = UnicodeSetAttribute()
    usage_key = UnicodeAttribute()
    last_used_at = UTCDateTimeAttribute(null=True)

    @staticmethod
    def key(secret_hash: str) -> tuple[str, str]:
        return f"APIKEY#{secret_hash}", "META"


# --------------------------------------------------------------------------- workspace-owned


class Workspace(BaseItem, discriminator="Workspace"):
    """pk WS#<id>, sk META."""

    id = UnicodeAttribute()
    name = UnicodeAttribute()
    tier = UnicodeAttribute(default="free")
    limit_overrides = JSONAttribute(null=True)  # enterprise only
    usage_key = UnicodeAttribute()  # the API Gateway key value of this workspace (never shown)
    gateway_key_id = UnicodeAttribute(null=True)  # set once the API Gateway key exists
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    signup_fingerprint = UnicodeAttribute(null=True)  # recognises a retried signup
    deleting = BooleanAttribute(default=False)

    @staticmethod
    def key(workspace_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), "META"

    def owned_partitions(self) -> list[str]:
        return [ws_pk(self.id, "USAGE")]


class Member(BaseItem, discriminator="Member"):
    """pk WS#<id>, sk MEMBER#<user_id>; gsi1: USER#<user_id> → the user's workspaces."""

    workspace_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    email = UnicodeAttribute()
    role = UnicodeAttribute()
    usage_key = UnicodeAttribute()  # copied from the workspace so the authorizer reads one item
    joined_at = UTCDateTimeAttribute()

    @staticmethod
    def key(workspace_id: str, user_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"MEMBER#{user_id}"


class ApiKey(BaseItem, discriminator="ApiKey"):
    """pk WS#<id>, sk APIKEY#<key_id>: the key as the workspace sees it (no secret)."""

    id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    name = UnicodeAttribute()
    prefix = UnicodeAttribute()
    secret_hash = UnicodeAttribute()
    scopes = UnicodeSetAttribute()
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    last_used_at = UTCDateTimeAttribute(null=True)
    revoked_at = UTCDateTimeAttribute(null=True)

    @staticmethod
    def key(workspace_id: str, key_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"APIKEY#{key_id}"


class WorkspaceSession(BaseItem, discriminator="WorkspaceSession"):
    """pk WS#<id>, sk SESSION#<family_id>: lets offboarding find the workspace's
    login sessions (the families themselves are global items)."""

    family_id = UnicodeAttribute()
    user_id = UnicodeAttribute()

    @staticmethod
    def key(workspace_id: str, family_id: str) -> tuple[str, str]:
        return ws_pk(workspace_id), f"SESSION#{family_id}"
