"""The stateful built-in tools: workspace notes, messages to other agents, delegation.

Their handlers use only what the :class:`ToolContext` carries — the run's
workspace, run, agent and tool-call ids, and ``ctx.clock`` —
and touch storage only inside ``tenant_scope(ctx.workspace_id)``. No input of
theirs names a workspace, so a tool can never reach another workspace's data.

Retries: ``notes_write`` is a plain put (last write wins, so a repeat changes
nothing); ``send_message`` names its message after the run and the tool call
(``ctx.call_id``), so a retried call finds the message it already sent.
``delegate`` is only a definition here: the run engine intercepts it and runs
the other agent as a child run.
"""

from __future__ import annotations

import re
from typing import Any

from agenthq import ids, messaging
from agenthq.errors import AppError
from agenthq.store import tenant_scope
from agenthq.store.items import Note, Workspace
from agenthq.tools.registry import Tool, ToolContext, ToolError

NOTE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
MAX_NOTE_CHARS = 16_000
MAX_LISTED_NOTES = 500
MAX_DELEGATE_INPUT_CHARS = 20_000


def _note_name(name: str) -> str:
    if not NOTE_NAME.fullmatch(name):
        raise ToolError(f"Invalid note name {name[:80]!r}: use 1-64 characters of lowercase letters, digits, "
                        "'_', '.' and '-', starting with a letter or digit (e.g. 'adr-001' or 'runbook.db').")
    return name


# --------------------------------------------------------------------------- notes


def notes_write(input: dict[str, Any], ctx: ToolContext) -> str:
    """Tool handler: create or replace the note ``input["name"]``."""
    name = _note_name(input["name"])
    content = input["content"]
    with tenant_scope(ctx.workspace_id):
        Note(*Note.key(ctx.workspace_id, name), name=name, content=content, updated_at=ctx.clock.now(),
             updated_by_run=ctx.run_id).save()
    return f"Saved note '{name}' ({len(content)} characters)."


def notes_read(input: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Tool handler: one note, or the names of all notes when no name is given."""
    pk = Workspace.key(ctx.workspace_id)[0]
    with tenant_scope(ctx.workspace_id):
        if input.get("name") is None:
            names = [n.name for n in Note.query(pk, Note.sk.startswith("NOTE#"), limit=MAX_LISTED_NOTES + 1,
                                                attributes_to_get=["pk", "sk", "type", "name"])]
            listing: dict[str, Any] = {"notes": names[:MAX_LISTED_NOTES], "count": min(len(names), MAX_LISTED_NOTES)}
            if len(names) > MAX_LISTED_NOTES:
                listing["truncated"] = True
            return listing
        name = _note_name(input["name"])
        note = Note.get_or_none(*Note.key(ctx.workspace_id, name))
    if note is None:
        raise ToolError(f"There is no note named '{name}'. Call notes_read without a name "
                        "to list the notes that exist.")
    return {"name": note.name, "content": note.content,
            "updated_at": note.updated_at.isoformat().replace("+00:00", "Z")}


# --------------------------------------------------------------------------- messages


def send_message(input: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Tool handler: leave a message for another agent of the workspace."""
    # Without a call id (never in a run) the message gets a fresh id: no retry to recognise.
    message_id = messaging.message_id_for(ctx.run_id, ctx.call_id) if ctx.call_id else ids.new_id()
    try:
        message = messaging.send_message(ctx.clock, ctx.workspace_id, ctx.agent_id, ctx.run_id,
                                         input["to_agent"], input["body"], message_id)
    except AppError as exc:
        raise ToolError(exc.message) from None
    return {
        "sent": True,
        "message_id": message.id,
        "to_agent_id": message.to_agent_id,
        "delivery": "The recipient reads it at the start of its next run.",
    }


# --------------------------------------------------------------------------- delegation


def delegate(input: dict[str, Any], ctx: ToolContext) -> str:
    """Never called in a run: the run engine intercepts ``delegate``."""
    raise ToolError("delegate is run by the run engine")


# --------------------------------------------------------------------------- definitions


def stateful_tools() -> list[Tool]:
    """Fresh definitions of the stateful built-in tools."""
    return [
        Tool(
            name="notes_write",
            description=(
                "Save a note in the workspace's shared notes, the long-term memory every agent of the "
                "workspace can read in this and later runs. Writing a name that exists replaces that note "
                "entirely (read it first if you want to extend it). Use it for decisions, plans, conventions, "
                "schemas, runbooks and open questions that others or a later run need. Names are 1-64 "
                "lowercase letters, digits, '_', '.' and '-', starting with a letter or digit, e.g. "
                "'adr-003-queueing' or 'plan.checkout'."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The note's name, e.g. 'adr-001'.",
                             "minLength": 1, "maxLength": 64},
                    "content": {"type": "string", "description": "The full text of the note (Markdown is fine).",
                                "maxLength": MAX_NOTE_CHARS},
                },
                "required": ["name", "content"],
                "additionalProperties": False,
            },
            handler=notes_write,
            kind="stateful",
            max_result_chars=1_000,
        ),
        Tool(
            name="notes_read",
            description=(
                "Read the workspace's shared notes. With a name, returns that note's content and when it was "
                "last updated; without a name, returns the names of all notes. Read the relevant notes before "
                "you plan or decide, so you build on earlier decisions instead of repeating or contradicting them."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The note to read; leave it out to list all notes.",
                             "minLength": 1, "maxLength": 64},
                },
                "additionalProperties": False,
            },
            handler=notes_read,
            kind="stateful",
            max_result_chars=MAX_NOTE_CHARS + 1_000,
        ),
        Tool(
            name="send_message",
            description=(
                "Send a message to another agent of this workspace, by its name or id. It does not wait for an "
                "answer: the recipient reads the message at the start of its next run. Use it to hand over "
                "information, decisions or requests that another agent needs later; to get an answer now, use "
                "delegate instead (if you have it). Make the message self-contained: the recipient does not "
                "see this conversation."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "to_agent": {"type": "string", "description": "The recipient agent's name or id.",
                                 "minLength": 1, "maxLength": 400},
                    "body": {"type": "string", "description": "The message text.",
                             "minLength": 1, "maxLength": messaging.MAX_BODY_CHARS},
                },
                "required": ["to_agent", "body"],
                "additionalProperties": False,
            },
            handler=send_message,
            kind="stateful",
            max_result_chars=1_000,
        ),
        Tool(
            name="delegate",
            description=(
                "Give a task to another agent of this workspace (by its name or id) and wait for its answer. "
                "The other agent runs on its own as a separate run and returns its final answer as this tool's "
                "result. It does not see this conversation, so the input must stand on its own: the goal, the "
                "context and constraints it needs, and the exact shape of the answer you want. Delegation costs "
                "time and budget; delegate focused tasks, not the whole request."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "agent": {"type": "string", "description": "The agent to run: its name or id.",
                              "minLength": 1, "maxLength": 400},
                    "input": {"type": "string", "description": "The task for the other agent, self-contained.",
                              "minLength": 1, "maxLength": MAX_DELEGATE_INPUT_CHARS},
                },
                "required": ["agent", "input"],
                "additionalProperties": False,
            },
            handler=delegate,
            kind="stateful",
            max_result_chars=MAX_DELEGATE_INPUT_CHARS,
        ),
    ]
