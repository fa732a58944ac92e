"""Approvals nobody decided in time: the approval schedule (every minute) applies each one's
``on_approval_timeout`` once — ``approval.expired`` (with what it applied) is committed on the
condition that the approval is still pending, exactly as a decision is, so an expiry racing a
person's decision, or a second run of the schedule, changes nothing. No Lambda sleeps: the pending
approvals are in the sparse gsi1 partition ``APPROVALS_DUE``, sorted by when they expire, and the
schedule reads only the due ones (a Query)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agenthq.approvals import gate
from agenthq.observability import logger
from agenthq.runs.records import RunConflict, commit
from agenthq.store import global_scope, tenant_scope
from agenthq.store.items import Approval, Run

if TYPE_CHECKING:
    from agenthq.services import Services

#: Approvals expired per invocation at most (the next minute's run takes the rest).
MAX_PER_SWEEP = 500


def expire_due(services: Services) -> dict[str, int]:
    """Expire every pending approval past its time; what it did."""
    now = services.now()
    bound = now.strftime("%Y-%m-%dT%H:%M:%S") + "~"  # every key due at or before now (``~`` sorts after ``#``)
    with global_scope():
        due = list(Approval.gsi1.query(Approval.DUE, Approval.gsi1sk < bound, limit=MAX_PER_SWEEP))
    done = {"expired": 0, "already_decided": 0}
    for marker in due:
        with tenant_scope(marker.workspace_id):
            if expire(services, marker.workspace_id, marker.id):
                done["expired"] += 1
            else:
                done["already_decided"] += 1
    if due:
        logger.info("approvals expired", extra=done)
    return done


def expire(services: Services, workspace_id: str, approval_id: str) -> bool:
    """Apply the approval's ``on_timeout`` if it is still pending (True), and wake its run when that
    was the turn's last pending approval."""
    approval = Approval.get_or_none(*Approval.key(workspace_id, approval_id))
    if approval is None or approval.status != gate.PENDING:
        return False
    run = Run.get_or_none(*Run.key(workspace_id, approval.run_id))
    if run is None:  # (its workspace is being offboarded: the job deletes it)
        logger.warning("a pending approval of a run that does not exist", extra={"approval_id": approval_id})
        return False
    applied = "approve" if approval.on_timeout == "approve" else "deny"
    try:
        run = commit(services, run, gate.decision_change(
            approval, gate.EXPIRED, applied, services.now(), by=None, reason=None,
            data={"expired_at": approval.due_at.isoformat()}))
    except RunConflict:
        return False  # decided (or cancelled) meanwhile
    gate.wake_if_decided(services, run, services.orchestrator.send_next, "act")
    return True
