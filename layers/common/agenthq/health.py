"""Dependency checks behind GET /v1/health."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable

from pydantic import BaseModel

from agenthq.observability import logger
from agenthq.store.items import HealthProbe

if TYPE_CHECKING:
    from agenthq.services import Services


class HealthReport(BaseModel):
    status: str  # "ok" when every check is ok, else "degraded"
    checks: dict[str, str]
    version: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _dynamodb(services: Services) -> None:
    HealthProbe.probe()


def _stepfunctions(services: Services) -> None:
    services.orchestrator.ping()


CHECKS: dict[str, Callable[[Services], None]] = {"dynamodb": _dynamodb, "stepfunctions": _stepfunctions}


def _run(name: str, check: Callable[[Services], None], services: Services) -> str:
    try:
        check(services)
        return "ok"
    except Exception as exc:  # a failed dependency is a report, not a crash
        logger.warning("health check failed", extra={"check": name, "error": type(exc).__name__})
        return f"error: {type(exc).__name__}"


def check_health(services: Services) -> HealthReport:
    with ThreadPoolExecutor(max_workers=len(CHECKS)) as pool:
        futures = {name: pool.submit(_run, name, fn, services) for name, fn in CHECKS.items()}
        checks = {name: f.result() for name, f in futures.items()}
    status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
    return HealthReport(status=status, checks=checks, version=services.settings.version)
