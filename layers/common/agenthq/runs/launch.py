"""Creating a run: the Run item (queued), its body (the input and the agent as
it is at launch), its ``run.queued`` event and the workspace's ``runs``
counter, in one transaction.

Both sides create runs here: the HTTP side (a launch) and the run engine (a
delegation's child run).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import TransactWriteError

from agenthq import ids
from agenthq.agents import agent_view
from agenthq.runs.records import INPUT_PREVIEW_CHARS
from agenthq.store import transaction
from agenthq.store.items import Agent, Run, RunBody, RunEvent, RunLaunch, Workspace
from agenthq.usage import Usage, counters

if TYPE_CHECKING:
    from agenthq.services import Services

IDEMPOTENCY_TTL = timedelta(hours=24)


class LaunchRace(Exception):
    """Another request with the same Idempotency-Key created its run first."""


def agent_snapshot(workspace_id: str, agent: Agent) -> dict[str, Any]:
    """The agent as a run uses it, fixed at launch (editing the agent later
    does not change a run in flight), with its team for delegation."""
    view = agent_view(agent)
    team = [{"id": a.id, "name": a.name, "personality": a.personality}
            for a in Agent.query(Workspace.key(workspace_id)[0], Agent.sk.startswith("AGENT#"))]
    return {"name": view["name"], "personality": view["personality"], "system_prompt": view["system_prompt"],
            "model": view["model"], "tools": view["tools"], "max_steps": view["max_steps"],
            "budget_usd": view["budget_usd"], "team": team}


def create_run_record(services: Services, workspace_id: str, agent: Agent, text: str, *, created_by: str,
                      run_id: str | None = None, parent: Run | None = None, parent_tool_use_id: str | None = None,
                      parent_task_token: str | None = None, timeout_seconds: int | None = None,
                      idempotency: tuple[str, str] | None = None) -> Run:
    """Write a new run (queued, with its run.queued event). For a child run the
    id is derived from the parent's call, so a retried delegation finds the same
    child; then only its parent task token is refreshed.

    With ``idempotency`` (key, request fingerprint) the launch record is written
    in the same transaction; :class:`LaunchRace` says another request won."""
    at = services.now()
    run_id = run_id or ids.new_id()
    if parent is not None:
        existing = Run.get_or_none(*Run.key(workspace_id, run_id))
        if existing is not None:
            existing.update(actions=[Run.parent_task_token.set(parent_task_token or "")])
            return existing
    run = Run(
        *Run.key(workspace_id, run_id),
        id=run_id, workspace_id=workspace_id, agent_id=agent.id, status="queued",
        input_preview=text[:INPUT_PREVIEW_CHARS], seq=1, created_by=created_by, created_at=at, updated_at=at,
        deadline=run_deadline(at, timeout_seconds or services.settings.run_timeout_seconds, parent),
        depth=int(parent.depth) + 1 if parent else 0,
        parent_run_id=parent.id if parent else None, parent_tool_use_id=parent_tool_use_id,
        parent_task_token=parent_task_token,
        gsi1pk=f"WS#{workspace_id}#AGENT#{agent.id}", gsi1sk=f"RUN#{run_id}",
    )
    queued = RunEvent(*RunEvent.key(workspace_id, run_id, 1), seq=1, event_type="run.queued", at=at,
                      data={"agent_id": agent.id, "parent_run_id": run.parent_run_id})
    try:
        with transaction() as tx:
            if idempotency is not None:
                key, body_print = idempotency
                tx.save(RunLaunch(*RunLaunch.key(workspace_id, key), fingerprint=body_print, run_id=run_id,
                                  expires_at=at + IDEMPOTENCY_TTL), condition=RunLaunch.pk.does_not_exist())
            tx.save(run, condition=Run.pk.does_not_exist())
            tx.save(RunBody(*RunBody.key(workspace_id, run_id), input=text, agent=agent_snapshot(workspace_id, agent)),
                    condition=RunBody.pk.does_not_exist())
            tx.save(queued, condition=RunEvent.pk.does_not_exist())
            counters.count(tx, workspace_id, Usage(runs=1), at, services.settings.usage_counter_shards)
    except TransactWriteError:
        if idempotency is not None:
            raise LaunchRace() from None
        if parent is not None:  # a concurrent delegation attempt created it
            return create_run_record(services, workspace_id, agent, text, created_by=created_by, run_id=run_id,
                                     parent=parent, parent_tool_use_id=parent_tool_use_id,
                                     parent_task_token=parent_task_token)
        raise
    return run


def run_deadline(at: datetime, timeout_seconds: int, parent: Run | None) -> datetime:
    """When a run launched at ``at`` times out: a child ends with its parent at the latest."""
    deadline = at + timedelta(seconds=timeout_seconds)
    return min(deadline, parent.deadline) if parent is not None else deadline
