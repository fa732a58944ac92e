"""Fixtures for the unit tests of the offline model server and the model adapter."""

from __future__ import annotations

import pytest

from local.model_server import OfflineModelServer


@pytest.fixture(scope="module")
def server():
    with OfflineModelServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _no_leftover_faults(request):
    yield
    if "server" in request.fixturenames:
        request.getfixturevalue("server").faults.clear()
