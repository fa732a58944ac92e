"""Forged, altered and stale access tokens are refused with 401 — never a 5xx."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support import assert_error, bearer, signup


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unsigned(header: dict, claims: dict) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


@pytest.fixture(scope="module")
def signing_key(cloud):
    ssm = cloud.client("ssm")
    value = ssm.get_parameter(Name=cloud.environment["JWT_SIGNING_KEY_PARAMETER"], WithDecryption=True)
    newest = json.loads(value["Parameter"]["Value"])["keys"][0]
    return newest["kid"], serialization.load_pem_private_key(newest["private_pem"].encode(), password=None)


@pytest.fixture()
def victim(api):
    return signup(api, tag="victim")


def claims_for(tenant, cloud, **overrides) -> dict:
    payload = jwt.decode(tenant.access_token, options={"verify_signature": False})
    payload.update(overrides)
    return payload


def forge(signing_key, claims: dict, kid: str | None = None) -> str:
    real_kid, key = signing_key
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid or real_kid})


def attacks(victim, cloud, signing_key) -> dict[str, str]:
    kid, key = signing_key
    good = claims_for(victim, cloud)
    now = int(time.time())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    public_raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def hs256(secret: bytes) -> str:
        signing_input = unsigned({"alg": "HS256", "typ": "JWT", "kid": kid}, good)
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(signature)}"

    header, payload, signature = victim.access_token.split(".")
    tampered_claims = {**good, "wid": "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "sub": "01ZZZZZZZZZZZZZZZZZZZZZZZZ"}
    return {
        "alg none": unsigned({"alg": "none", "typ": "JWT", "kid": kid}, good) + ".",
        "alg none, no signature part": unsigned({"alg": "none", "kid": kid}, good),
        "HS256 keyed with the public key (PEM)": hs256(public_pem),
        "HS256 keyed with the public key (raw)": hs256(public_raw),
        "unknown kid": forge((kid, Ed25519PrivateKey.generate()), good, kid="not-a-key"),
        "right kid, wrong key": forge((kid, Ed25519PrivateKey.generate()), good),
        "expired": forge(signing_key, {**good, "iat": now - 3600, "nbf": now - 3600, "exp": now - 600}),
        "not yet valid": forge(signing_key, {**good, "iat": now, "nbf": now + 600, "exp": now + 1200}),
        "wrong audience": forge(signing_key, {**good, "aud": "someone-else"}),
        "wrong issuer": forge(signing_key, {**good, "iss": "https://evil.example.com"}),
        "no expiry": forge(signing_key, {k: v for k, v in good.items() if k != "exp"}),
        "tampered payload": f"{header}.{b64(json.dumps(tampered_claims).encode())}.{signature}",
        "truncated signature": victim.access_token[:-12],
        "truncated to two parts": f"{header}.{payload}",
        "garbage": "not-a-jwt",
        "empty segments": "..",
        "valid signature, session of another user": forge(signing_key, {**good, "sub": "01ZZZZZZZZZZZZZZZZZZZZZZZZ"}),
    }


def test_every_forged_token_is_a_401(api, cloud, signing_key, victim):
    assert api.get("/me", headers=victim.headers).status_code == 200  # the genuine token works
    for name, token in attacks(victim, cloud, signing_key).items():
        for path in ("/me", victim.path(), victim.path("/members")):
            response = api.get(path, headers=bearer(token))
            assert response.status_code == 401, f"{name} on {path}: {response.status_code} {response.text}"
            assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Basic dXNlcjpwYXNz", "Token abc", ""])
def test_malformed_authorization_headers_are_401(api, victim, header):
    assert_error(api.get(victim.path(), headers={"Authorization": header}), 401, "unauthorized")


def test_no_credentials_is_401(api, victim):
    assert_error(api.get(victim.path()), 401, "unauthorized")
    assert_error(api.get(victim.path(), headers={"x-api-key": "ahq_guessed"}), 401, "unauthorized")
