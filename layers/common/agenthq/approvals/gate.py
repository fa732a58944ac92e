"""Approvals as the run engine sees them: a turn's ``ask`` calls each get an approval, and the run
waits (``waiting_for: "approval"``, on a task token) until every one of them is decided.

Every change of an approval goes through the run's one commit path (``runs.records.commit``), so its
event (``approval.requested``, ``.approved``, ``.denied``, ``.expired``, ``.cancelled``) has the
run's next seq and reaches its live subscribers, and happens in one transaction with:

- the approval item itself, on the condition that it is still ``pending`` (decided once: of
  concurrent deciders exactly one commits; the others' condition fails → 409);
- the workspace's ``PendingApprovals`` count (a request adds on the condition that it stays within
  the tier's ``pending_approvals``; every way out of ``pending`` takes one off);
- the run's ``approvals_pending``: the wait ends when it is 0 (:func:`wake_if_decided`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agenthq import ids
from agenthq.approvals.policies import ASK, policy_of
from agenthq.runs.records import Change
from agenthq.store import BaseItem
from agenthq.store.items import Approval, PendingApprovals, Run

if TYPE_CHECKING:
    from agenthq.services import Services

#: The step a run waits in (the WaitForApproval state) and its ``waiting_for``.
APPROVAL = "approval"
PENDING, APPROVED, DENIED, EXPIRED, CANCELLED = "pending", "approved", "denied", "expired", "cancelled"
STATUSES: tuple[str, ...] = (PENDING, APPROVED, DENIED, EXPIRED, CANCELLED)
MAX_REASON_CHARS = 2_000


def approval_id(run_id: str, tool_use_id: str) -> str:
    """One approval per tool call, whatever retries the step: its id is derived from both."""
    return ids.derived_id(run_id, "approval", tool_use_id)


def asks(agent: dict[str, Any], uses: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls of ``uses`` that wait for a person: the agent has the tool, and its policy is ``ask``
    (a tool the agent does not have is refused as ever, with nothing to approve)."""
    return [u for u in uses if u.get("name") in agent["tools"] and policy_of(agent, u["name"]) == ASK]


def approvals_of(run: Run, uses: Iterable[dict[str, Any]]) -> dict[str, Approval]:
    """The approvals stored for ``uses`` (tool_use_id → approval)."""
    found = {}
    for use in uses:
        item = Approval.get_or_none(*Approval.key(run.workspace_id, approval_id(run.id, use["id"])))
        if item is not None:
            found[use["id"]] = item
    return found


def request_change(run: Run, root_run_id: str, turn: int, uses: list[dict[str, Any]], agent: dict[str, Any],
                   at: datetime, limit: int) -> Change:
    """Ask for the approvals of ``uses`` and make the run wait for them: one change."""
    due = at + timedelta(seconds=int(agent.get("approval_timeout_seconds") or 3_600))
    on_timeout = str(agent.get("on_approval_timeout") or "deny")
    items: list[BaseItem] = []
    events: list[tuple[str, dict[str, Any]]] = []
    ids_asked = []
    for use in uses:
        apid = approval_id(run.id, use["id"])
        ids_asked.append(apid)
        items.append(Approval(*Approval.key(run.workspace_id, apid), id=apid, workspace_id=run.workspace_id,
                              run_id=run.id, root_run_id=root_run_id, agent_id=run.agent_id,
                              tool_use_id=use["id"], tool=use["name"], input=use.get("input") or {}, turn=turn,
                              status=PENDING, on_timeout=on_timeout, due_at=due, created_at=at,
                              gsi1pk=Approval.DUE, gsi1sk=Approval.due_key(run.workspace_id, apid, due)))
        events.append(("approval.requested", {
            "approval_id": apid, "tool": use["name"], "input": use.get("input") or {}, "run_id": run.id,
            "root_run_id": root_run_id, "tool_use_id": use["id"], "expires_at": due.isoformat()}))
    count = len(items)
    counter = PendingApprovals(*PendingApprovals.key(run.workspace_id))
    room = PendingApprovals.pending.does_not_exist() | (PendingApprovals.pending <= limit - count)
    not_cancelled = Run.cancel_requested == False  # noqa: E712 - a DynamoDB condition, not a comparison
    return Change(
        events=[*events, ("run.waiting", {"waiting_for": APPROVAL, "approval_ids": ids_asked})],
        run_set={"status": "waiting", "waiting_for": APPROVAL, "waiting_since": at},
        run_actions=[Run.approvals_pending.add(count)],
        run_condition=Run.status.is_in("running", "waiting") & not_cancelled,
        puts=items,
        extra=[lambda tx: tx.update(counter, actions=[PendingApprovals.pending.add(count)], condition=room)],
    )


def pending_count(workspace_id: str) -> int:
    counter = PendingApprovals.get_or_none(*PendingApprovals.key(workspace_id))
    return int(counter.pending) if counter is not None else 0


def decision_change(approval: Approval, status: str, applied: str, at: datetime, *, by: str | None,
                    reason: str | None, data: dict[str, Any] | None = None) -> Change:
    """``approval`` leaves ``pending`` for ``status`` (its tool call then does ``applied``: approve or
    deny): on the condition that it is still pending — so this happens once, whoever else tries."""
    event = {"approval_id": approval.id, "tool": approval.tool, "run_id": approval.run_id,
             "root_run_id": approval.root_run_id, "tool_use_id": approval.tool_use_id, "status": status,
             "applied": applied, "by": by, "reason": reason, **(data or {})}
    actions = [Approval.status.set(status), Approval.applied.set(applied), Approval.decided_at.set(at),
               Approval.gsi1pk.remove(), Approval.gsi1sk.remove()]
    if by is not None:
        actions.append(Approval.decided_by.set(by))
    if reason is not None:
        actions.append(Approval.reason.set(reason))
    counter = PendingApprovals(*PendingApprovals.key(approval.workspace_id))

    def writes(tx: Any) -> None:
        tx.update(approval, actions=actions, condition=Approval.status == PENDING)
        tx.update(counter, actions=[PendingApprovals.pending.add(-1)], condition=PendingApprovals.pending > 0)

    return Change(events=[(f"approval.{status}", event)], run_actions=[Run.approvals_pending.add(-1)],
                  run_condition=Run.approvals_pending > 0, extra=[writes])


def wake_if_decided(services: Services, run: Run, send: Callable[[str, str], bool], next_step: str) -> bool:
    """After a decision: if the run waits for approvals, none is pending any more and its wait has
    its task token, the run goes on (``next_step``). The wait step checks the same after it stored the
    token, so whichever of the two comes second wakes the run (a second answer to a used token is
    refused by Step Functions and ignored)."""
    if run.status == "waiting" and run.waiting_for == APPROVAL and run.task_token \
            and int(run.approvals_pending or 0) == 0:
        return send(run.task_token, next_step)
    return False


def approval_view(approval: Approval) -> dict[str, Any]:
    return {
        "id": approval.id,
        "workspace_id": approval.workspace_id,
        "run_id": approval.run_id,
        "root_run_id": approval.root_run_id,
        "agent_id": approval.agent_id,
        "tool": approval.tool,
        "tool_use_id": approval.tool_use_id,
        "input": approval.input,
        "status": approval.status,
        "on_timeout": approval.on_timeout,
        "applied": approval.applied,
        "reason": approval.reason,
        "decided_by": approval.decided_by,
        "decided_at": approval.decided_at.isoformat() if approval.decided_at else None,
        "expires_at": approval.due_at.isoformat(),
        "created_at": approval.created_at.isoformat(),
    }
