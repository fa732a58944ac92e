"""API Gateway keys: one per workspace, bound to its tier's usage plan.

The key's value is the workspace's ``usage_key``; the authorizer returns it as
``usageIdentifierKey`` and API Gateway meters the request against the plan.
Clients never see it (they authenticate with JWTs or AgentHQ API keys).
"""

from __future__ import annotations

from typing import Any, Protocol


class GatewayKeys(Protocol):
    def ensure_key(self, workspace_id: str, value: str, tier: str) -> str: ...
    def change_plan(self, key_id: str, old_tier: str, new_tier: str) -> None: ...
    def delete_key(self, key_id: str) -> None: ...


class ApiGatewayKeys:
    def __init__(self, client: Any, plan_ids: dict[str, str]) -> None:
        self.client = client
        self.plan_ids = plan_ids

    def _plan(self, tier: str) -> str:
        try:
            return self.plan_ids[tier]
        except KeyError:
            raise RuntimeError(f"no usage plan configured for tier {tier!r}") from None

    def ensure_key(self, workspace_id: str, value: str, tier: str) -> str:
        """Create (or find, on a retry) the workspace's key and attach it to the
        tier's plan. Idempotent. Returns the key id."""
        name = f"ws-{workspace_id}"
        existing = self.client.get_api_keys(nameQuery=name, includeValues=True).get("items", [])
        key = next((k for k in existing if k.get("value") == value), None)
        if key is None:
            key = self.client.create_api_key(name=name, value=value, enabled=True,
                                             description=f"AgentHQ workspace {workspace_id}")
        try:
            self.client.create_usage_plan_key(usagePlanId=self._plan(tier), keyId=key["id"], keyType="API_KEY")
        except self.client.exceptions.ConflictException:
            pass  # already attached
        return str(key["id"])

    def change_plan(self, key_id: str, old_tier: str, new_tier: str) -> None:
        old, new = self._plan(old_tier), self._plan(new_tier)
        if old == new:
            return
        try:
            self.client.create_usage_plan_key(usagePlanId=new, keyId=key_id, keyType="API_KEY")
        except self.client.exceptions.ConflictException:
            pass
        try:
            self.client.delete_usage_plan_key(usagePlanId=old, keyId=key_id)
        except self.client.exceptions.NotFoundException:
            pass

    def delete_key(self, key_id: str) -> None:
        try:
            self.client.delete_api_key(apiKey=key_id)
        except self.client.exceptions.NotFoundException:
            pass
