"""What follows a workspace's tier change, once the change is stored.

The operator changes a tier (``agenthq.admin.workspaces.change_tier``); that
function stores the new tier, moves the workspace's API Gateway key, and then
calls :func:`on_tier_changed` — the one place where the rest of the product
reacts to a tier change.
"""

from __future__ import annotations

from dataclasses import dataclass

from agenthq.observability import logger
from agenthq.services import Services
from agenthq.tiers import TierLimits


@dataclass(frozen=True)
class TierSetting:
    """A workspace's tier as it was or is: the tier, its overrides and the limits they make."""

    tier: str
    limit_overrides: dict | None
    limits: TierLimits


def on_tier_changed(services: Services, workspace_id: str, old: TierSetting, new: TierSetting) -> None:
    """React to a stored tier change of ``workspace_id``.

    Today it only logs: runs cannot pause on a limit yet. Once they can
    (DESIGN.md §5), this resumes the workspace's runs paused on a limit that
    ``new.limits`` raises above what is used (``run.resumed``, the Step
    Functions task token answered), leaving the others paused. It must stay
    idempotent: a retried tier change calls it again with the same settings.
    """
    logger.info("tier changed", extra={"workspace_id": workspace_id, "old_tier": old.tier, "new_tier": new.tier})
