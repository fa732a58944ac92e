"""Agent edge models and the retry rule of agent transactions (no DynamoDB needed)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError
from pynamodb.exceptions import TransactWriteError

from agenthq import agents
from agenthq.agent_lookup import fold_name
from agenthq.agents import AgentCreate, AgentUpdate, money
from agenthq.errors import Conflict, PlanLimit
from agenthq.store import retry_transaction


def test_money_keeps_at_least_cents():
    assert [money(Decimal(v)) for v in ("1", "2.5", "0.005", "1E+1", "99.999999")] == [
        "1.00", "2.50", "0.005", "10.00", "99.999999"]


def test_names_are_trimmed_and_compared_case_insensitively():
    assert AgentCreate(name="  Ops Lead ", personality="sre").name == "Ops Lead"
    assert fold_name("OPS LEAD") == fold_name("ops lead") == fold_name("Ops Lead")
    assert fold_name("Straße") == fold_name("STRASSE")


def test_update_refuses_nulls_except_for_the_system_prompt():
    assert AgentUpdate.model_validate({"system_prompt": None}).model_fields_set == {"system_prompt"}
    with pytest.raises(ValidationError) as exc:
        AgentUpdate.model_validate({"tools": None})
    assert exc.value.errors()[0]["loc"] == ("tools",)


def test_a_cancelled_transaction_is_retried_until_it_commits():
    outcomes = [TransactWriteError("conflict"), TransactWriteError("conflict"), None]
    pauses: list[float] = []

    def attempt():
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "committed"

    result = retry_transaction(attempt, lambda exc: None, attempts=8, exhausted=lambda: Conflict(),
                               sleep=pauses.append)
    assert result == "committed" and outcomes == []
    assert len(pauses) == 2 and all(0 < p <= 0.05 * 2 for p in pauses)  # jittered, growing bound


def test_the_explanation_of_a_cancelled_transaction_is_what_the_caller_sees():
    def attempt():
        raise TransactWriteError("cancelled")

    def explain(exc):
        raise agents._plan_limit(3)

    with pytest.raises(PlanLimit, match="Your plan allows 3 agents"):
        retry_transaction(attempt, explain, attempts=8, exhausted=lambda: Conflict(), sleep=lambda s: None)
    tries = []
    with pytest.raises(Conflict, match="concurrently"):
        retry_transaction(lambda: tries.append(1) or attempt(), lambda exc: None, attempts=3,
                          exhausted=lambda: Conflict("changed concurrently"), sleep=lambda s: None)
    assert len(tries) == 3
