"""Launched runs whose execution never started: every queued run starts or ends.

A launch writes the run and then starts its execution; if StartExecution
fails (with an ``Idempotency-Key`` the run stays queued for the retry with that
key) or the launch dies between the two, nothing would ever start or end the
run, and it would hold its place among the workspace's runs. Each launched run
is therefore listed under the global ``UNSTARTED#<shard>`` partitions
(``UnstartedRun``, written before the launch's transaction) until its
StartExecution succeeded or it ended; the period reset (:func:`start_unstarted`) looks at those
launched more than :data:`GRACE` ago: a queued run with no execution is started
(starting is idempotent: the execution is named after the run), one whose
execution ended without starting it ends ``failed`` (``start_failed``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from agenthq.adapters.stepfunctions import RUNNING
from agenthq.observability import logger
from agenthq.runs import decisions, engine
from agenthq.runs.launch import forget_unstarted
from agenthq.store import global_scope, tenant_scope
from agenthq.store.items import Run, UnstartedRun

if TYPE_CHECKING:
    from agenthq.services import Services

#: A launch starts its execution within its own request (at most the API's 29 s): older than this, it did not.
GRACE = timedelta(minutes=5)


def start_unstarted(services: Services) -> dict[str, int]:
    """Start (or end) the launched runs whose execution never started; what the period reset runs."""
    done = {"unstarted_started": 0, "unstarted_failed": 0, "unstarted_cleared": 0}
    before = services.now() - GRACE
    for shard in range(UnstartedRun.SHARDS):
        with global_scope():
            markers = [m for m in UnstartedRun.query(UnstartedRun.shard(shard), consistent_read=True)
                       if m.launched_at < before]
        for marker in markers:
            try:
                done[_start_or_end(services, marker)] += 1
            except Exception:  # noqa: BLE001 - one run's trouble does not stop the others; the next reset tries again
                logger.exception("could not start an unstarted run", extra={"run_id": marker.run_id})
    logger.info("unstarted runs checked", extra=done)
    return done


def _start_or_end(services: Services, marker: UnstartedRun) -> str:
    with tenant_scope(marker.workspace_id):
        run = Run.get_or_none(*Run.key(marker.workspace_id, marker.run_id))
        if run is None or run.status != "queued" or run.started_at is not None:
            outcome = "unstarted_cleared"  # never written (a refused launch), gone, or it started after all
        else:
            execution = services.orchestrator.describe(run.id)
            if execution is None:
                services.orchestrator.start(run.id, {"workspace_id": run.workspace_id, "run_id": run.id})
                outcome = "unstarted_started"
            elif execution.status != RUNNING:  # its execution ended and left it queued: it ends now
                engine.fail(engine.Slice(services, run), {"error": {
                    "Error": decisions.NOT_STARTED, "Cause": f"its execution ended ({execution.status})"}})
                outcome = "unstarted_failed"
            else:
                outcome = "unstarted_cleared"  # its execution runs (the launch died after starting it)
    forget_unstarted(marker.workspace_id, marker.run_id)
    return outcome
