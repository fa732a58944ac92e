"""Access tokens: short-lived JWTs signed with Ed25519 (EdDSA).

The signing keys live in one SSM SecureString parameter (JSON, newest key
first), created on first use; their public halves are published in a second
(plain) parameter, which is all the authorizer can read, and at
GET /v1/auth/jwks. A token names its key with ``kid``; verification accepts
only EdDSA, only known kids, and requires exp, iat, nbf, iss, aud and sub.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

ALGORITHM = "EdDSA"


class InvalidToken(Exception):
    """The token is not one we issued, or no longer valid. Say 401, nothing more."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    workspace_id: str
    session_id: str  # the refresh-token family this access token belongs to
    expires_at: int


def generate_signing_key() -> dict[str, str]:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"kid": uuid.uuid4().hex[:16], "private_pem": pem, "created_at": datetime.now(UTC).isoformat()}


def _private_key(entry: dict[str, str]) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(entry["private_pem"].encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("a signing key is not an Ed25519 key")
    return key


def public_jwks(signing_keys: list[dict[str, str]]) -> dict[str, Any]:
    keys = []
    for entry in signing_keys:
        jwk = json.loads(OKPAlgorithm.to_jwk(_private_key(entry).public_key()))
        keys.append({**jwk, "kid": entry["kid"], "alg": ALGORITHM, "use": "sig"})
    return {"keys": keys}


class TokenSigner:
    """Issues access tokens with the newest signing key."""

    def __init__(self, signing_keys: list[dict[str, str]], issuer: str, audience: str, ttl_seconds: int) -> None:
        if not signing_keys:
            raise ValueError("no signing key")
        newest = signing_keys[0]
        self.kid = newest["kid"]
        self._key = _private_key(newest)
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: str, workspace_id: str, session_id: str, now: float | None = None) -> tuple[str, int]:
        """(token, expires_in seconds)."""
        now = int(now if now is not None else time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "wid": workspace_id,
            "sid": session_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})
        return token, self.ttl_seconds


class TokenVerifier:
    """Verifies access tokens against the published public keys."""

    def __init__(self, jwks: dict[str, Any], issuer: str, audience: str, leeway_seconds: int = 5) -> None:
        self.keys: dict[str, Ed25519PublicKey] = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and jwk.get("kid"):
                key = OKPAlgorithm.from_jwk(json.dumps(jwk))
                if isinstance(key, Ed25519PublicKey):
                    self.keys[jwk["kid"]] = key
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds

    def knows(self, kid: str) -> bool:
        return kid in self.keys

    def verify(self, token: str, now: float | None = None) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("algorithm")
        key = self.keys.get(str(header.get("kid", "")))
        if key is None:
            raise InvalidToken("unknown key")
        try:
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=self.audience, issuer=self.issuer, leeway=self.leeway,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            raise InvalidToken("invalid") from None
        if now is not None and claims["exp"] + self.leeway < now:
            raise InvalidToken("expired")
        if not isinstance(claims.get("wid"), str) or not isinstance(claims.get("sid"), str):
            raise InvalidToken("claims")
        return AccessClaims(user_id=str(claims["sub"]), workspace_id=claims["wid"], session_id=claims["sid"],
                            expires_at=int(claims["exp"]))


KEY_CACHE_SECONDS = 300  # a key removed from SSM is no longer used or trusted by a warm container after this


class KeyStore:
    """The signing keys in SSM, as one warm process sees them.

    Both halves are cached for at most ``max_age_seconds`` (5 minutes): a key
    added to the signing parameter is used, and one removed from it (or from
    the public parameter) stops being used to sign and to verify, in every
    warm container within that time — the revocation bound docs/security.md
    states. The public keys are also re-read, at most every ``refresh_seconds``,
    when a token names a key not yet known (a key added a moment ago)."""

    def __init__(self, ssm: Any, signing_parameter: str, public_parameter: str, refresh_seconds: int = 60,
                 max_age_seconds: float = KEY_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ssm = ssm
        self.signing_parameter = signing_parameter
        self.public_parameter = public_parameter
        self.refresh_seconds = refresh_seconds
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._signing: list[dict[str, str]] | None = None
        self._signing_loaded_at = 0.0
        self._public: dict[str, Any] | None = None
        self._public_loaded_at = 0.0

    def signing_keys(self) -> list[dict[str, str]]:
        """The private keys, newest first, as SSM had them at most ``max_age_seconds`` ago; the
        first ever call creates one. A reload that finds other keys republishes the public halves."""
        with self._lock:
            if self._signing is None or self.clock() - self._signing_loaded_at >= self.max_age_seconds:
                self._signing = self._load_or_create_signing_keys()
                self._signing_loaded_at = self.clock()
            return self._signing

    def public_keys(self, refresh: bool = False) -> dict[str, Any]:
        """The published public keys, as SSM had them at most ``max_age_seconds`` ago (``refresh``:
        a token names an unknown key; re-read if the last read is ``refresh_seconds`` old)."""
        with self._lock:
            age = self.clock() - self._public_loaded_at
            if self._public is None or age >= self.max_age_seconds or (refresh and age > self.refresh_seconds):
                try:
                    value = self.ssm.get_parameter(Name=self.public_parameter)["Parameter"]["Value"]
                    self._public = json.loads(value)
                except self.ssm.exceptions.ParameterNotFound:
                    self._public = {"keys": []}
                self._public_loaded_at = self.clock()
            return self._public

    def _load_or_create_signing_keys(self) -> list[dict[str, str]]:
        try:
            value = self.ssm.get_parameter(Name=self.signing_parameter, WithDecryption=True)["Parameter"]["Value"]
            keys = json.loads(value)["keys"]
        except self.ssm.exceptions.ParameterNotFound:
            keys = [generate_signing_key()]
            try:
                self.ssm.put_parameter(Name=self.signing_parameter, Type="SecureString", Overwrite=False,
                                       Value=json.dumps({"keys": keys}))
            except self.ssm.exceptions.ParameterAlreadyExists:  # another cold start won the race
                value = self.ssm.get_parameter(Name=self.signing_parameter, WithDecryption=True)["Parameter"]["Value"]
                keys = json.loads(value)["keys"]
        # Publish the public halves when they differ (a rotation, a removal; PutParameter's
        # throughput is low, and every warm container reloads every few minutes).
        published = json.dumps(public_jwks(keys))
        try:
            current = self.ssm.get_parameter(Name=self.public_parameter)["Parameter"]["Value"]
        except self.ssm.exceptions.ParameterNotFound:
            current = None
        if current is None or json.loads(current) != json.loads(published):
            self.ssm.put_parameter(Name=self.public_parameter, Type="String", Overwrite=True, Value=published)
        return list(keys)
