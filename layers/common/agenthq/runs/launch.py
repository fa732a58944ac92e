"""Creating a run: the Run item (queued), its body (the input and the agent as
it is at launch), its ``run.queued`` event, its ``run`` ledger entry with the
workspace's ``runs`` counters, and today's run quota (the tier's runs per day,
enforced by a condition), in one transaction.

Both sides create runs here: the HTTP side (a launch) and the run engine (a
delegation's child run).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import TransactWriteError

from agenthq import ids, pricing, verification
from agenthq.agents import agent_view
from agenthq.errors import ServiceUnavailable
from agenthq.observability import logger
from agenthq.runs import session_events, slots, transcript
from agenthq.runs.records import INPUT_PREVIEW_CHARS
from agenthq.runs.turns import TurnClaim
from agenthq.store import global_scope, retry_transaction, transaction
from agenthq.store.items import Agent, Run, RunBody, RunEvent, RunLaunch, UnstartedRun, Workspace
from agenthq.store.sizes import ensure_fits
from agenthq.tiers import limits_for
from agenthq.usage import Usage, alerts, counters, infra, ledger, quota
from agenthq.versions.records import current_version

if TYPE_CHECKING:
    from agenthq.services import Services

IDEMPOTENCY_TTL = timedelta(hours=24)
LAUNCH_ATTEMPTS = 10  # transaction conflicts with concurrent launches are retried this often
TURN_ATTEMPTS = 4  # a session's launches all want its next turn: so many times more (runs.turns)


class LaunchRace(Exception):
    """Another request with the same Idempotency-Key created its run first."""


class _ChildExists(Exception):
    pass


def agent_snapshot(workspace_id: str, agent: Agent) -> dict[str, Any]:
    """The agent as a run uses it, fixed at launch (editing the agent later
    does not change a run in flight), with its team for delegation. ``agent``
    is the agent at the version the run records: the current one, or the one
    ``versions.records.load_agent_version`` gave (a session pinned to it)."""
    view = agent_view(agent)
    team = [{"id": a.id, "name": a.name, "personality": a.personality}
            for a in Agent.query(Workspace.key(workspace_id)[0], Agent.sk.startswith("AGENT#"))]
    return {"name": view["name"], "personality": view["personality"], "system_prompt": view["system_prompt"],
            "model": view["model"], "tools": view["tools"], "max_steps": view["max_steps"],
            "budget_usd": view["budget_usd"], "team": team, "tool_policies": view["tool_policies"],
            "approval_timeout_seconds": view["approval_timeout_seconds"],
            "on_approval_timeout": view["on_approval_timeout"], "context_budget_tokens": view["context_budget_tokens"]}


def create_run_record(services: Services, workspace_id: str, agent: Agent, text: str, *, created_by: str,
                      run_id: str | None = None, parent: Run | None = None, parent_tool_use_id: str | None = None,
                      parent_task_token: str | None = None, timeout_seconds: int | None = None,
                      idempotency: tuple[str, str] | None = None, turn: TurnClaim | None = None) -> Run:
    """Write a new run (queued, with its run.queued event) of ``agent`` at its
    version (``agent_version``, the run's for good). For a child run the
    id is derived from the parent's call, so a retried delegation finds the same
    child; then only its parent task token is refreshed.

    With ``idempotency`` (key, request fingerprint) the launch record is written
    in the same transaction; :class:`LaunchRace` says another request won.
    Past the tier's runs per day: :class:`QuotaExceeded` (429, Retry-After).

    With ``turn`` the run is the next turn of a session, numbered in the same
    transaction (``runs.turns``: a concurrent launch into the session is a
    conflict, retried)."""
    at = services.now()
    run_id = run_id or ids.new_id()
    if parent is not None:
        existing = Run.get_or_none(*Run.key(workspace_id, run_id))
        if existing is not None:
            existing.update(actions=[Run.parent_task_token.set(parent_task_token or "")])
            return existing
    run = Run(
        *Run.key(workspace_id, run_id),
        id=run_id, workspace_id=workspace_id, agent_id=agent.id, agent_version=current_version(agent), status="queued",
        input_preview=text[:INPUT_PREVIEW_CHARS], seq=1, created_by=created_by, created_at=at, updated_at=at,
        deadline=run_deadline(at, timeout_seconds or services.settings.run_timeout_seconds, parent),
        session_id=parent.session_id if parent else None,  # a session's delegated child: in its event cursor
        depth=int(parent.depth) + 1 if parent else 0,
        parent_run_id=parent.id if parent else None, parent_tool_use_id=parent_tool_use_id,
        parent_task_token=parent_task_token, slot=slots.PARENT if parent else None,
        gsi1pk=f"WS#{workspace_id}#AGENT#{agent.id}", gsi1sk=f"RUN#{run_id}",
        # the request that launched it (a child run's creation is its parent's worker's, metered there)
        infra_micro_usd=0 if parent else infra.launch_micro_usd(services.settings.lambda_architecture),
    )
    if parent is None:  # a root run spends the workspace's money: not before its creator's address is verified
        workspace = Workspace.load(workspace_id)
        verification.require_verified(services.settings, workspace)
        limits = limits_for(workspace.tier, workspace.limit_overrides)
    else:
        limits = quota.workspace_limits(workspace_id)
    snapshot = agent_snapshot(workspace_id, agent)
    if parent is not None:  # a child spends from what is left of its parent's per-run budget
        snapshot["budget_usd"] = str(min(Decimal(snapshot["budget_usd"]), parent_budget_left(parent)))
    tree = run_tree(run_id, snapshot, parent)
    queued = RunEvent(*RunEvent.key(workspace_id, run_id, 1), seq=1, event_type="run.queued", at=at,
                      data={"agent_id": agent.id, "agent_version": run.agent_version, "parent_run_id": run.parent_run_id})
    body = RunBody(*RunBody.key(workspace_id, run_id), input=text, agent=snapshot,
                   tree_root_run_id=tree.root_run_id if tree else None,
                   tree_budget_micro_usd=tree.budget_micro_usd if tree else None)
    # Refused (413) before anything is written: what DynamoDB could not store, in its bytes.
    ensure_fits(body, "input", "The input with the agent's settings (system prompt, tools, team)")
    transcript.ensure_input_fits(workspace_id, run_id, text)

    child_cursor: int | None = None  # a session child's: the session's event count its attempt read

    def attempt() -> None:
        nonlocal child_cursor
        if turn is not None:
            turn.read(run)
        elif run.session_id:  # a session's delegated child: its run.queued is the session's next event too
            child_cursor = session_events.counter(workspace_id, run.session_id)
        with transaction() as tx:
            if idempotency is not None:
                key, body_print = idempotency
                tx.save(RunLaunch(*RunLaunch.key(workspace_id, key), fingerprint=body_print, run_id=run_id,
                                  expires_at=at + IDEMPOTENCY_TTL), condition=RunLaunch.pk.does_not_exist())
            if turn is not None:
                turn.write(tx, run, text, at, (queued.event_type, queued.data))
            elif child_cursor is not None and run.session_id:
                session_events.write(tx, workspace_id, run.session_id, child_cursor, run_id,
                                     [(1, queued.event_type, at, queued.data)])
            tx.save(run, condition=Run.pk.does_not_exist())
            tx.save(body, condition=RunBody.pk.does_not_exist())
            tx.save(queued, condition=RunEvent.pk.does_not_exist())
            ledger.record(tx, workspace_id, run_id, ledger.RUN, Usage(runs=1), at,
                          services.settings.usage_counter_shards)
            quota.count_launch(tx, workspace_id, limits, at)
            if parent is None:
                slots.count_pending(tx, workspace_id, limits)

    def explain(exc: TransactWriteError) -> None:
        reasons = exc.cancellation_reasons or []
        if not reasons:  # refused outright, not cancelled: no race to retry or to report
            raise exc
        if idempotency is not None and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed":
            raise LaunchRace()  # the launch record (the transaction's first write) exists: that key's race
        if parent is not None and Run.get_or_none(*Run.key(workspace_id, run_id)):
            raise _ChildExists()  # a concurrent delegation attempt created it
        if quota.runs_today(workspace_id, at) >= limits.runs_per_day:
            raise quota.runs_exhausted(limits, at)
        if parent is None and slots.is_full(workspace_id, limits):
            raise slots.queue_full(limits)
        # else: a conflict with concurrent launches (the day's quota item): try again

    if parent is None:  # until its execution has started, the period reset can find it (runs.unstarted)
        mark_unstarted(workspace_id, run_id, at)
    try:
        retry_transaction(attempt, explain, attempts=LAUNCH_ATTEMPTS * (TURN_ATTEMPTS if turn else 1),
                          exhausted=lambda: ServiceUnavailable("Too many launches at once; please retry."))
    except _ChildExists:
        return create_run_record(services, workspace_id, agent, text, created_by=created_by, run_id=run_id,
                                 parent=parent, parent_tool_use_id=parent_tool_use_id,
                                 parent_task_token=parent_task_token)
    except Exception:
        if parent is None and Run.get_or_none(*Run.key(workspace_id, run_id)) is None:  # no run was written
            forget_unstarted(workspace_id, run_id)
        raise
    _alert_runs(services, workspace_id, limits, at)
    return run


def mark_unstarted(workspace_id: str, run_id: str, at: datetime) -> None:
    with global_scope():
        UnstartedRun(*UnstartedRun.key(workspace_id, run_id), workspace_id=workspace_id, run_id=run_id,
                     launched_at=at).save()


def forget_unstarted(workspace_id: str, run_id: str) -> None:
    """The launched run's execution started (or the run ended, or was never written): drop its marker."""
    with global_scope():
        UnstartedRun(*UnstartedRun.key(workspace_id, run_id)).delete()


def _alert_runs(services: Services, workspace_id: str, limits: Any, at: datetime) -> None:
    """The runs-per-day alerts, after the launch committed: a failure here is
    logged, never raised, so the run still starts (a launch that raised after
    its commit would leave it queued, holding a place, with no execution)."""
    try:
        alerts.check(services.operator_events, workspace_id, quota.RUNS, quota.runs_today(workspace_id, at),
                     limits.runs_per_day, counters.day(at), at)
    except Exception:
        logger.exception("could not check the runs-per-day alerts", extra={"workspace_id": workspace_id})


def parent_budget_left(parent: Run) -> Decimal:
    """What the parent's per-run budget has left for a child: its budget less its
    own model cost and that of its earlier children (at least one micro-dollar,
    so the child starts and ends at once on ``budget_exhausted``)."""
    budget = Decimal(RunBody.get(*RunBody.key(parent.workspace_id, parent.id), consistent_read=True).agent["budget_usd"])
    spent = Decimal(int(parent.cost_micro_usd or 0) + int(parent.children_micro_usd or 0)) * pricing.MICRO_DOLLAR
    return max(pricing.MICRO_DOLLAR, budget - spent)


def run_deadline(at: datetime, timeout_seconds: int, parent: Run | None) -> datetime:
    """When a run launched at ``at`` times out: a child ends with its parent at the latest."""
    deadline = at + timedelta(seconds=timeout_seconds)
    return min(deadline, parent.deadline) if parent is not None else deadline


def run_tree(run_id: str, snapshot: dict[str, Any], parent: Run | None) -> quota.RunTree | None:
    """The run tree a new run belongs to: a root's own (its per-run budget, which
    every run it delegates to, at any depth, spends from too), or its parent's
    (None when the parent was made before run trees were kept)."""
    if parent is None:
        return quota.RunTree.rooted_at(run_id, Decimal(snapshot["budget_usd"]))
    return quota.RunTree.of(RunBody.get(*RunBody.key(parent.workspace_id, parent.id), consistent_read=True))
