"""The composition root: the one place where adapters are built and wired.

A Lambda process builds one ``Services`` on its first request (never at import)
and reuses it while warm. Tests build their own with fakes, which subclass or
implement the same interfaces.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from agenthq.settings import Settings, get_settings
from agenthq.store import configure


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        configure(settings)

    def client(self, service: str) -> Any:
        from agenthq.adapters.aws import make_client

        return make_client(service, self.settings)

    @cached_property
    def orchestrator(self):  # -> StepFunctionsOrchestrator
        from agenthq.adapters.stepfunctions import StepFunctionsOrchestrator

        return StepFunctionsOrchestrator(self.client("stepfunctions"), self.settings.state_machine_arn)


_services: Services | None = None


def get_services() -> Services:
    """The process's services, built on first use."""
    global _services
    if _services is None:
        _services = Services(get_settings())
    return _services


def set_services(services: Services | None) -> None:
    """Replace the process's services (tests and the local cloud)."""
    global _services
    _services = services
