"""Sessions as the HTTP API sees them (DESIGN §9).

A session is an ``AgentSession`` item of the workspace; its turns and its
transcript are items of its own partition. A message to it is a run launched
through the same path as any run (``runs.api.launch_run``: Idempotency-Key,
runs per day, concurrent runs, the budget's reservations, pause) with its
place in the session (``runs.turns.TurnClaim``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pynamodb.exceptions import DeleteError

from agenthq import ids
from agenthq.agent_lookup import load_agent
from agenthq.context import Principal, Scope
from agenthq.errors import InvalidRequest, NotFound, SessionBusy
from agenthq.pagination import Page, page
from agenthq.runs import api as runs
from agenthq.runs import session_events
from agenthq.runs.records import usage_view
from agenthq.runs.turns import TurnClaim
from agenthq.sessions.versions import launch_version, pinned_version
from agenthq.store import partition_page, tenant_scope
from agenthq.store.items import AgentSession, TranscriptEntry, Workspace
from agenthq.text import NOT_BLANK, not_blank
from agenthq.usage import Usage
from agenthq.versions.records import current_version

if TYPE_CHECKING:
    from agenthq.services import Services

MAX_TITLE_CHARS = 200
SESSION_PREFIX = "CONVERSATION#"


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"title": "Staging rollout"}]})

    title: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE_CHARS, pattern=NOT_BLANK)
    agent_version: int | Literal["latest"] | None = Field(
        default=None, description="The agent version the session runs: by default the agent's version now; "
                                  "`latest` follows the agent as it changes.")

    @field_validator("agent_version")
    @classmethod
    def _positive(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be 1 or more, or \"latest\"")
        return value


class SessionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"title": "Staging rollout, day 2"}]})

    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS, pattern=NOT_BLANK)


class SessionMessage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"input": "And now do the same for staging.", "on_busy": "enqueue"}]})

    input: str = Field(min_length=1, pattern=NOT_BLANK)
    on_busy: Literal["enqueue", "reject"] = Field(
        default="enqueue", description="While the previous message is being answered: wait `queued` "
                                       "(`enqueue`) or answer 409 `session_busy` (`reject`).")
    timeout_seconds: int | None = Field(default=None, ge=1)

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return not_blank(value)


# --------------------------------------------------------------------------- views


def session_view(session: AgentSession) -> dict[str, Any]:
    launched, done = int(session.launched or 0), int(session.done_turns or 0)
    return {
        "id": session.id,
        "workspace_id": session.workspace_id,
        "agent_id": session.agent_id,
        "agent_version": session.agent_version,
        "title": session.title,
        "status": "running" if done < launched else "idle",
        "turns": launched,
        "usage": {**usage_view(Usage.of(session)), "runs": int(session.runs or 0)},
        "last_run_id": session.last_run_id,
        "created_at": session.created_at.isoformat(),
        "updated_at": session.updated_at.isoformat(),
    }


def entry_view(entry: TranscriptEntry) -> dict[str, Any]:
    return {"role": entry.role, "text": entry.text, "run_id": entry.run_id, "at": entry.at.isoformat()}


def _load(workspace_id: str, session_id: str) -> AgentSession:
    return AgentSession.get_or_404(*AgentSession.key(workspace_id, session_id), "No such session.")


# --------------------------------------------------------------------------- create, read, list


def create_session(services: Services, principal: Principal, agent_id: str, request: SessionCreate) -> dict[str, Any]:
    principal.require(Scope.runs_write)
    workspace_id = principal.workspace_id
    with tenant_scope(workspace_id):
        agent = load_agent(workspace_id, agent_id)
        wanted = request.agent_version
        if isinstance(wanted, int) and wanted > current_version(agent):
            raise InvalidRequest(details=[{"field": "agent_version",
                                           "message": f"the agent has versions 1 to {current_version(agent)}"}])
        version = pinned_version(agent, wanted)
        session_id, at = ids.new_id(), services.now()
        session = AgentSession(*AgentSession.key(workspace_id, session_id), id=session_id,
                               workspace_id=workspace_id, agent_id=agent.id, agent_version=version,
                               title=request.title, created_by=principal.subject, created_at=at, updated_at=at,
                               gsi1pk=f"WS#{workspace_id}#AGENT#{agent.id}", gsi1sk=f"{SESSION_PREFIX}{session_id}")
        session.save(condition=AgentSession.pk.does_not_exist())
        return session_view(session)


def get_session(principal: Principal, session_id: str) -> dict[str, Any]:
    principal.require(Scope.runs_read)
    with tenant_scope(principal.workspace_id):
        return session_view(_load(principal.workspace_id, session_id))


def list_sessions(principal: Principal, agent_id: str | None, cursor: str | None, limit: int) -> Page:
    """The workspace's sessions, newest first (or one agent's)."""
    principal.require(Scope.runs_read)
    wid = principal.workspace_id
    with tenant_scope(wid):
        if agent_id:
            partition = f"WS#{wid}#AGENT#{agent_id}"
            return page(lambda start: AgentSession.gsi1.query(
                partition, AgentSession.gsi1sk.startswith(SESSION_PREFIX), scan_index_forward=False, limit=limit,
                last_evaluated_key=start), session_view, cursor, partition=partition, sk_prefix=SESSION_PREFIX,
                index="gsi1")
        partition = Workspace.key(wid)[0]
        return page(lambda start: AgentSession.query(partition, AgentSession.sk.startswith(SESSION_PREFIX),
                                                     scan_index_forward=False, limit=limit, last_evaluated_key=start),
                    session_view, cursor, partition=partition, sk_prefix=SESSION_PREFIX)


def list_transcript(principal: Principal, session_id: str, cursor: str | None, limit: int) -> Page:
    """The session's messages in order: each turn's input (``user``), then its answer (``assistant``)
    once the turn is done."""
    principal.require(Scope.runs_read)
    wid = principal.workspace_id
    with tenant_scope(wid):
        _load(wid, session_id)
        partition = AgentSession.partition(wid, session_id)
        return page(lambda start: TranscriptEntry.query(partition, TranscriptEntry.sk.startswith("MSG#"), limit=limit,
                                                        last_evaluated_key=start, consistent_read=True),
                    entry_view, cursor, partition=partition, sk_prefix="MSG#")


def list_events(principal: Principal, session_id: str, after: int, limit: int) -> dict[str, Any]:
    """The session's events after session seq ``after``, in order: every event of its runs and their
    delegated children, each with its run's id and seq; ``next_after`` continues the list."""
    principal.require(Scope.runs_read)
    if after < 0:
        raise InvalidRequest(details=[{"field": "after", "in": "query", "message": "must be 0 or more"}])
    wid = principal.workspace_id
    with tenant_scope(wid):
        session = _load(wid, session_id)
        items = [session_events.event_view(e) for e in session_events.events_after(wid, session_id, after, limit)]
    more = bool(items) and items[-1]["seq"] < int(session.event_seq or 0)
    return {"items": items, "next_after": items[-1]["seq"] if more else None}


# --------------------------------------------------------------------------- change


def rename_session(services: Services, principal: Principal, session_id: str,
                   request: SessionUpdate) -> dict[str, Any]:
    principal.require(Scope.runs_write)
    with tenant_scope(principal.workspace_id):
        session = _load(principal.workspace_id, session_id)
        session.update(actions=[AgentSession.title.set(request.title), AgentSession.updated_at.set(services.now())],
                       condition=AgentSession.pk.exists())
        return session_view(session)


def delete_session(principal: Principal, session_id: str) -> None:
    """Delete the session with its turns and transcript (its runs stay, as an agent's do). Not while a
    message is being answered (409 ``session_busy``): its run would hand on to a session that is gone."""
    principal.require(Scope.runs_write)
    wid = principal.workspace_id
    with tenant_scope(wid):
        session = _load(wid, session_id)
        try:
            session.delete(condition=AgentSession.done_turns == AgentSession.launched)
        except DeleteError as exc:
            if AgentSession.get_or_none(*AgentSession.key(wid, session_id)) is None:
                raise NotFound("No such session.") from exc
            raise SessionBusy("The session's last message is still being answered; cancel its run or wait "
                              "before deleting it.") from exc
        while True:  # its partition: turns and transcript
            items, _more = partition_page(AgentSession.partition(wid, session_id))
            if not items:
                break
            for item in items:
                item.delete()


# --------------------------------------------------------------------------- a message


def send_message(services: Services, principal: Principal, session_id: str, request: SessionMessage,
                 idempotency_key: str | None) -> dict[str, Any]:
    """Launch the session's next turn: a run of its agent whose prompt carries every earlier turn."""
    principal.require(Scope.runs_write)
    with tenant_scope(principal.workspace_id):
        session = _load(principal.workspace_id, session_id)
    claim = TurnClaim(principal.workspace_id, session_id, reject_if_busy=request.on_busy == "reject",
                      agent_version=launch_version(session.agent_version))
    launch = runs.RunLaunchRequest(input=request.input, timeout_seconds=request.timeout_seconds)
    return runs.launch_run(services, principal, session.agent_id, launch, idempotency_key, turn=claim)
