"""The tier table matches DESIGN.md §5; enterprise is pro plus validated overrides."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from agenthq.errors import InvalidRequest
from agenthq.tiers import TIERS, Tier, TierLimits, limits_for

# DESIGN.md §5: agents, runs/day, concurrent, tokens/month, budget/month, rps, burst, calls/day, price;
# §9: live connections; MCP servers (§9) and MCP calls per run (decision 263)
MCP = {"free": (1, 20), "starter": (5, 50), "pro": (20, 100)}
DESIGN_TABLE = {
    "free": (3, 50, 1, 200_000, "1", 5, 10, 1_000, "0", 10),
    "starter": (10, 400, 5, 5_000_000, "15", 20, 40, 20_000, "49", 100),
    "pro": (50, 2_000, 25, 20_000_000, "40", 100, 200, 200_000, "149", 500),
}
# §9's other columns, by name
DESIGN_SECTION_9 = {
    "free": {"webhooks": 2},
    "starter": {"webhooks": 10},
    "pro": {"webhooks": 50},
}

PENDING_APPROVALS = {"free": 10, "starter": 100, "pro": 1_000}  # DESIGN §9's limits table


@pytest.mark.parametrize("tier", list(DESIGN_TABLE))
def test_tier_numbers_match_the_design(tier):
    agents, runs, concurrent, tokens, budget, rps, burst, calls, price, live = DESIGN_TABLE[tier]
    expected = dict(
        max_agents=agents, runs_per_day=runs, concurrent_runs=concurrent, tokens_per_month=tokens,
        budget_usd_per_month=Decimal(budget), api_rps=rps, api_burst=burst, api_calls_per_day=calls,
        live_connections=live, pending_approvals=PENDING_APPROVALS[tier], price_usd_per_month=Decimal(price),
        **DESIGN_SECTION_9[tier],
        mcp_servers=MCP[tier][0], mcp_calls_per_run=MCP[tier][1],
    )
    # the columns of this table (the other §9 columns have tests of their own: test_schedules_cron.py …)
    assert limits_for(tier).model_dump(include=set(expected)) == TierLimits(**expected).model_dump(include=set(expected))


def test_money_is_decimal():
    for limits in TIERS.values():
        assert isinstance(limits.budget_usd_per_month, Decimal)
        assert isinstance(limits.price_usd_per_month, Decimal)


def test_tiers_accept_the_enum_or_its_value():
    assert limits_for(Tier.starter) is limits_for("starter") is TIERS[Tier.starter]
    assert set(TIERS) == {Tier.free, Tier.starter, Tier.pro}


def test_enterprise_without_overrides_is_pro():
    assert limits_for(Tier.enterprise) == TIERS[Tier.pro]
    assert limits_for("enterprise", {}) == TIERS[Tier.pro]


def test_enterprise_overrides_apply_on_top_of_pro():
    limits = limits_for("enterprise", {"max_agents": 500, "budget_usd_per_month": "2500.50", "api_rps": 1000})
    assert limits.max_agents == 500
    assert limits.budget_usd_per_month == Decimal("2500.50")
    assert limits.api_rps == 1000
    assert limits.runs_per_day == TIERS[Tier.pro].runs_per_day
    assert TIERS[Tier.pro].max_agents == 50, "the pro row itself is untouched"


def test_overrides_are_ignored_for_the_fixed_tiers():
    assert limits_for("free", {"max_agents": 1000}) == TIERS[Tier.free]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_agentz": 5}, "max_agentz"),
        ({"runs_per_day": -1}, "runs_per_day"),
        ({"budget_usd_per_month": Decimal("-0.01")}, "budget_usd_per_month"),
        ({"concurrent_runs": True}, "concurrent_runs"),
        ({"tokens_per_month": [1]}, "tokens_per_month"),
        ({"api_burst": "lots"}, "api_burst"),
        ({"max_agents": 1.5}, "max_agents"),
    ],
)
def test_invalid_overrides_are_refused(overrides, field):
    with pytest.raises(InvalidRequest) as caught:
        limits_for("enterprise", overrides)
    assert [d["field"] for d in caught.value.details] == [field]


def test_unknown_tier_is_invalid_request():
    with pytest.raises(InvalidRequest, match="Unknown tier 'gold'"):
        limits_for("gold")


def test_limits_are_frozen():
    with pytest.raises(ValidationError):
        TIERS[Tier.free].max_agents = 100  # type: ignore[misc]


def test_enterprise_price_is_the_contracts():
    assert limits_for("enterprise").price_usd_per_month == TIERS[Tier.pro].price_usd_per_month
    assert limits_for("enterprise", {"price_usd_per_month": "4800"}).price_usd_per_month == Decimal("4800")
