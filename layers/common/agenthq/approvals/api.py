"""Approvals as the HTTP API sees them: ``GET …/approvals`` (viewers and up: ``runs:read``) and
``POST …/approvals/{apid}`` (members and up; API keys with ``runs:write``). A decision is final:
it is written on the condition that the approval is still pending, so of concurrent decisions
exactly one wins and the others are 409 ``conflict``, as is any later one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agenthq import ids
from agenthq.approvals import gate
from agenthq.context import Principal, Scope
from agenthq.errors import Conflict, InvalidRequest, NotFound
from agenthq.pagination import Page, page
from agenthq.runs.records import RunConflict, commit, load_run
from agenthq.store import tenant_scope
from agenthq.store.items import Approval, Workspace

if TYPE_CHECKING:
    from agenthq.services import Services

ApprovalStatus = Literal["pending", "approved", "denied", "expired", "cancelled"]


class ApprovalDecision(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"decision": "approve"}, {"decision": "deny", "reason": "Not on a Friday afternoon."}]})

    decision: Literal["approve", "deny"]
    reason: str | None = Field(default=None, max_length=gate.MAX_REASON_CHARS,
                               description="Why; a denial's reason is what the model is told.")


def list_approvals(principal: Principal, status: str | None, run_id: str | None, cursor: str | None,
                   limit: int) -> Page:
    """The workspace's approvals, newest first; ``run_id`` keeps a run's and those of the runs it
    delegated to (their ``root_run_id``)."""
    principal.require(Scope.runs_read)
    if status is not None and status not in gate.STATUSES:
        raise InvalidRequest(details=[{"field": "status", "in": "query",
                                       "message": f"must be one of: {', '.join(gate.STATUSES)}"}])
    if run_id is not None and not ids.is_id(run_id):
        raise InvalidRequest(details=[{"field": "run_id", "in": "query", "message": "must be a run id"}])
    wid = principal.workspace_id
    condition = None
    if status is not None:
        condition = Approval.status == status
    if run_id is not None:
        of_run = (Approval.run_id == run_id) | (Approval.root_run_id == run_id)
        condition = of_run if condition is None else condition & of_run
    partition = Workspace.key(wid)[0]
    with tenant_scope(wid):
        return page(lambda start: Approval.query(partition, Approval.sk.startswith("APPROVAL#"),
                                                 filter_condition=condition, scan_index_forward=False,
                                                 limit=limit, last_evaluated_key=start, consistent_read=True),
                    gate.approval_view, cursor, partition=partition, sk_prefix="APPROVAL#")


def get_approval(principal: Principal, approval_id: str) -> dict[str, Any]:
    principal.require(Scope.runs_read)
    with tenant_scope(principal.workspace_id):
        return gate.approval_view(_load(principal.workspace_id, approval_id))


def decide(services: Services, principal: Principal, approval_id: str, body: ApprovalDecision) -> dict[str, Any]:
    """Approve (the tool call runs) or deny (the model gets an ``is_error`` result with the reason)
    a pending approval, once. The decision that settles the turn's last pending approval wakes the run."""
    principal.require(Scope.runs_write)
    wid = principal.workspace_id
    status, applied = (gate.APPROVED, "approve") if body.decision == "approve" else (gate.DENIED, "deny")
    reason = body.reason.strip() if body.reason and body.reason.strip() else None
    with tenant_scope(wid):
        approval = _load(wid, approval_id)
        if approval.status != gate.PENDING:
            raise _decided(approval)
        run = load_run(wid, approval.run_id)
        try:
            run = commit(services, run, gate.decision_change(approval, status, applied, services.now(),
                                                               by=principal.subject, reason=reason))
        except RunConflict:
            raise _decided(_load(wid, approval_id)) from None
        gate.wake_if_decided(services, run, services.orchestrator.send_next, "act")
        return gate.approval_view(_load(wid, approval_id))


def _load(workspace_id: str, approval_id: str) -> Approval:
    if not ids.is_id(approval_id):
        raise NotFound("No such approval.")
    return Approval.get_or_404(*Approval.key(workspace_id, approval_id), "No such approval.")


def _decided(approval: Approval) -> Conflict:
    return Conflict(f"This approval was decided already ({approval.status}); a decision is final.",
                    details=[{"field": "status", "message": approval.status}])
