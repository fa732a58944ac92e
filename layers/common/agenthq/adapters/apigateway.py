"""API Gateway keys: one per workspace, bound to its tier's usage plan.

The key's value is the workspace's ``usage_key``; the authorizer returns it as
``usageIdentifierKey`` and API Gateway meters the request against the plan.
Clients never see it (they authenticate with JWTs or AgentHQ API keys).

An enterprise workspace whose overrides change the API rate, burst or daily
quota gets a usage plan of its own (:meth:`ApiGatewayKeys.ensure_workspace_plan`),
on the same API stages as its tier's plan, and its key moves there.

API Gateway keeps a key in at most one usage plan per API stage, and every plan
here is on the REST API's one stage: a key is in exactly one plan, and moving it
is detach, then attach (:meth:`ApiGatewayKeys.move_key`; docs/decisions.md 170).
"""

from __future__ import annotations

from typing import Any, Protocol

from agenthq.errors import Conflict


class GatewayKeys(Protocol):
    def create_key(self, workspace_id: str, value: str, tier: str) -> str: ...
    def ensure_key(self, workspace_id: str, value: str, tier: str) -> str: ...
    def delete_key(self, key_id: str) -> None: ...
    def tier_plan(self, tier: str) -> str: ...
    def move_key(self, key_id: str, from_plan: str, to_plan: str) -> None: ...
    def ensure_workspace_plan(self, workspace_id: str, tier: str, rate: float, burst: int, quota: int) -> str: ...
    def delete_plan(self, plan_id: str) -> None: ...


class ApiGatewayKeys:
    def __init__(self, client: Any, plan_ids: dict[str, str]) -> None:
        self.client = client
        self.plan_ids = plan_ids

    def tier_plan(self, tier: str) -> str:
        """The usage plan of a tier (enterprise: the pro plan)."""
        try:
            return self.plan_ids[tier]
        except KeyError:
            raise RuntimeError(f"no usage plan configured for tier {tier!r}") from None

    def create_key(self, workspace_id: str, value: str, tier: str) -> str:
        """Create a key with this value, attached to the tier's plan; its id. Not idempotent on purpose: it
        never lists keys (a listing returns every key's value in the region, which the auth function's role
        may not read), so a caller that may retry gives each attempt a new value (accounts.ensure_gateway_key)."""
        key = self.client.create_api_key(name=f"ws-{workspace_id}", value=value, enabled=True,
                                         description=f"AgentHQ workspace {workspace_id}")
        self.client.create_usage_plan_key(usagePlanId=self.tier_plan(tier), keyId=key["id"], keyType="API_KEY")
        return str(key["id"])

    def ensure_key(self, workspace_id: str, value: str, tier: str) -> str:
        """Create (or find, on a retry) the workspace's key and attach it to the
        tier's plan. Idempotent. Returns the key id. It lists keys with their values: the operator's
        (the local cloud restoring keys), never a function's."""
        name = f"ws-{workspace_id}"
        existing = self.client.get_api_keys(nameQuery=name, includeValues=True).get("items", [])
        key = next((k for k in existing if k.get("value") == value), None)
        if key is None:
            key = self.client.create_api_key(name=name, value=value, enabled=True,
                                             description=f"AgentHQ workspace {workspace_id}")
        try:
            self.client.create_usage_plan_key(usagePlanId=self.tier_plan(tier), keyId=key["id"], keyType="API_KEY")
        except self.client.exceptions.ConflictException:
            pass  # already attached (a retried signup); a key in another plan is move_key's to settle
        return str(key["id"])

    def move_key(self, key_id: str, from_plan: str, to_plan: str) -> None:
        """Leave the key in ``to_plan`` and in no other plan. Idempotent, and it finishes a move
        that was interrupted, whichever plan that move left the key in (or none).

        API Gateway keeps a key in at most one usage plan of each API stage (ConflictException
        otherwise), and all our plans are on the same stage: so the key is detached first, then
        attached; between the two calls (milliseconds) the workspace's requests are refused (403).
        The plans the key is really in are read from API Gateway (``from_plan`` is what the
        stored tier says; after an interrupted change the key may be elsewhere). A concurrent
        move that attaches the key elsewhere meanwhile is detached again, a few times at most;
        past that the change is a 409 and the operator retries it."""
        for _ in range(3):
            held = self._plans_of(key_id) | ({from_plan} - {to_plan})  # the listing may lag a moment
            for plan_id in sorted(held - {to_plan}):
                try:
                    self.client.delete_usage_plan_key(usagePlanId=plan_id, keyId=key_id)
                except self.client.exceptions.NotFoundException:
                    pass  # not (or no longer) in it
            if to_plan in held:
                return
            try:
                self.client.create_usage_plan_key(usagePlanId=to_plan, keyId=key_id, keyType="API_KEY")
                return
            except self.client.exceptions.ConflictException:
                if to_plan in self._plans_of(key_id):
                    return  # a concurrent move of the same key got there first
        raise Conflict("The workspace's tier is being changed by another request; try again.")

    def _plans_of(self, key_id: str) -> set[str]:
        """The usage plans the key is in, as API Gateway sees them now."""
        return {plan["id"] for page in self.client.get_paginator("get_usage_plans").paginate(keyId=key_id)
                for plan in page.get("items", [])}

    def ensure_workspace_plan(self, workspace_id: str, tier: str, rate: float, burst: int, quota: int) -> str:
        """The workspace's own usage plan with this throttle and daily quota, on
        the API stages of ``tier``'s plan: created, or found by name and updated
        (so a retried change finds the plan an interrupted one made). Returns its id."""
        name = f"agenthq-ws-{workspace_id}"
        existing = next((p for page in self.client.get_paginator("get_usage_plans").paginate()
                         for p in page.get("items", []) if p.get("name") == name), None)
        if existing is None:
            stages = self.client.get_usage_plan(usagePlanId=self.tier_plan(tier)).get("apiStages", [])
            created = self.client.create_usage_plan(
                name=name, description=f"AgentHQ workspace {workspace_id}: enterprise API limits",
                apiStages=[{"apiId": s["apiId"], "stage": s["stage"]} for s in stages],
                throttle={"rateLimit": float(rate), "burstLimit": int(burst)},
                quota={"limit": int(quota), "period": "DAY"},
            )
            return str(created["id"])
        self.client.update_usage_plan(usagePlanId=existing["id"], patchOperations=[
            {"op": "replace", "path": "/throttle/rateLimit", "value": f"{float(rate):g}"},
            {"op": "replace", "path": "/throttle/burstLimit", "value": str(int(burst))},
            {"op": "replace", "path": "/quota/limit", "value": str(int(quota))},
        ])
        return str(existing["id"])

    def delete_plan(self, plan_id: str) -> None:
        """Delete a workspace's own plan (its key already moved away). Idempotent."""
        try:
            self.client.delete_usage_plan(usagePlanId=plan_id)
        except self.client.exceptions.NotFoundException:
            pass

    def delete_key(self, key_id: str) -> None:
        try:
            self.client.delete_api_key(apiKey=key_id)
        except self.client.exceptions.NotFoundException:
            pass
