"""What follows a workspace's tier change, once the change is stored.

The operator changes a tier (``agenthq.admin.workspaces.change_tier``); that
function moves the workspace's API Gateway key, stores the new tier with what
:func:`takes_effect_with` writes in the same transaction, and then calls
:func:`on_tier_changed` — the one place where the rest of the product reacts
to a tier change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agenthq.observability import logger
from agenthq.runs import slots
from agenthq.runs.pausing import resume_paused
from agenthq.store import tenant_scope
from agenthq.tiers import TierLimits

if TYPE_CHECKING:
    from agenthq.services import Services


@dataclass(frozen=True)
class TierSetting:
    """A workspace's tier as it was or is: the tier, its overrides and the limits they make."""

    tier: str
    limit_overrides: dict[str, Any] | None
    limits: TierLimits


def takes_effect_with(tx: Any, workspace_id: str, new: TierSetting) -> None:
    """What the tier change's transaction writes besides the workspace: the
    concurrency limit on the workspace's slots item, so that from this commit
    on no slot is granted against the old limit (``runs.slots.limit_holds``)."""
    slots.set_limit(tx, workspace_id, new.limits)


def on_tier_changed(services: Services, workspace_id: str, old: TierSetting, new: TierSetting) -> None:
    """React to a stored tier change of ``workspace_id``: the workspace's runs
    paused at a limit resume where the new limits leave room (``run.resumed``,
    their Step Functions task tokens answered); the others stay paused; queued
    runs start, oldest first, while running runs are fewer than the new
    concurrency limit (a lowered limit starts none: the runs running finish).
    Idempotent: a retried tier change calls it again with the same settings."""
    logger.info("tier changed", extra={"workspace_id": workspace_id, "old_tier": old.tier, "new_tier": new.tier})
    resume_paused(services, workspace_id)
    with tenant_scope(workspace_id):
        started = slots.fill(services, workspace_id, new.limits)  # a raised concurrency: the queue moves now
    if started:
        logger.info("queued runs started", extra={"workspace_id": workspace_id, "started": started})
