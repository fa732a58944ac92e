"""The run engine's decisions, as pure functions (no I/O, no clock of their own).

The engine (``runs.engine``) reads and writes; what it decides — whether a run
ends before its next model call, what a model's stop reason leads to, where
the prompt-cache breakpoint goes, how a failed step becomes a reason — is
decided here, and unit-tested without DynamoDB.

An *outcome* is how a run ends, as a step decides it and Finish writes it:
``{"status": <terminal status>, "reason"?, "message"?, "output"?, "truncated"?}``.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from agenthq.usage import Usage

THINK, ACT, DELEGATE, PAUSE, FINISH = "think", "act", "delegate", "pause", "finish"
START, QUEUE = "start", "queue"
DONE, FAILED = "done", "failed"  # what the slice answers once the run's end is written

#: Steps a slice goes on with in the same invocation; the others wait on a task token (or end the run).
IN_SLICE = frozenset({START, THINK, ACT, FINISH})
#: Seconds a slice keeps for committing after its last step (DynamoDB writes, the end of the run).
COMMIT_MARGIN_SECONDS = 20.0

Outcome = dict[str, Any]

#: Step Functions error names that have a reason of their own; any other error is an internal error.
NOT_STARTED = "RunNotStarted"  # its execution could not be started (launch)
FAILURE_REASONS = {"ModelUnavailable": "model_unavailable", "States.Timeout": "step_timeout",
                   "Sandbox.Timedout": "step_timeout", NOT_STARTED: "start_failed"}
MAX_ERROR_MESSAGE_CHARS = 1000


def ending_before_a_model_call(*, cancel_requested: bool, now: datetime, started_at: datetime, deadline: datetime,
                               steps: int, spent: Usage, agent: dict[str, Any]) -> Outcome | None:
    """How the run ends instead of calling the model, or None to call it.
    In this order: a recorded cancel, the run's deadline, the agent's step
    limit, the agent's per-run budget."""
    if cancel_requested:
        return {"status": "cancelled"}
    if now >= deadline:
        return timed_out(started_at, deadline)
    if steps >= int(agent["max_steps"]):
        return {"status": "failed", "reason": "max_steps",
                "message": f"The run reached its limit of {agent['max_steps']} steps."}
    if spent.cost_usd >= Decimal(agent["budget_usd"]):
        return {"status": "failed", "reason": "budget_exhausted",
                "message": f"The run used its budget of ${agent['budget_usd']}."}
    return None


def call_over_budget(budget_usd: Decimal, shared: bool) -> Outcome:
    """The outcome of a run whose next model call could cost more than is left
    of its budget: its own per-run budget, or (``shared``) its tree's — its root
    run's ``budget_usd``, which the runs the root delegated to spend from too."""
    whose = "the budget its run tree shares" if shared else "its budget"
    return {"status": "failed", "reason": "budget_exhausted",
            "message": f"The run's next model call could cost more than is left of {whose} of ${budget_usd}."}


def next_turn(step: str, next_step: str, turn: int) -> int:
    """The turn ``next_step`` belongs to: start begins turn 1; think → act stays
    in the turn; act → think, and think → think (pause_turn), begin the next."""
    if step == START:
        return 1
    if next_step == THINK and step in (THINK, ACT):
        return turn + 1
    return turn


def goes_on_in_slice(next_step: str, *, seconds_left: float, model_call_seconds: float,
                     tool_call_seconds: float) -> bool:
    """Whether the slice (one invocation of the run worker) runs ``next_step``
    itself, after a step it ran, rather than handing back to the state machine.
    Waiting steps always hand back (they need a task token). A model call starts
    only if its whole retry budget and the commit after it fit in the time left;
    a tool call, if its timeout and the commit do. (An invocation's first step
    always runs: the function's timeout is above those — template.yaml, tested.)"""
    if next_step not in IN_SLICE:
        return False
    if next_step == THINK:
        return seconds_left >= model_call_seconds + COMMIT_MARGIN_SECONDS
    if next_step == ACT:
        return seconds_left >= tool_call_seconds + COMMIT_MARGIN_SECONDS
    return seconds_left >= COMMIT_MARGIN_SECONDS


def timed_out(started_at: datetime, deadline: datetime) -> Outcome:
    """The outcome of a run past its deadline (its timeout counts from its start: ``runs.engine.start``)."""
    allowed = int((deadline - started_at).total_seconds())
    return {"status": "timed_out", "reason": "run_timeout", "message": f"The run did not finish within {allowed} s."}


def after_model(content: list[dict[str, Any]], stop_reason: str | None) -> tuple[str, Outcome | None]:
    """What a model answer leads to: the next step, and the run's outcome if it ends.

    ``tool_use`` (with tool_use blocks) → act; ``pause_turn`` → think again
    (the API paused a long turn; sending it back continues it); ``end_turn`` and
    ``stop_sequence`` → succeeded; ``max_tokens`` → succeeded, marked truncated;
    ``refusal`` → failed; anything else → failed (unexpected_stop)."""
    text = "".join(b.get("text", "") for b in content if b.get("type") == "text").strip()
    uses_tools = any(b.get("type") == "tool_use" for b in content)
    if stop_reason == "tool_use" and uses_tools:
        return ACT, None
    if stop_reason == "pause_turn":
        return THINK, None
    if stop_reason in ("end_turn", "stop_sequence"):
        return FINISH, {"status": "succeeded", "output": text}
    if stop_reason == "max_tokens":
        return FINISH, {"status": "succeeded", "output": text, "truncated": True}
    if stop_reason == "refusal":
        return FINISH, {"status": "failed", "reason": "refusal", "message": "The model declined to continue.",
                        "output": text}
    return FINISH, {"status": "failed", "reason": "unexpected_stop", "message": f"stop_reason {stop_reason!r}"}


def with_cache_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation with a prompt-cache breakpoint on the last block of the
    last message (it moves with each step, so each call reads what the previous
    one cached). The input is not changed."""
    if not messages:
        return []
    last = messages[-1]
    blocks = [dict(b) for b in last["content"]]
    blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
    return [*messages[:-1], {**last, "content": blocks}]


def system_prompt(agent_id: str, agent: dict[str, Any]) -> str:
    """The agent's system prompt, followed by who it is and its team (for delegate and send_message)."""
    team = [a for a in agent.get("team", []) if a["id"] != agent_id]
    lines = [agent["system_prompt"], "", f"You are the agent \"{agent['name']}\" (id {agent_id})."]
    if team:
        lines.append("Other agents of your workspace (for delegate and send_message):")
        lines += [f"- {a['name']} (id {a['id']}, {a['personality']})" for a in team]
    return "\n".join(lines)


def failure_outcome(error: dict[str, Any]) -> Outcome:
    """The outcome of a run whose step failed for good, from the error Step
    Functions caught (``{"Error": name, "Cause": text}``; Lambda's cause is a
    JSON object with ``errorMessage``)."""
    name = str(error.get("Error") or "Error")
    message = _error_message(error.get("Cause"))
    reason = FAILURE_REASONS.get(name)
    if reason is None:
        return {"status": "failed", "reason": "internal_error",
                "message": f"{name}: {message}"[:MAX_ERROR_MESSAGE_CHARS]}
    return {"status": "failed", "reason": reason, "message": message}


def final_outcome(outcome: Outcome | None, cancel_requested: bool) -> Outcome:
    """What Finish writes: a recorded cancel wins over anything but a failure;
    a run that reached Finish without an outcome failed."""
    outcome = dict(outcome or {})
    if cancel_requested and outcome.get("status") not in ("failed", "cancelled"):
        return {"status": "cancelled", "reason": "cancelled", "message": "The run was cancelled."}
    if outcome.get("status") not in ("succeeded", "failed", "cancelled", "timed_out"):
        return {"status": "failed", "reason": "no_outcome", "message": "The run ended without an answer."}
    return outcome


def _error_message(cause: Any) -> str:
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
            if isinstance(parsed, dict) and parsed.get("errorMessage"):
                return str(parsed["errorMessage"])[:MAX_ERROR_MESSAGE_CHARS]
        except ValueError:
            pass
        return cause[:MAX_ERROR_MESSAGE_CHARS]
    return "The run failed."
