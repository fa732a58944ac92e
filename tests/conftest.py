"""Shared fixtures.

The test session starts its own DynamoDB Local (in memory) and, for tests that
need it, one local cloud on top of it: the same code `make dev` runs, with the
table, state machine and usage plans created from template.yaml.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import httpx
import pytest
from botocore.credentials import Credentials

from agenthq_cli.signing import SigV4
from local.cloud import LocalCloud, LocalCloudConfig
from local.dynamodb_local import DynamoDBLocal
from tests.support import LocalApi


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    with DynamoDBLocal() as ddb:
        yield ddb.endpoint


@pytest.fixture(scope="session")
def cloud(dynamodb_endpoint: str) -> Iterator[LocalCloud]:
    config = LocalCloudConfig(rest_port=0, data_dir=None, dynamodb_endpoint=dynamodb_endpoint)
    with LocalCloud(config) as running:
        yield running


def client_for(cloud: LocalCloud, source_ip: str | None = None) -> LocalApi:
    """An HTTP client for the local REST API (base URL includes the stage).

    Each client connects from its own loopback address (all of 127.0.0.0/8 is
    this machine), so per-source-IP protections such as login throttling see
    each test as a different client, as they would see different users."""
    source_ip = source_ip or f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    transport = httpx.HTTPTransport(local_address=source_ip)
    return LocalApi(base_url=cloud.rest_url, timeout=30, transport=transport, operator=operator_auth(cloud))


def operator_auth(cloud: LocalCloud) -> SigV4:
    """Signs requests as the local cloud's operator (the operator routes, /v1/admin/…)."""
    assert cloud.operator is not None
    return SigV4(Credentials(cloud.operator.access_key_id, cloud.operator.secret_access_key),
                 cloud.config.stack.region)


@pytest.fixture()
def api(cloud: LocalCloud) -> Iterator[LocalApi]:
    with client_for(cloud) as client:
        yield client
