"""Shared fixtures.

The test session starts its own DynamoDB Local (in memory) and, for tests that
need it, one local cloud on top of it: the same code `make dev` runs, with the
table, state machine and usage plans created from template.yaml.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from local.cloud import LocalCloud, LocalCloudConfig
from local.dynamodb_local import DynamoDBLocal
from tests.support import LocalApi, client_for


@pytest.fixture(scope="session", autouse=True)
def _lambda_like_powertools() -> Iterator[None]:
    """Handlers called directly (not through the local cloud) see what the local cloud gives its
    functions: metrics and tracing off (no namespace to publish to, no X-Ray daemon)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_TRACE_DISABLED"):
            if name not in os.environ:
                patch.setenv(name, "true")
        yield


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    with DynamoDBLocal() as ddb:
        yield ddb.endpoint


@pytest.fixture(scope="session")
def cloud(dynamodb_endpoint: str) -> Iterator[LocalCloud]:
    config = LocalCloudConfig(rest_port=0, ws_port=0, data_dir=None, dynamodb_endpoint=dynamodb_endpoint)
    with LocalCloud(config) as running:
        yield running


@pytest.fixture()
def api(cloud: LocalCloud) -> Iterator[LocalApi]:
    with client_for(cloud) as client:
        yield client
