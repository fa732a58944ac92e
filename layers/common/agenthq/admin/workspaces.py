"""Workspaces as the operator sees them, and the one way to change a tier.

A tier change (:func:`change_tier`) stores the tier and the enterprise
overrides, moves the workspace's API Gateway key to the usage plan those limits
call for, and calls :func:`agenthq.tier_changes.on_tier_changed`. An enterprise
workspace whose overrides touch the API rate, burst or daily quota gets a usage
plan of its own with those numbers; any other workspace uses its tier's plan
(enterprise without such overrides: the pro plan), and an own plan it no
longer needs is deleted.

Listing uses the directory of workspaces (``WorkspaceDirectoryEntry``, one
partition, written at signup): a Query, never a Scan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, model_validator
from pynamodb.expressions.update import Action

from agenthq import ids, offboarding
from agenthq.admin.usage import cost_against_price, month_of
from agenthq.errors import InvalidRequest, NotFound
from agenthq.observability import logger
from agenthq.operators import Operator
from agenthq.pagination import Page, page
from agenthq.store import get_many, tenant_scope, transaction
from agenthq.store.items import Workspace, WorkspaceDirectoryEntry
from agenthq.tier_changes import TierSetting, on_tier_changed, takes_effect_with
from agenthq.tiers import Tier, limits_for

if TYPE_CHECKING:
    from agenthq.services import Services

# What the operator's own role reads of a workspace item (template.yaml allows it no more: dynamodb:Attributes);
# the rest of the workspace's partition (agents' prompts, runs' inputs and outputs, notes) is out of its reach.
OPERATOR_ATTRIBUTES = ("pk", "sk", "type", "id", "name", "tier", "limit_overrides", "gateway_key_id",
                       "gateway_plan_id", "deleting", "offboarding", "created_at")

# Overrides that API Gateway enforces: an enterprise workspace with any of them gets its own usage plan.
GATEWAY_LIMITS = ("api_rps", "api_burst", "api_calls_per_day")


class TierChange(BaseModel):
    """``PATCH /admin/workspaces/{wid}``: a new tier, new enterprise overrides, or both.

    ``limit_overrides`` replaces the overrides as a whole (``{}`` or null clears
    them); left out, an enterprise workspace keeps its own. Moving to a tier
    other than enterprise drops the overrides."""

    model_config = ConfigDict(extra="forbid")

    tier: Tier | None = None
    limit_overrides: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _something(self) -> TierChange:
        if not self.model_fields_set & {"tier", "limit_overrides"}:
            raise ValueError("give a tier, limit_overrides, or both")
        return self


# --------------------------------------------------------------------------- views


def setting_of(workspace: Workspace) -> TierSetting:
    overrides = dict(workspace.limit_overrides) if workspace.limit_overrides else None
    return TierSetting(tier=workspace.tier, limit_overrides=overrides,
                       limits=limits_for(workspace.tier, overrides))


def operator_view(workspace: Workspace) -> dict[str, Any]:
    setting = setting_of(workspace)
    return {
        "id": workspace.id,
        "name": workspace.name,
        "tier": workspace.tier,
        "limit_overrides": setting.limit_overrides or {},
        "limits": setting.limits.model_dump(mode="json"),
        "usage_plan": {"own": bool(workspace.gateway_plan_id), "id": workspace.gateway_plan_id},
        "status": "offboarding" if workspace.deleting else "active",
        "offboarding": offboarding.job_view(workspace),
        "created_at": workspace.created_at.isoformat(),
    }


def _load(workspace_id: str) -> Workspace:
    if not ids.is_id(workspace_id):  # workspace ids are ULIDs; anything else (as a session tag) names none
        raise NotFound()
    with tenant_scope(workspace_id):
        return Workspace.get_or_404(*Workspace.key(workspace_id))


def get_workspace(services: Services, operator: Operator, workspace_id: str) -> dict[str, Any]:
    """The workspace with its tier, overrides, usage plan, offboarding, and this month's cost against
    its price. Once offboarded, only its offboarding: when it started and finished, what it deleted."""
    try:
        workspace = _load(workspace_id)
    except NotFound:
        ended = offboarding.ended_job(services, workspace_id)
        if ended is None:
            raise
        return offboarding.workspace_view(workspace_id, ended,
                                          status="offboarded" if ended["status"] == "finished" else "offboarding")
    with tenant_scope(workspace_id):
        month = cost_against_price(workspace_id, month_of(services.now(), None), setting_of(workspace).limits)
    return {**operator_view(workspace), "this_month": month}


def list_workspaces(operator: Operator, cursor: str | None, limit: int) -> Page:
    """Every workspace, newest first."""
    return _directory_page(cursor, limit, operator_view)


def _directory_page(cursor: str | None, limit: int, view: Any) -> Page:
    """A page of the directory, each entry's workspace read (one BatchGetItem) and shown with ``view``."""
    partition = WorkspaceDirectoryEntry.PARTITION
    entries = page(lambda start: WorkspaceDirectoryEntry.query(
        partition, WorkspaceDirectoryEntry.sk.startswith("WS#"), limit=limit, scan_index_forward=False,
        last_evaluated_key=start), lambda entry: {"id": entry.workspace_id}, cursor, partition=partition,
        sk_prefix="WS#")
    found = {w.id: w for w in get_many(*(Workspace.key(e["id"]) for e in entries.items), attributes=OPERATOR_ATTRIBUTES)
             if isinstance(w, Workspace)} if entries.items else {}
    return Page(items=[view(found[e["id"]]) for e in entries.items if e["id"] in found],
                next_cursor=entries.next_cursor)


def usage_report(services: Services, operator: Operator, month: str | None, cursor: str | None,
                 limit: int) -> dict[str, Any]:
    """A page of every workspace's month: model + infrastructure cost against its price."""
    month = month_of(services.now(), month)

    def view(workspace: Workspace) -> dict[str, Any]:
        limits = setting_of(workspace).limits
        return {"workspace_id": workspace.id, "name": workspace.name, "tier": workspace.tier,
                "limits": limits.model_dump(mode="json"), **cost_against_price(workspace.id, month, limits)}

    listed = _directory_page(cursor, limit, view)
    return {"period": "month", "month": month, "items": listed.items, "next_cursor": listed.next_cursor}


def offboard(services: Services, operator: Operator, workspace_id: str) -> dict[str, Any]:
    """Start the workspace's offboarding, or go on with one that failed (as its owner's DELETE does)."""
    _load(workspace_id)  # a malformed id is a 404 too
    started = offboarding.start(services, workspace_id, by=operator.arn)
    logger.info("offboarding requested", extra={"workspace_id": workspace_id, **operator.log_keys()})
    return started


# --------------------------------------------------------------------------- the tier change


def change_tier(services: Services, operator: Operator, workspace_id: str, change: TierChange) -> dict[str, Any]:
    workspace = _load(workspace_id)
    if workspace.deleting:
        raise NotFound()
    old = setting_of(workspace)
    tier = (change.tier or Tier(workspace.tier)).value
    if tier == Tier.enterprise.value:
        overrides = change.limit_overrides if "limit_overrides" in change.model_fields_set else old.limit_overrides
    elif change.limit_overrides:
        raise InvalidRequest("Limit overrides are for the enterprise tier.",
                             details=[{"field": "limit_overrides", "message": "enterprise tier only"}])
    else:
        overrides = None
    new = TierSetting(tier=tier, limit_overrides=overrides or None, limits=limits_for(tier, overrides))

    plan_id = _move_to_usage_plan(services, workspace, new)
    actions: list[Action] = [Workspace.tier.set(tier),
               Workspace.limit_overrides.set(new.limit_overrides) if new.limit_overrides
               else Workspace.limit_overrides.remove(),
               Workspace.gateway_plan_id.set(plan_id) if plan_id else Workspace.gateway_plan_id.remove()]
    with tenant_scope(workspace_id):
        with transaction() as tx:  # the limits take effect together (the slots' concurrency limit too)
            tx.update(workspace, actions=actions, condition=Workspace.pk.exists())
            takes_effect_with(tx, workspace_id, new)
        workspace = Workspace.get(*Workspace.key(workspace_id), consistent_read=True)
    logger.info("tier set", extra={"workspace_id": workspace_id, "old_tier": old.tier, "new_tier": new.tier,
                                   "limit_overrides": new.limit_overrides, **operator.log_keys()})
    on_tier_changed(services, workspace_id, old, new)
    return operator_view(workspace)


def _move_to_usage_plan(services: Services, workspace: Workspace, new: TierSetting) -> str | None:
    """Put the workspace's gateway key into the plan ``new`` calls for; the id
    of the workspace's own plan, or None when it uses its tier's."""
    keys = services.gateway_keys
    own = own_plan_limits(new.tier, new.limit_overrides)
    current = workspace.gateway_plan_id or keys.tier_plan(workspace.tier)
    target = keys.ensure_workspace_plan(workspace.id, new.tier, *own) if own else keys.tier_plan(new.tier)
    if workspace.gateway_key_id:
        keys.move_key(workspace.gateway_key_id, current, target)
    if workspace.gateway_plan_id and workspace.gateway_plan_id != target:
        keys.delete_plan(workspace.gateway_plan_id)
    return target if own else None


def own_plan_limits(tier: str, overrides: dict[str, Any] | None) -> tuple[int, int, int] | None:
    """(rate, burst, daily quota) of the usage plan of its own a workspace needs, or
    None when its tier's plan is the one: only enterprise overrides of API limits call for one."""
    if tier != Tier.enterprise.value or not set(overrides or {}) & set(GATEWAY_LIMITS):
        return None
    limits = limits_for(tier, overrides)
    return limits.api_rps, limits.api_burst, limits.api_calls_per_day
