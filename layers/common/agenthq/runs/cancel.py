"""Cancelling a run: the API's ``POST …/cancel`` and offboarding's, without the HTTP layer's imports."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agenthq.services import Services
    from agenthq.store.items import Run


def request_cancel(services: Services, run: Run) -> None:
    """Record the cancel of an active ``run`` and end it, or wake it wherever it waits
    (also offboarding's): ``runs.engine.cancel``."""
    from agenthq.runs import engine  # a queued run ends here: the run's end path (imported only to cancel)

    engine.cancel(services, run)
