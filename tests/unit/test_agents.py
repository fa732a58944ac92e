"""Agent edge models and the retry rule of agent transactions (no DynamoDB needed)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError
from pynamodb.exceptions import TransactWriteError

from agenthq import agents
from agenthq.agents import AgentCreate, AgentUpdate, fold_name, money
from agenthq.errors import Conflict, PlanLimit


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


def test_a_cancelled_transaction_is_retried_until_it_commits(monkeypatch):
    monkeypatch.setattr(agents.time, "sleep", lambda s: None)
    outcomes = [TransactWriteError("conflict"), TransactWriteError("conflict"), None]

    def attempt():
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    agents._transact(attempt, lambda: None)
    assert outcomes == []


def test_the_explanation_of_a_cancelled_transaction_is_what_the_caller_sees(monkeypatch):
    monkeypatch.setattr(agents.time, "sleep", lambda s: None)

    def attempt():
        raise TransactWriteError("cancelled")

    def explain():
        raise agents._plan_limit(3)

    with pytest.raises(PlanLimit, match="Your plan allows 3 agents"):
        agents._transact(attempt, explain)
    with pytest.raises(Conflict, match="concurrently"):
        agents._transact(attempt, lambda: None)
