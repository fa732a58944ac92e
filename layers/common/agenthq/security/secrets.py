"""Opaque secrets (API keys, refresh tokens): random, shown once, stored hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "ahq_"
REFRESH_TOKEN_PREFIX = "ahr_"  # nosec B105  # the public prefix of refresh tokens, not a secret


def new_secret(prefix: str, nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def secret_hash(secret: str) -> str:
    """SHA-256 of a high-entropy secret: enough (no KDF needed) and indexable."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def fingerprint(*parts: str) -> str:
    """A stable hash of several values (e.g. to recognise a retried request)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
