"""A workspace's month of cost against its price, for the operator.

Model cost comes from the workspace's month usage counters (``UsageCounter``
items ``MONTH#<yyyy-mm>#S#<n>``, write-sharded; one Query sums the shards).
Infrastructure cost (the modelled AWS cost of the runs' steps, metered by
``agenthq.usage.infra``) is in the same counters, added when each run ends.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from agenthq.errors import InvalidRequest
from agenthq.pricing import MICRO_DOLLAR as MICRO
from agenthq.pricing import usd
from agenthq.tiers import TierLimits
from agenthq.usage import Usage, counters


def month_of(now: datetime, month: str | None) -> str:
    """``month`` (``YYYY-MM``) checked, or the current UTC month."""
    if month is None:
        return f"{now:%Y-%m}"
    try:
        datetime.strptime(month, "%Y-%m")
    except ValueError:
        raise InvalidRequest(details=[{"field": "month", "in": "query", "message": "must be YYYY-MM"}]) from None
    return month


def month_usage(workspace_id: str, month: str) -> Usage:
    """The workspace's month counters, summed over their shards (one Query)."""
    return counters.read(workspace_id, f"MONTH#{month}")


def cost_against_price(workspace_id: str, month: str, limits: TierLimits) -> dict[str, Any]:
    """The month's model + infrastructure cost of a workspace against its price."""
    usage = month_usage(workspace_id, month)
    infra = usage.infra_micro_usd
    price = int(limits.price_usd_per_month / MICRO)
    cost = usage.cost_micro_usd + infra
    return {
        "month": month,
        "price_usd": usd(price),
        "model_cost_usd": usd(usage.cost_micro_usd),
        "infra_cost_usd": usd(infra),
        "cost_usd": usd(cost),
        "margin_usd": usd(price - cost),
        "cost_percent_of_price": (str((Decimal(cost) * 100 / price).quantize(Decimal("0.1"))) if price else None),
        "usage": {name: value for name, value in usage.view().items() if name not in ("cost_micro_usd", "infra_micro_usd")},
    }
