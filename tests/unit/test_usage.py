"""The usage vector: addition, the cost of a model call, what a run and a counter count."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pynamodb.transactions import TransactWrite

from agenthq.store.items import Run, UsageCounter
from agenthq.usage import TokenUsage, Usage


def test_usage_adds_field_by_field():
    a = Usage(runs=1, input_tokens=10, cost_micro_usd=7)
    b = Usage(model_calls=2, input_tokens=5, cost_micro_usd=3, agent_seconds=4)
    assert a + b == Usage(runs=1, model_calls=2, input_tokens=15, cost_micro_usd=10, agent_seconds=4)
    assert TokenUsage(1, 2, 3, 4) + TokenUsage(10, 20, 30, 40) == TokenUsage(11, 22, 33, 44)


def test_a_model_call_costs_all_four_token_classes_rounded_up_to_the_micro_dollar():
    tokens = TokenUsage(input_tokens=1000, output_tokens=500, cache_write_tokens=2000, cache_read_tokens=3001)
    usage = Usage.model_call("claude-sonnet-5-5", tokens, on=date(2026, 11, 1))
    # $2 in, $10 out, $2.50 cache write, $0.10 cache read per MTok: 2000 + 5000 + 5000 + 300.1 µ$ → 12,301
    assert usage.cost_micro_usd == 12_301
    assert usage.cost_usd == Decimal("0.012301")
    assert (usage.model_calls, usage.tokens) == (1, tokens)


def test_usage_of_an_item_reads_what_it_counts():
    run = Run(input_tokens=3, output_tokens=4, cost_micro_usd=9, tool_calls=2, agent_seconds=8)
    assert Usage.of(run) == Usage(input_tokens=3, output_tokens=4, cost_micro_usd=9, tool_calls=2, agent_seconds=8)


def test_add_actions_cover_only_what_the_item_counts():
    usage = Usage(runs=1, model_calls=1, input_tokens=5, tool_calls=0)
    run_actions = [str(a.serialize({}, {})) for a in usage.add_actions(Run)]  # a run counts no runs/model_calls
    counter_actions = usage.add_actions(UsageCounter)
    assert len(run_actions) == 1 and len(counter_actions) == 3  # zero quantities add nothing


def test_usage_subtracts_field_by_field():
    assert Usage(runs=1, cost_micro_usd=10, agent_seconds=4) - Usage(cost_micro_usd=3) == Usage(
        runs=1, cost_micro_usd=7, agent_seconds=4)


class RecordedTransaction(TransactWrite):
    """pynamodb's write transaction, recording the updates it is given (by item key) instead of sending them."""

    def __init__(self) -> None:
        super().__init__(connection=None)
        self.updates: list[tuple[str, str]] = []

    def update(self, model, actions, condition=None, return_values=None, *, add_version_condition=True) -> None:
        self.updates.append((model.pk, model.sk))


def test_a_model_call_made_before_midnight_is_counted_in_its_own_day_and_month_one_write_per_counter():
    from datetime import UTC, datetime

    from agenthq.usage import counters

    before, after = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC), datetime(2026, 12, 1, 0, 0, 2, tzinfo=UTC)
    tx = RecordedTransaction()
    counters.count(tx, "W" * 26, Usage(agent_seconds=3), after, 1, earlier=[(Usage(cost_micro_usd=5), before)])
    assert sorted(sk for _, sk in tx.updates) == [
        "DAY#2026-11-30#S#00", "DAY#2026-12-01#S#00", "MONTH#2026-11#S#00", "MONTH#2026-12#S#00"]

    same_day = RecordedTransaction()  # a transaction may not write one item twice: the parts add up first
    counters.count(same_day, "W" * 26, Usage(agent_seconds=3), after, 1,
                   earlier=[(Usage(cost_micro_usd=5), after.replace(second=0))])
    assert sorted(sk for _, sk in same_day.updates) == ["DAY#2026-12-01#S#00", "MONTH#2026-12#S#00"]
