"""The usage vector: pure values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import date
from decimal import Decimal
from typing import Any, Self

from agenthq import pricing


class _Counts:
    """Integer quantities that add up field by field."""

    def __add__(self, other: Self) -> Self:
        return type(self)(**{name: value + getattr(other, name) for name, value in self.view().items()})

    def __sub__(self, other: Self) -> Self:
        return type(self)(**{name: value - getattr(other, name) for name, value in self.view().items()})

    def view(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class TokenUsage(_Counts):
    """Tokens of one model call, in the four classes the price table bills."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def total(self) -> int:
        """Every token of the call: what ``tokens_per_month`` counts."""
        return self.input_tokens + self.output_tokens + self.cache_write_tokens + self.cache_read_tokens

    def cost_usd(self, model: str, on: date | None = None) -> Decimal:
        """What these tokens cost on ``model`` (rounded up to the micro-dollar)."""
        return pricing.cost_usd(model, self.input_tokens, self.output_tokens, self.cache_write_tokens,
                                self.cache_read_tokens, on=on)


@dataclass(frozen=True)
class Usage(_Counts):
    """Every metered quantity. Money is integer micro-dollars (exact sums)."""

    runs: int = 0
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_micro_usd: int = 0
    tool_calls: int = 0
    agent_seconds: int = 0
    infra_micro_usd: int = 0  # the modelled AWS cost of the run's steps (agenthq.usage.infra)
    api_calls: int = 0  # WebSocket messages (agenthq.live.limits); REST calls are counted by the gateway

    @classmethod
    def model_call(cls, model: str, tokens: TokenUsage, on: date | None = None) -> Usage:
        """One model call: its tokens and their cost."""
        micro = int(tokens.cost_usd(model, on) / pricing.MICRO_DOLLAR)
        return cls(model_calls=1, cost_micro_usd=micro, **tokens.view())

    @classmethod
    def of(cls, item: Any) -> Usage:
        """The quantities an item counts (a run, a counter); absent ones are 0."""
        return cls(**{f.name: int(getattr(item, f.name, 0) or 0) for f in fields(cls)})

    @property
    def tokens(self) -> TokenUsage:
        return TokenUsage(self.input_tokens, self.output_tokens, self.cache_write_tokens, self.cache_read_tokens)

    @property
    def cost_usd(self) -> Decimal:
        return Decimal(self.cost_micro_usd) * pricing.MICRO_DOLLAR

    @property
    def infra_cost_usd(self) -> Decimal:
        return Decimal(self.infra_micro_usd) * pricing.MICRO_DOLLAR

    def without_infra(self) -> Usage:
        """The same usage with no infrastructure cost (the workspace counts a run's infra once, at its end)."""
        return replace(self, infra_micro_usd=0)

    def add_actions(self, item_class: type[Any]) -> list[Any]:
        """DynamoDB ADD actions for the non-zero quantities ``item_class`` counts
        (a run has no ``runs`` or ``model_calls``: its ``steps`` are its model calls)."""
        counted = item_class.get_attributes()
        return [getattr(item_class, name).add(value) for name, value in self.view().items()
                if value and name in counted]
