"""API Gateway usage plans, enforced by the local REST API front.

``GatewayUsagePlanMeter`` reads API keys and usage plans from (moto's) API
Gateway — the same keys and plans the handlers create and change through the
``apigateway`` API — and meters each request the way API Gateway does:

- the key must exist, be enabled and belong to a usage plan, else
  ``INVALID_API_KEY`` (403);
- throttle: a token bucket per key, ``burstLimit`` tokens, refilled at
  ``rateLimit`` per second; an empty bucket is ``THROTTLED`` (429);
- quota: admitted calls per key and plan in the current period (``DAY`` = the
  UTC day, ``WEEK`` = the ISO week, ``MONTH`` = the calendar month, all UTC);
  beyond ``limit`` it is ``QUOTA_EXCEEDED`` (429). As on AWS, usage is counted
  per key *and plan*, so a key moved to another plan starts that plan's
  count afresh. A refused call uses neither a token nor quota.

Keys and plans are read as one snapshot (a few list calls), reused for
``cache_seconds`` (1 s by default; API Gateway too applies key and plan changes
after a short delay). A key that the snapshot does not know, or knows without a
plan, triggers an immediate refresh, so a key created a moment ago is found;
concurrent misses share one refresh. A disabled key is refused until the next
refresh sees it enabled.

Counters live in memory: they restart with the process, as moto's API Gateway
state does.

:func:`hold_moto_to_one_plan_per_stage` makes moto's API Gateway as strict as
AWS's about which plans a key may be in (moto itself does not check): a key may
be in several usage plans, but in only one plan for each API stage (AWS's API
Gateway developer guide, "Usage plans and API keys"; docs/decisions.md 170).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from local.apigateway import UsagePlanMeter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanLimits:
    plan_id: str
    rate_limit: float | None  # requests per second; None = no throttle
    burst_limit: int | None
    quota_limit: int | None  # calls per period; None = no quota
    quota_period: str | None  # DAY | WEEK | MONTH


@dataclass(frozen=True)
class GatewayKey:
    key_id: str
    enabled: bool
    plan: PlanLimits | None


@dataclass
class _Snapshot:
    keys: dict[str, GatewayKey]  # key value -> key
    fetched_at: float  # clock() when the fetch started


@dataclass
class _KeyState:
    tokens: float
    refilled_at: float
    plan_id: str
    period: str = ""
    calls: dict[str, int] | None = None  # plan id -> admitted calls in ``period``


class GatewayUsagePlanMeter(UsagePlanMeter):
    """Throttle and quota of API Gateway usage plans, for one process (thread-safe)."""

    def __init__(self, apigateway: Any, *, cache_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], float] = time.time) -> None:
        self.apigateway = apigateway
        self.cache_seconds = cache_seconds
        self.clock = clock  # token buckets and the cache
        self.now = now  # wall clock (unix seconds): which quota period it is
        self._snapshot = _Snapshot(keys={}, fetched_at=float("-inf"))
        self._fetches = 0  # fetches started, under _refresh_lock
        self._refresh_lock = threading.Lock()
        self._lock = threading.Lock()  # buckets and counters
        self._states: dict[str, _KeyState] = {}

    # ------------------------------------------------------------------ UsagePlanMeter

    def admit(self, key_value: str) -> str | None:
        key = self._key(key_value)
        if key is None or not key.enabled or key.plan is None:
            return "INVALID_API_KEY"
        return self._meter(key.key_id, key.plan)

    # ------------------------------------------------------------------ metering

    def _meter(self, key_id: str, plan: PlanLimits) -> str | None:
        tick = self.clock()
        period = _period(plan.quota_period, self.now()) if plan.quota_limit is not None else ""
        with self._lock:
            state = self._states.get(key_id)
            capacity = float(plan.burst_limit or 0)
            if state is None:
                state = self._states[key_id] = _KeyState(tokens=capacity, refilled_at=tick, plan_id=plan.plan_id)
            elif state.plan_id != plan.plan_id:
                # New plan: its rate from now on, never more tokens than its burst.
                state.tokens = min(state.tokens, capacity)
                state.plan_id = plan.plan_id
            if plan.rate_limit is not None:
                elapsed = max(0.0, tick - state.refilled_at)
                state.tokens = min(capacity, state.tokens + elapsed * plan.rate_limit)
            state.refilled_at = max(state.refilled_at, tick)

            if plan.quota_limit is not None:
                if state.period != period or state.calls is None:
                    state.period, state.calls = period, {}
                if state.calls.get(plan.plan_id, 0) >= plan.quota_limit:
                    return "QUOTA_EXCEEDED"
            if plan.rate_limit is not None:
                if state.tokens < 1.0:
                    return "THROTTLED"
                state.tokens -= 1.0
            if plan.quota_limit is not None:
                assert state.calls is not None  # nosec B101  # type narrowing: set with quota_limit
                state.calls[plan.plan_id] = state.calls.get(plan.plan_id, 0) + 1
        return None

    # ------------------------------------------------------------------ keys and plans

    def _key(self, value: str) -> GatewayKey | None:
        key = self._cached(value)
        if key is not None:
            return key
        seen = self._fetches
        with self._refresh_lock:
            if self._fetches == seen:  # nobody fetched since we looked: our turn
                self._fetches += 1
                self._snapshot = self._fetch(self._snapshot)
            # else a fetch that started after our look has finished: use it.
            return self._snapshot.keys.get(value)

    def _cached(self, value: str) -> GatewayKey | None:
        """The key from a fresh snapshot, if that snapshot settles the question."""
        snapshot = self._snapshot
        key = snapshot.keys.get(value)
        if self.clock() - snapshot.fetched_at >= self.cache_seconds or key is None:
            return None
        if key.enabled and key.plan is None:
            return None  # being attached to its plan right now? look again
        return key

    def _fetch(self, previous: _Snapshot) -> _Snapshot:
        started = self.clock()
        try:
            plans: dict[str, PlanLimits] = {}
            for page in self.apigateway.get_paginator("get_usage_plans").paginate():
                for item in page.get("items", []):
                    plans[item["id"]] = _limits(item)
            plan_of: dict[str, PlanLimits] = {}
            for plan_id in sorted(plans):  # a key in two plans (two stages) gets the first
                for page in self.apigateway.get_paginator("get_usage_plan_keys").paginate(usagePlanId=plan_id):
                    for item in page.get("items", []):
                        plan_of.setdefault(item["id"], plans[plan_id])
            keys: dict[str, GatewayKey] = {}
            for page in self.apigateway.get_paginator("get_api_keys").paginate(includeValues=True):
                for item in page.get("items", []):
                    if item.get("value"):
                        keys[item["value"]] = GatewayKey(item["id"], bool(item.get("enabled")),
                                                         plan_of.get(item["id"]))
        except Exception:  # keep metering with what we knew rather than fail every request
            logger.exception("could not read API keys and usage plans; keeping the previous snapshot")
            return previous
        return _Snapshot(keys=keys, fetched_at=started)


_held_to_one_plan_per_stage = False


def hold_moto_to_one_plan_per_stage() -> None:
    """Make moto's ``CreateUsagePlanKey`` and ``DeleteUsagePlanKey`` refuse what API Gateway refuses. Idempotent.

    - a key already in another usage plan that shares an API stage with this one: ``ConflictException``
      (409): "a given API key can only be associated with one usage plan for each stage of your API";
    - a key already in this plan: ``ConflictException`` (the stricter answer; the product's code never
      relies on adding a key twice);
    - an unknown plan: ``NotFoundException`` (moto would make an empty one up);
    - removing a key that is not in the plan, or deleting an unknown plan: ``NotFoundException`` (moto
      fails with a ``KeyError``, which reaches a caller as an internal error).

    Applies to the backend class, so to every way in (the in-process mock and the moto server), in
    every region; plans without API stages (unit tests' own) share no stage and never conflict."""
    global _held_to_one_plan_per_stage
    if _held_to_one_plan_per_stage:
        return
    from moto.apigateway.exceptions import ConflictException, NotFoundException
    from moto.apigateway.models import APIGatewayBackend

    create_key = APIGatewayBackend.create_usage_plan_key
    delete_key = APIGatewayBackend.delete_usage_plan_key
    delete_plan = APIGatewayBackend.delete_usage_plan

    def stages_of(backend: Any, plan_id: str) -> set[tuple[str, str]]:
        plan = backend.usage_plans[plan_id]
        return {(str(s.get("apiId")), str(s.get("stage"))) for s in plan.api_stages or []}

    def create_usage_plan_key(self: Any, usage_plan_id: str, payload: dict[str, Any]) -> Any:
        if usage_plan_id not in self.usage_plans:
            raise NotFoundException("Invalid Usage Plan ID specified")
        key_id = payload.get("keyId")
        if key_id in self.usage_plan_keys.get(usage_plan_id, {}):
            raise ConflictException(f"Usage Plan {usage_plan_id} already contains API Key {key_id}")
        stages = stages_of(self, usage_plan_id)
        for other_id, keys in self.usage_plan_keys.items():
            if other_id == usage_plan_id or key_id not in keys or other_id not in self.usage_plans:
                continue
            shared = stages & stages_of(self, other_id)
            if shared:
                api_id, stage = sorted(shared)[0]
                raise ConflictException(
                    f"Usage Plan {usage_plan_id} cannot be added because API Key {key_id} cannot reference "
                    f"multiple Usage Plans with the same API Stage: {api_id}:{stage}")
        return create_key(self, usage_plan_id, payload)

    def delete_usage_plan_key(self: Any, usage_plan_id: str, key_id: str) -> None:
        if key_id not in self.usage_plan_keys.get(usage_plan_id, {}):
            raise NotFoundException("Invalid Usage Plan Key identifier specified")
        delete_key(self, usage_plan_id, key_id)

    def delete_usage_plan(self: Any, usage_plan_id: str) -> None:
        if usage_plan_id not in self.usage_plans:
            raise NotFoundException("Invalid Usage Plan ID specified")
        delete_plan(self, usage_plan_id)
        self.usage_plan_keys.pop(usage_plan_id, None)  # its keys are in it no more

    APIGatewayBackend.create_usage_plan_key = create_usage_plan_key  # type: ignore[method-assign]
    APIGatewayBackend.delete_usage_plan_key = delete_usage_plan_key  # type: ignore[method-assign]
    APIGatewayBackend.delete_usage_plan = delete_usage_plan  # type: ignore[method-assign]
    _held_to_one_plan_per_stage = True


def _limits(plan: dict[str, Any]) -> PlanLimits:
    throttle = plan.get("throttle") or {}
    quota = plan.get("quota") or {}
    rate = throttle.get("rateLimit")
    burst = throttle.get("burstLimit")
    limit = quota.get("limit")
    return PlanLimits(
        plan_id=plan["id"],
        rate_limit=float(rate) if rate is not None else None,
        burst_limit=int(burst) if burst is not None else (int(float(rate)) if rate is not None else None),
        quota_limit=int(limit) if limit is not None else None,  # moto keeps a patched limit as a string
        quota_period=str(quota.get("period") or "DAY") if limit is not None else None,
    )


def _period(kind: str | None, unix_seconds: float) -> str:
    day = datetime.fromtimestamp(unix_seconds, tz=timezone.utc).date()
    if kind == "WEEK":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == "MONTH":
        return f"{day.year}-{day.month:02d}"
    return day.isoformat()
