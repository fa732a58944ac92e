"""The tier table: what each plan allows (DESIGN.md §5).

This is the one table in code. The API Gateway usage plans in template.yaml
carry the same ``api_rps`` / ``api_burst`` / ``api_calls_per_day`` numbers, and a
test checks that they agree.

Enterprise has no row of its own: it is the pro limits with per-workspace
overrides applied (:func:`limits_for`) — its price is the contract's, set as
the ``price_usd_per_month`` override (until it is set, the pro price stands in).
Overrides are ignored for the other tiers, so a workspace that moves down from
enterprise simply gets its new tier's limits. Only the operator sets a tier or
overrides (``agenthq.admin``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agenthq.errors import InvalidRequest


class Tier(str, Enum):
    free = "free"
    starter = "starter"
    pro = "pro"
    enterprise = "enterprise"


class TierLimits(BaseModel):
    """The limits of one tier; every number is a ceiling per workspace."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_agents: int = Field(ge=0)
    runs_per_day: int = Field(ge=0)
    concurrent_runs: int = Field(ge=0)
    tokens_per_month: int = Field(ge=0)
    budget_usd_per_month: Decimal = Field(ge=0)
    api_rps: int = Field(ge=0)
    api_burst: int = Field(ge=0)
    api_calls_per_day: int = Field(ge=0)
    live_connections: int = Field(ge=0)  # open WebSocket connections at once (DESIGN §9)
    pending_approvals: int = Field(ge=0)  # tool calls waiting for a person's decision at once (DESIGN §9)
    webhooks: int = Field(ge=0)  # webhook endpoints registered at once (DESIGN §9)
    # Schedules (DESIGN §9): how many, and the shortest gap a schedule's cron may leave between two fires.
    schedules: int = Field(default=0, ge=0)
    schedule_min_interval_seconds: int = Field(default=3600, ge=60)
    mcp_servers: int = Field(ge=0)  # registered MCP servers (DESIGN §9)
    mcp_calls_per_run: int = Field(ge=0)  # MCP tool calls one run may make (decision 263)
    price_usd_per_month: Decimal = Field(ge=0)


TIERS: dict[Tier, TierLimits] = {
    Tier.free: TierLimits(
        max_agents=3, runs_per_day=50, concurrent_runs=1, tokens_per_month=200_000,
        budget_usd_per_month=Decimal("1"), api_rps=5, api_burst=10, api_calls_per_day=1_000, live_connections=10,
        pending_approvals=10,
        webhooks=2,
        schedules=1, schedule_min_interval_seconds=3600, mcp_servers=1, mcp_calls_per_run=20,
        price_usd_per_month=Decimal("0"),
    ),
    Tier.starter: TierLimits(
        # 400 runs a day, not 500: at 5 s per model call its worst case would be 40.01% of its price (decision 184)
        max_agents=10, runs_per_day=400, concurrent_runs=5, tokens_per_month=5_000_000,
        budget_usd_per_month=Decimal("15"), api_rps=20, api_burst=40, api_calls_per_day=20_000, live_connections=100,
        pending_approvals=100,
        webhooks=10,
        schedules=10, schedule_min_interval_seconds=300, mcp_servers=5, mcp_calls_per_run=50,
        price_usd_per_month=Decimal("49"),
    ),
    Tier.pro: TierLimits(
        max_agents=50, runs_per_day=2_000, concurrent_runs=25, tokens_per_month=20_000_000,
        budget_usd_per_month=Decimal("40"), api_rps=100, api_burst=200, api_calls_per_day=200_000, live_connections=500,
        pending_approvals=1_000,
        webhooks=50,
        schedules=50, schedule_min_interval_seconds=300, mcp_servers=20, mcp_calls_per_run=100,
        price_usd_per_month=Decimal("149"),
    ),
}

LIMIT_NAMES: tuple[str, ...] = tuple(TierLimits.model_fields)


def limits_for(tier: Tier | str, overrides: Mapping[str, Any] | None = None) -> TierLimits:
    """The limits of ``tier``; for enterprise, the pro limits with ``overrides`` applied."""
    try:
        tier = Tier(tier)
    except ValueError:
        raise InvalidRequest(
            f"Unknown tier '{tier}'.",
            details=[{"field": "tier", "message": f"must be one of: {', '.join(t.value for t in Tier)}"}],
        ) from None
    if tier is not Tier.enterprise:
        return TIERS[tier]
    return apply_overrides(TIERS[Tier.pro], overrides or {})


def apply_overrides(base: TierLimits, overrides: Mapping[str, Any]) -> TierLimits:
    """``base`` with ``overrides`` applied; each must name a limit and be a non-negative number."""
    details = []
    for name, value in overrides.items():
        if name not in TierLimits.model_fields:
            details.append({"field": name, "message": "is not a tier limit"})
        elif isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
            details.append({"field": name, "message": "must be a number"})
    if details:
        raise InvalidRequest("Invalid tier overrides.", details=details)
    try:
        return TierLimits.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        raise InvalidRequest(
            "Invalid tier overrides.",
            details=[{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()],
        ) from None
