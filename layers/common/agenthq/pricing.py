"""The model price table and the cost of a model call.

Prices are Anthropic's list prices in USD per million tokens (MTok) for the
four token classes the Messages API reports: input, output, cache write
(``cache_creation_input_tokens``, priced at the 5-minute TTL rate, which is
what the agent loop uses) and cache read (``cache_read_input_tokens``).

Each row has an ``effective`` date: the first day it applies (a model's launch
day for its first row). A price change is a new row, never an edit, so the cost
of past usage can always be recomputed. :func:`price_for` picks the newest row
effective on the day asked for.

Some models price a request by its prompt length (Claude Haiku 5.5: prompts of
more than 100,000 tokens pay higher rates on every token of that request,
output included). A row carries that as ``long_prompt``; :func:`cost_usd`
applies it per call, counting input + cache write + cache read as the prompt.

Sources (checked 2026-11-26): platform.claude.com/docs model overview pages
(Opus 5.5, Opus 5, Sonnet 5.5, Sonnet 5, Haiku 5.5) and the pricing page
(Fable 5.1, Haiku 4.5). The Sonnet 5.5 cache-read cut of 2026-10-07 and the
Fable 5.2 rates come from third-party price trackers that quote the pricing
page; re-check them against https://platform.claude.com/docs/en/about-claude/pricing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, Decimal

from agenthq.errors import InvalidRequest

MILLION = Decimal(1_000_000)
MICRO_DOLLAR = Decimal("0.000001")


@dataclass(frozen=True)
class Rates:
    """USD per million tokens for each token class."""

    input: Decimal
    output: Decimal
    cache_write: Decimal
    cache_read: Decimal


@dataclass(frozen=True)
class LongPromptRates:
    """Rates for a request whose prompt is longer than ``threshold_tokens``."""

    threshold_tokens: int
    rates: Rates


@dataclass(frozen=True)
class ModelPrice:
    """One row of the price table."""

    model: str
    effective: date
    input: Decimal
    output: Decimal
    cache_write: Decimal
    cache_read: Decimal
    long_prompt: LongPromptRates | None = None

    def rates_for(self, prompt_tokens: int) -> Rates:
        """The rates of a request whose prompt has ``prompt_tokens`` tokens."""
        if self.long_prompt is not None and prompt_tokens > self.long_prompt.threshold_tokens:
            return self.long_prompt.rates
        return Rates(self.input, self.output, self.cache_write, self.cache_read)


def _row(
    model: str, effective: str, input: str, output: str, cache_write: str, cache_read: str,
    long_prompt: LongPromptRates | None = None,
) -> ModelPrice:
    return ModelPrice(
        model, date.fromisoformat(effective),
        Decimal(input), Decimal(output), Decimal(cache_write), Decimal(cache_read), long_prompt,
    )


_HAIKU_5_5_LONG_PROMPT = LongPromptRates(
    threshold_tokens=100_000,
    rates=Rates(input=Decimal("0.50"), output=Decimal("2.50"), cache_write=Decimal("0.625"), cache_read=Decimal("0.05")),
)

#: model, effective, input, output, cache write (5 min), cache read — USD per MTok.
PRICE_TABLE: tuple[ModelPrice, ...] = (
    _row("claude-fable-5-2", "2026-11-09", "8", "40", "10", "0.20"),
    _row("claude-fable-5-1", "2026-09-01", "10", "50", "12.50", "0.25"),
    _row("claude-opus-5-5", "2026-09-22", "4", "20", "5", "0.20"),
    _row("claude-opus-5", "2026-07-24", "5", "25", "6.25", "0.50"),
    _row("claude-sonnet-5-5", "2026-09-28", "2", "10", "2.50", "0.20"),
    _row("claude-sonnet-5-5", "2026-10-07", "2", "10", "2.50", "0.10"),
    _row("claude-sonnet-5", "2026-06-30", "2", "10", "2.50", "0.20"),
    _row("claude-haiku-5-5", "2026-10-07", "0.10", "0.50", "0.125", "0.01", _HAIKU_5_5_LONG_PROMPT),
    _row("claude-haiku-4-5", "2025-10-01", "1", "5", "1.25", "0.10"),
    _row("claude-haiku-4-5-20251001", "2025-10-01", "1", "5", "1.25", "0.10"),
)

KNOWN_MODELS: tuple[str, ...] = tuple(dict.fromkeys(row.model for row in PRICE_TABLE))

#: The model agents use unless they name another: the current Sonnet.
DEFAULT_MODEL = "claude-sonnet-5-5"


def _unknown(model: str) -> InvalidRequest:
    return InvalidRequest(
        f"Unknown model '{model}'.",
        details=[{"field": "model", "message": f"must be one of: {', '.join(KNOWN_MODELS)}"}],
    )


def price_for(model: str, on: date | None = None) -> ModelPrice:
    """The price row of ``model`` in effect on ``on`` (default: today, UTC)."""
    rows = [row for row in PRICE_TABLE if row.model == model]
    if not rows:
        raise _unknown(model)
    day = on or datetime.now(UTC).date()
    effective = [row for row in rows if row.effective <= day]
    if not effective:
        raise InvalidRequest(f"Model '{model}' has no price before {min(r.effective for r in rows).isoformat()}.")
    return max(effective, key=lambda row: row.effective)


def cost_usd(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_write_tokens: int = 0,
    cache_read_tokens: int = 0,
    *,
    on: date | None = None,
) -> Decimal:
    """The USD cost of one model call, rounded up to the micro-dollar.

    Rounding up (never down) keeps metered cost at or above what Anthropic bills.
    """
    counts = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_write_tokens": cache_write_tokens,
        "cache_read_tokens": cache_read_tokens,
    }
    for name, count in counts.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise InvalidRequest(
                f"{name} must be a non-negative integer.",
                details=[{"field": name, "message": "must be a non-negative integer"}],
            )
    rates = price_for(model, on).rates_for(input_tokens + cache_write_tokens + cache_read_tokens)
    total = (
        input_tokens * rates.input
        + output_tokens * rates.output
        + cache_write_tokens * rates.cache_write
        + cache_read_tokens * rates.cache_read
    ) / MILLION
    return total.quantize(MICRO_DOLLAR, rounding=ROUND_CEILING)


def usd(micro_usd: int) -> str:
    """Micro-dollars as the API shows money: a decimal string of dollars with 6 places."""
    return str((Decimal(micro_usd) * MICRO_DOLLAR).quantize(MICRO_DOLLAR))
