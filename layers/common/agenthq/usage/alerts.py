"""Alerts at 80% and 100% of each limit, exactly once per limit per period.

After a write moves a limited quantity, :func:`check` compares it with the
limit; crossing a threshold creates the ``Alert`` item on the condition that
it does not exist, so when many runs cross it together one of them creates it
and tells the operator (an ``agenthq.usage.alert`` event on the EventBridge
bus). The stored alert is what ``GET …/alerts`` lists (newest first, through
its gsi1 entry ``WS#<id>#ALERTS`` / ``ALERT#<at>``) and what live status will
deliver to the workspace as a ``usage.alert`` event.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import PutError

from agenthq.observability import BUDGET_ALERTS, USAGE_ALERTS, count, logger
from agenthq.pagination import Page, page
from agenthq.store.items import Alert
from agenthq.usage.quota import BUDGET

if TYPE_CHECKING:
    from agenthq.adapters.events import OperatorEvents

THRESHOLDS = (80, 100)
DETAIL_TYPE = "agenthq.usage.alert"


def alert_view(alert: Alert) -> dict[str, Any]:
    view = {"id": alert.sk.removeprefix("ALERT#"), "limit": alert.limit, "threshold_percent": int(alert.threshold),
            "period": alert.period, "used": int(alert.used), "allowed": int(alert.allowed),
            "at": alert.at.isoformat()}
    if alert.schedule_id:  # a schedule's fire refused by the limit
        view |= {"schedule_id": alert.schedule_id, "reason": alert.reason}
    return view


def check(events: OperatorEvents, workspace_id: str, limit: str, used: int, allowed: int, period: str,
          at: datetime) -> list[Alert]:
    """Create the alerts ``used`` of ``allowed`` crosses (once each); returns the ones this call created."""
    created = []
    for threshold in THRESHOLDS:
        if allowed <= 0 or used * 100 < allowed * threshold:
            continue
        alert = Alert(*Alert.key(workspace_id, period, limit, threshold), limit=limit, threshold=threshold,
                      period=period, used=used, allowed=allowed, at=at,
                      gsi1pk=Alert.timeline(workspace_id), gsi1sk=f"ALERT#{at:%Y-%m-%dT%H:%M:%S.%fZ}")
        try:
            alert.save(condition=Alert.pk.does_not_exist())
        except PutError:
            continue  # another writer crossed it first: it alerted
        created.append(alert)
        count(USAGE_ALERTS)
        if limit == BUDGET:
            count(BUDGET_ALERTS)  # the operator's alarm: a workspace is near or at its model budget
    for alert in created:
        try:
            events.publish(DETAIL_TYPE, {"workspace_id": workspace_id, **alert_view(alert)})
        except Exception:  # noqa: BLE001 - the stored alert stands; the operator's copy is best effort
            logger.exception("could not publish a usage alert", extra={"workspace_id": workspace_id})
    return created


def skipped_fire(events: OperatorEvents, workspace_id: str, schedule_id: str, limit: str, reason: str,
                 used: int, allowed: int, period: str, at: datetime) -> Alert | None:
    """A schedule's fire refused by ``limit``: alerted once per schedule, limit and period (a schedule
    that fires every few minutes into a used-up limit alerts once, not at every fire). Returns the
    alert this call created."""
    alert = Alert(*Alert.key(workspace_id, period, f"{limit}#SCHEDULE#{schedule_id}", 100), limit=limit,
                  threshold=100, period=period, used=used, allowed=allowed, at=at, schedule_id=schedule_id,
                  reason=reason, gsi1pk=Alert.timeline(workspace_id), gsi1sk=f"ALERT#{at:%Y-%m-%dT%H:%M:%S.%fZ}")
    try:
        alert.save(condition=Alert.pk.does_not_exist())
    except PutError:
        return None
    count(USAGE_ALERTS)
    try:
        events.publish(DETAIL_TYPE, {"workspace_id": workspace_id, **alert_view(alert)})
    except Exception:  # noqa: BLE001 - the stored alert stands; the operator's copy is best effort
        logger.exception("could not publish a usage alert", extra={"workspace_id": workspace_id})
    return alert


def list_alerts(workspace_id: str, cursor: str | None, limit: int) -> Page:
    """The workspace's alerts, newest first (gsi1 ``WS#<id>#ALERTS``, by ``at``)."""
    partition = Alert.timeline(workspace_id)
    return page(lambda start: Alert.gsi1.query(partition, Alert.gsi1sk.startswith("ALERT#"),
                                               scan_index_forward=False, limit=limit, last_evaluated_key=start),
                alert_view, cursor, partition=partition, sk_prefix="ALERT#", index="gsi1")
