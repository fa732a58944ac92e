"""The maintenance schedules.

- The day's start (``DayStart``): resume runs paused at a limit that has room again; cancel runs
  paused for more than 7 days; start (or end) launched runs whose execution never started.
- Every minute (``ApprovalExpiry``, its input ``{"job": "approvals"}``): apply ``on_approval_timeout``
  to the approvals past their time (``agenthq.approvals.expiry``), and hand on for the session runs
  whose end was never handed on (``agenthq.sessions.healing``)."""

from agenthq.approvals.expiry import expire_due
from agenthq.observability import logger, metrics
from agenthq.runs.pausing import resume_paused
from agenthq.runs.unstarted import start_unstarted
from agenthq.services import get_services
from agenthq.sessions.healing import hand_on_overdue

APPROVALS_JOB = "approvals"


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    services = get_services()
    if isinstance(event, dict) and event.get("job") == APPROVALS_JOB:
        return {**expire_due(services), **hand_on_overdue(services)}
    return {**resume_paused(services), **start_unstarted(services)}
