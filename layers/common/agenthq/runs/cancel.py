"""Cancelling a run: the API's ``POST …/cancel`` and offboarding's, without the HTTP layer's imports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pynamodb.exceptions import UpdateError

from agenthq.errors import NotFound
from agenthq.runs import slots
from agenthq.runs.records import load_run
from agenthq.runs.statuses import ACTIVE
from agenthq.store.items import Run, ToolCall

if TYPE_CHECKING:
    from agenthq.services import Services


def request_cancel(services: Services, run: Run) -> None:
    """Record the cancel of an active ``run`` and wake it wherever it waits (also offboarding's)."""
    try:
        run.update(actions=[Run.cancel_requested.set(True)], condition=Run.status.is_in(*ACTIVE))
    except UpdateError:
        return  # it ended meanwhile
    if run.status == "paused" and run.task_token:
        services.orchestrator.send_next(run.task_token, "finish")
    if run.status == "queued":  # waiting for a slot: wake it to end
        slots.leave_queue(services, run)
    if run.status == "waiting":  # cancel the child it waits for; its end wakes this run, which then ends
        for call in ToolCall.query(Run.partition(run.workspace_id, run.id), ToolCall.sk.startswith("TOOL#"),
                                   consistent_read=True):
            if call.child_run_id and call.result is None:
                try:
                    request_cancel(services, load_run(run.workspace_id, call.child_run_id))
                except NotFound:
                    pass
