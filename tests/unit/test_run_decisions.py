"""The run engine's decisions, without DynamoDB: how a run ends before a model
call, what each stop reason leads to, where the cache breakpoint goes, and how
a failed step becomes a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from agenthq.runs import decisions
from agenthq.runs.decisions import ACT, FINISH, THINK
from agenthq.usage import Usage

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
AGENT = {"name": "sre-bot", "system_prompt": "You keep systems up.", "max_steps": 5, "budget_usd": "0.50",
         "team": [{"id": "A1", "name": "sre-bot", "personality": "sre"},
                  {"id": "A2", "name": "lead", "personality": "coordinator"}]}


def ending(**change):
    state = {"cancel_requested": False, "now": START + timedelta(seconds=10), "started_at": START,
             "deadline": START + timedelta(minutes=15), "steps": 2, "spent": Usage(cost_micro_usd=100_000),
             "agent": AGENT, **change}
    return decisions.ending_before_a_model_call(**state)


# --------------------------------------------------------------------------- before a model call


def test_a_run_within_its_limits_calls_the_model():
    assert ending() is None


def test_a_recorded_cancel_ends_the_run_first():
    # even when every other limit is crossed too
    assert ending(cancel_requested=True, now=START + timedelta(hours=1), steps=5,
                  spent=Usage(cost_micro_usd=900_000)) == {"status": "cancelled"}


def test_past_the_deadline_the_run_times_out_with_its_allowance_in_the_message():
    outcome = ending(now=START + timedelta(minutes=15))  # at the deadline exactly: no more calls
    assert outcome == {"status": "timed_out", "reason": "run_timeout",
                       "message": "The run did not finish within 900 s."}


def test_at_the_step_limit_the_run_fails_with_max_steps():
    assert ending(steps=4) is None
    assert ending(steps=5) == {"status": "failed", "reason": "max_steps",
                               "message": "The run reached its limit of 5 steps."}


def test_at_the_per_run_budget_the_run_fails_with_budget_exhausted():
    assert ending(spent=Usage(cost_micro_usd=499_999)) is None
    assert ending(spent=Usage(cost_micro_usd=500_000)) == {
        "status": "failed", "reason": "budget_exhausted", "message": "The run used its budget of $0.50."}


def test_the_deadline_wins_over_the_step_limit():
    assert ending(steps=5, now=START + timedelta(hours=1))["status"] == "timed_out"


# --------------------------------------------------------------------------- after a model call


TEXT = [{"type": "text", "text": "  The answer is 42. "}]
TOOL_USE = [{"type": "text", "text": "Let me compute."},
            {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"expression": "6*7"}}]


@pytest.mark.parametrize("content, stop_reason, expected", [
    (TOOL_USE, "tool_use", (ACT, None)),
    (TEXT, "pause_turn", (THINK, None)),
    (TEXT, "end_turn", (FINISH, {"status": "succeeded", "output": "The answer is 42."})),
    (TEXT, "stop_sequence", (FINISH, {"status": "succeeded", "output": "The answer is 42."})),
    (TEXT, "max_tokens", (FINISH, {"status": "succeeded", "output": "The answer is 42.", "truncated": True})),
    (TEXT, "refusal", (FINISH, {"status": "failed", "reason": "refusal",
                                "message": "The model declined to continue.", "output": "The answer is 42."})),
    (TEXT, "model_context_window_exceeded", (FINISH, {"status": "failed", "reason": "unexpected_stop",
                                                      "message": "stop_reason 'model_context_window_exceeded'"})),
    (TEXT, None, (FINISH, {"status": "failed", "reason": "unexpected_stop", "message": "stop_reason None"})),
])
def test_each_stop_reason_leads_where_it_should(content, stop_reason, expected):
    assert decisions.after_model(content, stop_reason) == expected


def test_tool_use_without_a_tool_use_block_is_not_a_tool_step():
    assert decisions.after_model(TEXT, "tool_use")[1]["reason"] == "unexpected_stop"


# --------------------------------------------------------------------------- the request


def test_the_cache_breakpoint_goes_on_the_last_block_of_the_last_message_only():
    conversation = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                    {"role": "assistant", "content": TOOL_USE},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"},
                                                 {"type": "text", "text": "and then?"}]}]
    before = json.dumps(conversation)
    marked = decisions.with_cache_breakpoint(conversation)
    assert json.dumps(conversation) == before, "the stored conversation is not changed"
    breakpoints = [(m, b) for m, message in enumerate(marked) for b, block in enumerate(message["content"])
                   if "cache_control" in block]
    assert breakpoints == [(2, 1)]
    assert marked[2]["content"][1] == {"type": "text", "text": "and then?", "cache_control": {"type": "ephemeral"}}
    assert marked[:2] == conversation[:2]
    assert decisions.with_cache_breakpoint([]) == []


def test_the_system_prompt_names_the_agent_and_its_team_but_not_itself():
    prompt = decisions.system_prompt("A1", AGENT)
    assert prompt.startswith("You keep systems up.\n\nYou are the agent \"sre-bot\" (id A1).")
    assert "- lead (id A2, coordinator)" in prompt
    assert "(id A1, sre)" not in prompt
    alone = decisions.system_prompt("A1", {**AGENT, "team": AGENT["team"][:1]})
    assert "Other agents" not in alone


# --------------------------------------------------------------------------- failures and the end


def test_a_model_outage_becomes_model_unavailable_with_lambdas_message():
    cause = json.dumps({"errorMessage": "model overloaded (529) after 4 attempts", "errorType": "ModelUnavailable"})
    assert decisions.failure_outcome({"Error": "ModelUnavailable", "Cause": cause}) == {
        "status": "failed", "reason": "model_unavailable", "message": "model overloaded (529) after 4 attempts"}


@pytest.mark.parametrize("name", ["States.Timeout", "Sandbox.Timedout"])
def test_a_step_timeout_becomes_step_timeout(name):
    assert decisions.failure_outcome({"Error": name, "Cause": "Task timed out"})["reason"] == "step_timeout"


def test_any_other_error_is_an_internal_error_named_and_bounded():
    outcome = decisions.failure_outcome({"Error": "KeyError", "Cause": "x" * 5000})
    assert outcome["reason"] == "internal_error"
    assert outcome["message"].startswith("KeyError: xxx") and len(outcome["message"]) == 1000
    assert decisions.failure_outcome({}) == {"status": "failed", "reason": "internal_error",
                                             "message": "Error: The run failed."}


def test_finish_lets_a_cancel_win_over_anything_but_a_failure():
    succeeded = {"status": "succeeded", "output": "done"}
    failed = {"status": "failed", "reason": "refusal", "message": "no"}
    assert decisions.final_outcome(succeeded, cancel_requested=False) == succeeded
    assert decisions.final_outcome(succeeded, cancel_requested=True)["status"] == "cancelled"
    assert decisions.final_outcome(failed, cancel_requested=True) == failed
    assert decisions.final_outcome(None, cancel_requested=False) == {
        "status": "failed", "reason": "no_outcome", "message": "The run ended without an answer."}


# --------------------------------------------------------------------------- slices


@pytest.mark.parametrize(("step", "next_step", "turn", "expected"), [
    ("start", THINK, 0, 1), ("think", ACT, 3, 3), ("act", THINK, 3, 4), ("think", THINK, 3, 4),
    ("think", FINISH, 3, 3), ("act", "delegate", 2, 2), ("queue", "start", 0, 0),
])
def test_the_turn_a_step_belongs_to(step, next_step, turn, expected):
    assert decisions.next_turn(step, next_step, turn) == expected


def test_a_slice_starts_a_model_call_or_a_tool_only_when_its_whole_budget_fits():
    budget, tool, margin = 260.0, 10.0, decisions.COMMIT_MARGIN_SECONDS

    def goes_on(step, seconds_left):
        return decisions.goes_on_in_slice(step, seconds_left=seconds_left, model_call_seconds=budget,
                                          tool_call_seconds=tool)

    assert goes_on(THINK, budget + margin)
    assert not goes_on(THINK, budget + margin - 0.1)
    assert goes_on(ACT, tool + margin) and not goes_on(ACT, tool + margin - 0.1)
    assert goes_on(FINISH, margin) and not goes_on(FINISH, margin - 1)
    for waiting in ("delegate", "pause", "queue"):  # they need a task token: the state machine's
        assert not goes_on(waiting, 900.0)


def test_a_call_that_does_not_fit_its_trees_budget_fails_the_run_with_budget_exhausted():
    from decimal import Decimal

    root = decisions.call_over_budget(Decimal("0.004000"), shared=False)
    child = decisions.call_over_budget(Decimal("0.004000"), shared=True)
    assert root["status"] == child["status"] == "failed"
    assert root["reason"] == child["reason"] == "budget_exhausted"
    assert "its budget of $0.004000" in root["message"] and "its run tree shares" in child["message"]
