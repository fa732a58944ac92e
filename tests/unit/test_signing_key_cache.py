"""Signing keys removed from SSM stop being used and trusted by warm containers (issue 18).

The auth function signs with, and the authorizers verify against, the keys a
``KeyStore`` read from SSM. Both halves used to be read once per process: a key
the operator removed (a leaked key, revoked) stayed in use and trusted in every
warm container until it happened to be recycled. Both are now cached for at most
``KEY_CACHE_SECONDS``; these tests run the real store against moto's SSM with a
fake clock, through ``Services`` as the handlers use it.
"""

from __future__ import annotations

import json

import boto3
import jwt
import pytest
from moto import mock_aws

from agenthq.security.tokens import KEY_CACHE_SECONDS, InvalidToken, KeyStore, generate_signing_key, public_jwks
from agenthq.services import Services
from agenthq.settings import Settings

REGION = "ap-south-1"  # not the session's local cloud's region
SIGNING, PUBLIC = "/test/jwt-signing-keys", "/test/jwt-public-keys"
SETTINGS = Settings.from_env({"TABLE_NAME": "agenthq-test", "AWS_REGION": REGION,
                              "JWT_SIGNING_KEY_PARAMETER": SIGNING, "JWT_PUBLIC_KEYS_PARAMETER": PUBLIC})


class Clock:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


@pytest.fixture(autouse=True)
def _table_binding_kept():
    """``Services`` binds the models to its settings' table: bind them back to whatever they were
    bound to (the session's local cloud, when it runs in this process) afterwards."""
    from agenthq.store import base

    before = base._tenancy.settings
    yield
    if before is not None:
        base.configure(before)


@pytest.fixture()
def ssm():
    with mock_aws():
        yield boto3.client("ssm", region_name=REGION)


def publish(ssm, keys: list[dict[str, str]], public: bool = True) -> None:
    """What an operator does to rotate or revoke: rewrite the parameters."""
    ssm.put_parameter(Name=SIGNING, Type="SecureString", Overwrite=True, Value=json.dumps({"keys": keys}))
    if public:
        ssm.put_parameter(Name=PUBLIC, Type="String", Overwrite=True, Value=json.dumps(public_jwks(keys)))


def services(ssm, clock: Clock) -> Services:
    return Services(SETTINGS, key_store=KeyStore(ssm, SIGNING, PUBLIC, clock=clock))


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_a_removed_signing_key_stops_signing_and_the_rotated_one_takes_over(ssm):
    old, new = generate_signing_key(), generate_signing_key()
    publish(ssm, [old])
    clock = Clock()
    auth = services(ssm, clock)
    assert kid_of(auth.token_signer.issue("u", "w", "s")[0]) == old["kid"]

    publish(ssm, [new], public=False)  # the old key leaked: the operator replaces it in the signing parameter
    clock.value += KEY_CACHE_SECONDS - 1
    assert kid_of(auth.token_signer.issue("u", "w", "s")[0]) == old["kid"], "within the bound: still cached"
    clock.value += 1
    assert kid_of(auth.token_signer.issue("u", "w", "s")[0]) == new["kid"]
    published = json.loads(ssm.get_parameter(Name=PUBLIC)["Parameter"]["Value"])
    assert [k["kid"] for k in published["keys"]] == [new["kid"]], "the auth function republished the public half"


def test_a_removed_public_key_stops_being_trusted_by_a_warm_authorizer(ssm):
    old, new = generate_signing_key(), generate_signing_key()
    publish(ssm, [new, old])
    clock = Clock()
    authorizer = services(ssm, clock)
    signed_with_old = Services(SETTINGS, key_store=KeyStore(ssm, SIGNING, PUBLIC, clock=clock))
    publish(ssm, [old, new])  # ... so that this process signs with the old key
    token = signed_with_old.token_signer.issue("u", "w", "s")[0]
    assert kid_of(token) == old["kid"]
    assert authorizer.token_verifier().verify(token).user_id == "u"

    publish(ssm, [new])  # revoked: gone from both parameters
    clock.value += KEY_CACHE_SECONDS - 1
    assert authorizer.token_verifier().verify(token).user_id == "u", "within the bound: still trusted"
    clock.value += 1
    with pytest.raises(InvalidToken):
        authorizer.token_verifier().verify(token)
    with pytest.raises(InvalidToken):
        authorizer.token_verifier(refresh=True).verify(token)


def test_a_key_added_a_moment_ago_is_trusted_at_once_but_reads_stay_bounded(ssm):
    first, added = generate_signing_key(), generate_signing_key()
    publish(ssm, [first])
    clock = Clock()
    store = KeyStore(ssm, SIGNING, PUBLIC, clock=clock)
    assert [k["kid"] for k in store.public_keys()["keys"]] == [first["kid"]]
    publish(ssm, [added, first])
    clock.value += 61  # an unknown kid refreshes once the last read is a minute old
    assert [k["kid"] for k in store.public_keys(refresh=True)["keys"]] == [added["kid"], first["kid"]]
    publish(ssm, [first])
    clock.value += 30  # ... and not again within that minute (a flood of forged kids costs one read a minute)
    assert len(store.public_keys(refresh=True)["keys"]) == 2
