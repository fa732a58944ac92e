"""The price table: exact Decimal costs for every token class, and effective dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from agenthq.errors import InvalidRequest
from agenthq.pricing import DEFAULT_MODEL, KNOWN_MODELS, PRICE_TABLE, cost_usd, price_for

NOV = date(2026, 11, 26)
MTOK = 1_000_000


def test_current_models_are_known_and_the_default_is_the_current_sonnet():
    for model in ("claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "claude-fable-5-2", "claude-haiku-4-5"):
        assert model in KNOWN_MODELS
    assert DEFAULT_MODEL == "claude-sonnet-5-5"


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        ({"input_tokens": MTOK, "output_tokens": 0}, "4.000000"),
        ({"input_tokens": 0, "output_tokens": MTOK}, "20.000000"),
        ({"input_tokens": 0, "output_tokens": 0, "cache_write_tokens": MTOK}, "5.000000"),
        ({"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": MTOK}, "0.200000"),
    ],
)
def test_each_token_class_has_its_own_rate(tokens, expected):
    cost = cost_usd("claude-opus-5-5", on=NOV, **tokens)
    assert isinstance(cost, Decimal)
    assert str(cost) == expected


def test_a_mixed_call_is_exact_and_rounded_up_to_the_micro_dollar():
    # 1,234 × $4 + 567 × $20 + 8,901 × $5 + 23,456 × $0.20 = $65,472.2 per million tokens
    cost = cost_usd("claude-opus-5-5", 1_234, 567, 8_901, 23_456, on=NOV)
    assert cost == Decimal("0.065473")
    assert str(cost) == "0.065473"


def test_small_calls_never_round_to_free():
    assert cost_usd("claude-sonnet-5-5", 1, 0, on=NOV) == Decimal("0.000002")
    assert cost_usd("claude-sonnet-5-5", 0, 0, on=NOV) == Decimal("0")


def test_the_newest_row_effective_on_the_day_is_used():
    before_cut = price_for("claude-sonnet-5-5", date(2026, 10, 6))
    after_cut = price_for("claude-sonnet-5-5", date(2026, 10, 7))
    assert (before_cut.effective, before_cut.cache_read) == (date(2026, 9, 28), Decimal("0.20"))
    assert (after_cut.effective, after_cut.cache_read) == (date(2026, 10, 7), Decimal("0.10"))
    assert cost_usd("claude-sonnet-5-5", 0, 0, 0, MTOK, on=date(2026, 10, 6)) == Decimal("0.2")
    assert cost_usd("claude-sonnet-5-5", 0, 0, 0, MTOK, on=date(2027, 1, 1)) == Decimal("0.1")


def test_the_default_day_is_today_utc():
    assert price_for("claude-sonnet-5-5") == price_for("claude-sonnet-5-5", datetime.now(UTC).date())


def test_a_day_before_the_first_price_is_refused():
    with pytest.raises(InvalidRequest, match="no price before 2026-09-28"):
        price_for("claude-sonnet-5-5", date(2026, 9, 27))


def test_long_prompts_switch_every_rate_of_the_request():
    # Haiku 5.5: prompts (input + cache write + cache read) over 100,000 tokens pay the higher band.
    assert cost_usd("claude-haiku-5-5", 100_000, 0, on=NOV) == Decimal("0.01")
    assert cost_usd("claude-haiku-5-5", 100_001, 0, on=NOV) == Decimal("0.050001")
    # 90,000 × $0.50 + 1,000 × $2.50 + 20,000 × $0.05 (prompt = 110,000 tokens)
    assert cost_usd("claude-haiku-5-5", 90_000, 1_000, 0, 20_000, on=NOV) == Decimal("0.0485")
    # The same tokens in a short prompt: 50,000 × $0.10 + 1,000 × $0.50 + 20,000 × $0.01
    assert cost_usd("claude-haiku-5-5", 50_000, 1_000, 0, 20_000, on=NOV) == Decimal("0.0057")


def test_unknown_model_is_invalid_request():
    with pytest.raises(InvalidRequest, match="Unknown model 'gpt-4'") as caught:
        cost_usd("gpt-4", 1, 1)
    assert caught.value.details[0]["field"] == "model"
    with pytest.raises(InvalidRequest):
        price_for("claude-sonnet")


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10", None])
def test_token_counts_must_be_non_negative_integers(bad):
    with pytest.raises(InvalidRequest, match="non-negative integer"):
        cost_usd(DEFAULT_MODEL, 10, bad, on=NOV)


def test_table_is_consistent():
    seen = set()
    for row in PRICE_TABLE:
        assert (row.model, row.effective) not in seen, "one row per model and day"
        seen.add((row.model, row.effective))
        assert all(isinstance(v, Decimal) for v in (row.input, row.output, row.cache_write, row.cache_read))
        # Anthropic prices 5-minute cache writes at 1.25 × the input rate; a typo breaks this.
        assert row.cache_write == row.input * Decimal("1.25")
        assert row.cache_read < row.input < row.output
        if row.long_prompt is not None:
            assert row.long_prompt.rates.cache_write == row.long_prompt.rates.input * Decimal("1.25")
