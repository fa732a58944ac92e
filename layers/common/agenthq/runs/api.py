"""Runs as the HTTP API sees them: launch (idempotent), read, list, events,
cancel and resume. The steps themselves are in ``agenthq.runs.engine``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agenthq.agent_lookup import load_agent
from agenthq.context import Principal, Scope
from agenthq.errors import Conflict, InvalidRequest, ServiceUnavailable
from agenthq.observability import logger
from agenthq.pagination import Page, page
from agenthq.runs import decisions, pausing
from agenthq.runs.cancel import request_cancel
from agenthq.runs.launch import LaunchRace, create_run_record, forget_unstarted
from agenthq.runs.records import (
    event_view,
    iter_events,
    load_body,
    load_run,
    run_view,
)
from agenthq.runs.statuses import ACTIVE, RUN_STATUSES, TERMINAL, RunStatus  # noqa: F401 - RunStatus: re-exported
from agenthq.runs.turns import TurnClaim
from agenthq.security.secrets import fingerprint
from agenthq.store import tenant_scope
from agenthq.store.items import Run, RunLaunch, Workspace
from agenthq.text import NOT_BLANK, not_blank
from agenthq.versions.records import load_agent_version

if TYPE_CHECKING:
    from agenthq.services import Services

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


class RunLaunchRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"input": "What is our monthly error budget at 99.9%?", "timeout_seconds": 600}]})

    input: str = Field(min_length=1, pattern=NOT_BLANK)
    timeout_seconds: int | None = Field(default=None, ge=1)  # at most the deployment's RUN_TIMEOUT_SECONDS

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return not_blank(value)


# --------------------------------------------------------------------------- launch


def launch_run(services: Services, principal: Principal, agent_id: str, request: RunLaunchRequest,
               idempotency_key: str | None, turn: TurnClaim | None = None) -> dict[str, Any]:
    """Create the run (status queued, event run.queued) and start its execution.

    With an ``Idempotency-Key``: the same key and the same body give back the
    same run (and never a second execution); the same key with another body
    is a 409. With ``turn``: the run is a session's next turn (``runs.turns``)."""
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
        # A session's turn runs the agent at the version its session is pinned to (runs.turns.TurnClaim).
        agent = load_agent_version(workspace_id, agent_id, turn.agent_version) if turn is not None \
            else load_agent(workspace_id, agent_id)
        body_print = fingerprint("launch", agent.id, request.input, str(request.timeout_seconds),
                                 *((turn.session_id,) if turn is not None else ()))
        if idempotency_key is not None:
            earlier = _launched(services, workspace_id, idempotency_key, body_print)
            if earlier is not None:
                return earlier
        try:
            run = create_run_record(services, workspace_id, agent, request.input, created_by=principal.subject,
                                    timeout_seconds=request.timeout_seconds,
                                    idempotency=(idempotency_key, body_print) if idempotency_key else None,
                                    turn=turn)
        except LaunchRace:
            earlier = _launched(services, workspace_id, idempotency_key or "", body_print)
            if earlier is None:
                raise Conflict("A request with this Idempotency-Key is in progress; retry.") from None
            return earlier
    _start(services, run, retry_with_key=idempotency_key is not None)
    with tenant_scope(workspace_id):
        return run_view(run, load_body(run))


def _start(services: Services, run: Run, *, retry_with_key: bool) -> None:
    """Start the run's execution. If Step Functions refuses or cannot be
    reached, the launch answers 503 (retry). Launched with an Idempotency-Key,
    the run stays queued: the retry with that key finds it and starts it.
    Without one a retry would be a second run, so this one ends ``failed``
    (reason ``start_failed``), giving back its place among the concurrent runs."""
    try:
        services.orchestrator.start(run.id, {"workspace_id": run.workspace_id, "run_id": run.id})
    except Exception as exc:  # whatever failed, the run did not start (it stays listed as unstarted)
        logger.exception("the run's execution could not be started", extra={"run_id": run.id})
        if retry_with_key:
            raise ServiceUnavailable("The run could not be started yet; retry with the same Idempotency-Key.") from exc
        from agenthq.runs import engine  # the failure path of a run; only this rare case needs it

        with tenant_scope(run.workspace_id):
            engine.fail(engine.Slice(services, run), {"error": {"Error": decisions.NOT_STARTED, "Cause": str(exc)[:500]}})
        raise ServiceUnavailable("The run could not be started and has failed; launch it again.") from exc
    try:
        forget_unstarted(run.workspace_id, run.id)  # its execution carries it from here
    except Exception:  # noqa: BLE001 - the run started; the period reset clears a marker left behind
        logger.exception("could not clear the run's unstarted marker", extra={"run_id": run.id})


def _launched(services: Services, workspace_id: str, key: str, body_print: str) -> dict[str, Any] | None:
    launch = RunLaunch.get_or_none(*RunLaunch.key(workspace_id, key))
    if launch is None:
        return None
    if launch.fingerprint != body_print:
        raise Conflict("This Idempotency-Key was used for a different request.")
    run = load_run(workspace_id, launch.run_id)
    if run.status == "queued":  # the first attempt may have died before starting it; starting is idempotent
        _start(services, run, retry_with_key=True)
    return run_view(run, load_body(run))


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
        request_cancel(services, run)
        run = load_run(principal.workspace_id, run_id)
        return run_view(run, load_body(run))


def resume_run(services: Services, principal: Principal, run_id: str) -> dict[str, Any]:
    principal.require(Scope.runs_write)
    with tenant_scope(principal.workspace_id):
        run = load_run(principal.workspace_id, run_id)
        run = pausing.resume(services, run, by=principal.subject)
        return run_view(run, load_body(run))
