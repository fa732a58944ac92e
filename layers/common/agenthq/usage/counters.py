"""A workspace's usage counters: one per day and one per month, write-sharded.

Counting adds to a random shard of each period (``WS#<id>#USAGE``, sk
``<DAY|MONTH>#<date>#S#<shard>``), so many runs of one workspace never make one
hot item; reading a period sums its shards with one Query.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from agenthq.store.base import ws_pk
from agenthq.store.items import UsageCounter
from agenthq.usage.vector import Usage


def day(at: datetime) -> str:
    return f"DAY#{at:%Y-%m-%d}"


def month(at: datetime) -> str:
    return f"MONTH#{at:%Y-%m}"


def day_start(at: datetime) -> datetime:
    return datetime.combine(at.date(), time(), UTC)


def month_start(at: datetime) -> datetime:
    return datetime.combine(at.date().replace(day=1), time(), UTC)


def next_day(at: datetime) -> datetime:
    """When the day of ``at`` resets: the next midnight, UTC."""
    return day_start(at) + timedelta(days=1)


def next_month(at: datetime) -> datetime:
    """When the month of ``at`` resets: the first of the next month, 00:00 UTC."""
    start = month_start(at)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def count(tx: Any, workspace_id: str, usage: Usage, at: datetime, shards: int,
          earlier: Iterable[tuple[Usage, datetime]] = ()) -> None:
    """Add ``usage`` to the workspace's day and month counters of ``at`` in
    transaction ``tx`` — and each of ``earlier`` (a usage, and when it counts:
    a model call, when it was made) to its own day's and month's (one write per
    counter: a transaction may not write an item twice)."""
    by_period: dict[str, Usage] = {}
    for part, when in ((usage, at), *earlier):
        for period in (day(when), month(when)):
            by_period[period] = by_period.get(period, Usage()) + part
    shard = random.randrange(shards)  # nosec B311  # spreads writes over shards, not a secret
    for period, total in by_period.items():
        actions = total.add_actions(UsageCounter)
        if not actions:
            continue
        counter = UsageCounter(*UsageCounter.key(workspace_id, period, shard))
        tx.update(counter, actions=[*actions, UsageCounter.period.set(period), UsageCounter.type.set(UsageCounter)])


def read(workspace_id: str, period: str) -> Usage:
    """The period's usage (``day(at)`` or ``month(at)``): the sum of its shards."""
    total = Usage()
    for shard in UsageCounter.query(ws_pk(workspace_id, "USAGE"), UsageCounter.sk.startswith(f"{period}#S#"),
                                    consistent_read=True):
        total += Usage.of(shard)
    return total


def read_days(workspace_id: str, first: date, last: date) -> dict[date, Usage]:
    """The usage of each day from ``first`` to ``last`` (inclusive) that counted
    anything: one Query over the days' shards (``DAY#<first>`` … ``DAY#<last>#S#…``)."""
    by_day: dict[date, Usage] = {}
    for shard in UsageCounter.query(ws_pk(workspace_id, "USAGE"),
                                    UsageCounter.sk.between(f"DAY#{first:%Y-%m-%d}#", f"DAY#{last:%Y-%m-%d}#~"),
                                    consistent_read=True):
        day_ = date.fromisoformat(shard.period.removeprefix("DAY#"))
        by_day[day_] = by_day.get(day_, Usage()) + Usage.of(shard)
    return by_day
