"""What follows a workspace's tier change, once the change is stored.

The operator changes a tier (``agenthq.admin.workspaces.change_tier``); that
function stores the new tier, moves the workspace's API Gateway key, and then
calls :func:`on_tier_changed` — the one place where the rest of the product
reacts to a tier change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agenthq.observability import logger
from agenthq.runs.pausing import resume_paused
from agenthq.tiers import TierLimits

if TYPE_CHECKING:
    from agenthq.services import Services


@dataclass(frozen=True)
class TierSetting:
    """A workspace's tier as it was or is: the tier, its overrides and the limits they make."""

    tier: str
    limit_overrides: dict[str, Any] | None
    limits: TierLimits


def on_tier_changed(services: Services, workspace_id: str, old: TierSetting, new: TierSetting) -> None:
    """React to a stored tier change of ``workspace_id``: the workspace's runs
    paused at a limit resume where the new limits leave room (``run.resumed``,
    their Step Functions task tokens answered); the others stay paused.
    Idempotent: a retried tier change calls it again with the same settings."""
    logger.info("tier changed", extra={"workspace_id": workspace_id, "old_tier": old.tier, "new_tier": new.tier})
    resume_paused(services, workspace_id)
