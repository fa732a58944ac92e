"""Runs as the HTTP API sees them: launch (idempotent), read, list, events,
cancel and resume. The steps themselves are in ``agenthq.runs.engine``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError

from agenthq import ids
from agenthq.context import Principal, Scope
from agenthq.errors import Conflict, InvalidRequest, NotFound
from agenthq.pagination import Page, page
from agenthq.runs.records import (
    ACTIVE,
    INPUT_PREVIEW_CHARS,
    TERMINAL,
    Change,
    Usage,
    commit,
    count_usage,
    event_view,
    iter_events,
    load_body,
    load_run,
    run_view,
)
from agenthq.security.secrets import fingerprint
from agenthq.services import Services
from agenthq.store import tenant_scope, transaction
from agenthq.store.items import Agent, Run, RunBody, RunEvent, RunLaunch, ToolCall, Workspace

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
IDEMPOTENCY_TTL = timedelta(hours=24)
RUN_STATUSES = ("queued", "running", "paused", "waiting", "succeeded", "failed", "cancelled", "timed_out")


class RunLaunchRequest(BaseModel):
    input: str = Field(min_length=1)
    timeout_seconds: int | None = Field(default=None, ge=1)  # at most the deployment's RUN_TIMEOUT_SECONDS

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


# --------------------------------------------------------------------------- launch


def launch_run(services: Services, principal: Principal, agent_id: str, request: RunLaunchRequest,
               idempotency_key: str | None) -> dict[str, Any]:
    """Create the run (status queued, event run.queued) and start its execution.

    With an ``Idempotency-Key``: the same key and the same body give back the
    same run (and never a second execution); the same key with another body
    is a 409."""
    principal.require(Scope.runs_write)
    if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
        raise InvalidRequest("The Idempotency-Key header is not valid.",
                             details=[{"field": "Idempotency-Key", "in": "header",
                                       "message": "1-128 characters: letters, digits and _ . : -"}])
    limit = services.settings.max_run_input_chars
    if len(request.input) > limit:
        raise InvalidRequest(details=[{"field": "input", "message": f"must be at most {limit} characters"}])
    longest = services.settings.run_timeout_seconds
    if request.timeout_seconds is not None and request.timeout_seconds > longest:
        raise InvalidRequest(details=[{"field": "timeout_seconds", "message": f"must be at most {longest}"}])
    workspace_id = principal.workspace_id
    with tenant_scope(workspace_id):
        agent = _agent(workspace_id, agent_id)
        body_print = fingerprint("launch", agent.id, request.input, str(request.timeout_seconds))
        if idempotency_key is not None:
            earlier = _launched(services, workspace_id, idempotency_key, body_print)
            if earlier is not None:
                return earlier
        try:
            run = create_run_record(services, workspace_id, agent, request.input, created_by=principal.subject,
                                    timeout_seconds=request.timeout_seconds,
                                    idempotency=(idempotency_key, body_print) if idempotency_key else None)
        except _SameKeyRace:
            earlier = _launched(services, workspace_id, idempotency_key or "", body_print)
            if earlier is None:
                raise Conflict("A request with this Idempotency-Key is in progress; retry.") from None
            return earlier
    services.orchestrator.start(run.id, {"workspace_id": workspace_id, "run_id": run.id})
    with tenant_scope(workspace_id):
        return run_view(run, load_body(run))


class _SameKeyRace(Exception):
    pass


def _launched(services: Services, workspace_id: str, key: str, body_print: str) -> dict[str, Any] | None:
    try:
        launch = RunLaunch.get(*RunLaunch.key(workspace_id, key), consistent_read=True)
    except DoesNotExist:
        return None
    if launch.fingerprint != body_print:
        raise Conflict("This Idempotency-Key was used for a different request.")
    run = load_run(workspace_id, launch.run_id)
    if run.status == "queued":  # the first attempt may have died before starting it; starting is idempotent
        services.orchestrator.start(run.id, {"workspace_id": workspace_id, "run_id": run.id})
    return run_view(run, load_body(run))


def _agent(workspace_id: str, agent_id: str) -> Agent:
    try:
        return Agent.get(*Agent.key(workspace_id, agent_id), consistent_read=True)
    except (DoesNotExist, ValueError):
        raise NotFound("No such agent.") from None


def agent_snapshot(workspace_id: str, agent: Agent) -> dict[str, Any]:
    """The agent as a run uses it, fixed at launch (editing the agent later
    does not change a run in flight), with its team for delegation."""
    from agenthq.agents import agent_view

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
    child; then only its parent task token is refreshed."""
    at = services.now()
    run_id = run_id or ids.new_id()
    if parent is not None:
        try:
            existing = Run.get(*Run.key(workspace_id, run_id), consistent_read=True)
            existing.update(actions=[Run.parent_task_token.set(parent_task_token)])
            return existing
        except DoesNotExist:
            pass
    run = Run(
        *Run.key(workspace_id, run_id),
        id=run_id, workspace_id=workspace_id, agent_id=agent.id, status="queued",
        input_preview=text[:INPUT_PREVIEW_CHARS], seq=1, created_by=created_by, created_at=at, updated_at=at,
        deadline=_deadline(services, at, timeout_seconds, parent),
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
            count_usage(tx, services, workspace_id, Usage(runs=1), at)
    except TransactWriteError:
        if idempotency is not None:
            raise _SameKeyRace() from None
        if parent is not None:  # a concurrent delegation attempt created it
            return create_run_record(services, workspace_id, agent, text, created_by=created_by, run_id=run_id,
                                     parent=parent, parent_tool_use_id=parent_tool_use_id,
                                     parent_task_token=parent_task_token)
        raise
    return run


def _deadline(services: Services, at: Any, timeout_seconds: int | None, parent: Run | None) -> Any:
    deadline = at + timedelta(seconds=timeout_seconds or services.settings.run_timeout_seconds)
    return min(deadline, parent.deadline) if parent is not None else deadline  # a child ends with its parent


# --------------------------------------------------------------------------- read


def get_run(principal: Principal, run_id: str) -> dict[str, Any]:
    principal.require(Scope.runs_read)
    with tenant_scope(principal.workspace_id):
        run = load_run(principal.workspace_id, run_id)
        return run_view(run, load_body(run))


def list_runs(principal: Principal, status: str | None, agent_id: str | None, cursor: str | None,
              limit: int) -> Page:
    principal.require(Scope.runs_read)
    if status is not None and status not in RUN_STATUSES:
        raise InvalidRequest(details=[{"field": "status", "in": "query",
                                       "message": f"must be one of: {', '.join(RUN_STATUSES)}"}])
    wid = principal.workspace_id
    status_filter = (Run.status == status) if status else None
    with tenant_scope(wid):
        if agent_id:
            partition = f"WS#{wid}#AGENT#{agent_id}"
            return page(lambda start: Run.gsi1.query(partition, Run.gsi1sk.startswith("RUN#"),
                                                     filter_condition=status_filter, scan_index_forward=False,
                                                     limit=limit, last_evaluated_key=start),
                        run_view, cursor, partition=partition, sk_prefix="RUN#", index="gsi1")
        partition = Workspace.key(wid)[0]
        return page(lambda start: Run.query(partition, Run.sk.startswith("RUN#"), filter_condition=status_filter,
                                            scan_index_forward=False, limit=limit, last_evaluated_key=start),
                    run_view, cursor, partition=partition, sk_prefix="RUN#")


def list_events(principal: Principal, run_id: str, after: int, limit: int) -> dict[str, Any]:
    """Events after ``after`` in seq order; ``next_after`` continues the list."""
    principal.require(Scope.runs_read)
    if after < 0:
        raise InvalidRequest(details=[{"field": "after", "in": "query", "message": "must be 0 or more"}])
    with tenant_scope(principal.workspace_id):
        run = load_run(principal.workspace_id, run_id)
        items = [event_view(e) for e in iter_events(run, after, limit)]
    more = bool(items) and items[-1]["seq"] < int(run.seq)
    return {"items": items, "next_after": items[-1]["seq"] if more else None}


# --------------------------------------------------------------------------- cancel and resume


def cancel_run(services: Services, principal: Principal, run_id: str) -> dict[str, Any]:
    """Record the cancel; the run ends ``cancelled`` at its next step (no tool
    starts after this), with its usage settled. A paused run ends at once; a
    waiting run cancels its child first."""
    principal.require(Scope.runs_write)
    with tenant_scope(principal.workspace_id):
        run = load_run(principal.workspace_id, run_id)
        if run.status in TERMINAL:
            raise Conflict(f"The run already ended ({run.status}).")
        _request_cancel(services, run)
        run = load_run(principal.workspace_id, run_id)
        return run_view(run, load_body(run))


def _request_cancel(services: Services, run: Run) -> None:
    try:
        run.update(actions=[Run.cancel_requested.set(True)], condition=Run.status.is_in(*ACTIVE))
    except UpdateError:
        return  # it ended meanwhile
    if run.status == "paused" and run.task_token:
        services.orchestrator.send_next(run.task_token, "finish")
    if run.status == "waiting":  # cancel the child it waits for; its end wakes this run, which then ends
        for call in ToolCall.query(Run.partition(run.workspace_id, run.id), ToolCall.sk.startswith("TOOL#"),
                                   consistent_read=True):
            if call.child_run_id and call.result is None:
                try:
                    _request_cancel(services, load_run(run.workspace_id, call.child_run_id))
                except NotFound:
                    pass


def resume_run(services: Services, principal: Principal, run_id: str) -> dict[str, Any]:
    principal.require(Scope.runs_write)
    with tenant_scope(principal.workspace_id):
        run = load_run(principal.workspace_id, run_id)
        if run.status != "paused" or not run.task_token:
            raise Conflict(f"Only a paused run can be resumed; this one is {run.status}.")
        commit(services, run, Change(events=[("run.resumed", {})],
                                     run_actions=[Run.status.set("running"), Run.task_token.remove()],
                                     run_condition=Run.status == "paused"))
        services.orchestrator.send_next(run.task_token, "think")
        run = load_run(principal.workspace_id, run_id)
        return run_view(run, load_body(run))
