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


@pytest.fixture(autouse=True)
def _process_state_put_back() -> Iterator[None]:
    """What a test changes in this process's shared state is put back, whatever order tests run in
    (``make test`` runs them on two workers): the local cloud's functions run in their workers again
    (a test that leaves ``in_process`` on fails), and the process's services, settings and store are
    those of its environment (a unit test's ``Services(settings)`` bound the store to a table and a
    tenant role of its own; functions run in this process later used them: AccessDenied, 500s)."""
    yield
    import sys

    runtime = sys.modules.get("local.lambda_runtime")
    left_in_process = runtime is not None and runtime._in_process_depth != 0
    if left_in_process:
        runtime._in_process_depth = 0
    settings_module, services_module = sys.modules.get("agenthq.settings"), sys.modules.get("agenthq.services")
    if settings_module is not None and services_module is not None:
        try:
            environment = settings_module.Settings.from_env()
        except Exception:  # noqa: BLE001 - an environment with no settings: nothing to compare
            environment = None
        services = services_module._services
        if environment is not None and services is not None and services.settings != environment:
            settings_module.get_settings.cache_clear()
            services_module.set_services(None)
        store = sys.modules["agenthq.store.base"]
        if environment is not None and store._tenancy.settings not in (None, environment):
            store.configure(environment)
    assert not left_in_process, "the test left the local cloud's functions running in this process (in_process)"


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
