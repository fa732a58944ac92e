"""Fixtures of the security tests."""

from __future__ import annotations

import pytest


@pytest.fixture()
def handler_of(cloud, monkeypatch):
    """Swap a function's handler for this test (the runtime reads it at each invocation)."""

    def swap(logical_id: str, handler) -> None:
        module = cloud.runtime.module(logical_id)
        monkeypatch.setattr(module, cloud.runtime.specs[logical_id].handler.rsplit(".", 1)[1], handler)

    return swap
