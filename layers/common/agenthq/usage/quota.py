"""Enforcing a workspace's tier limits (DESIGN §5), atomically under concurrency.

- **Runs per day**: a launch adds 1 to the day's ``Quota`` item on the
  condition that it is below the limit, in the same transaction that creates
  the run (:func:`count_launch`).
- **Tokens and budget per month**: before each model call a think step
  *reserves* the most the call can cost (:func:`hold_for`): its prompt,
  bounded by its size in bytes (a token is at least one byte), plus
  ``max_tokens`` of output, at the model's highest prompt rate. The month's
  ``committed_*`` (used + reserved) may grow only while it stays within the
  limit (:func:`reserve`), so concurrent runs can never push spend past it.
  When the call is answered, :func:`settle` swaps the reservation for what it
  actually cost, in the metering transaction; :func:`release` gives a
  reservation back when no call was made.
- **A run tree's budget**: the same reservation is taken, in the same
  transaction, from the budget of the run's tree (:class:`RunTree`): its root
  run's per-run ``budget_usd``, which the root and every run it delegated to,
  at any depth, spend together (one ``RunTreeBudget`` item per tree, whose
  ``committed_micro_usd`` may grow only while it stays within that budget).
  So a tree never spends more than its root's budget, however deep it
  delegates and however many of its runs reserve at once. A call that does
  not fit ends its run (``budget_exhausted``) rather than pausing it: the
  tree's budget does not reset.
- **One hold per attempt that may be billed**: the attempt a reservation
  pays for is marked on it (``call_started``) before its request is sent:
  with the reservation itself, by the commit before the call (the common
  case; a slice that hands back or fails without the call takes the mark off
  again) or when think reserves it; else just before (:func:`start_call`). A
  reservation so marked is never given back (:func:`release` refuses it):
  whoever finds it — the retried slice, the run's end — meters that attempt
  at the hold first (the run engine), since the API may have billed it. After
  such an attempt the next one is reserved anew, on the same conditions.
- **Periods**: a reservation is taken from the month it is made in, and
  settled or released there, whenever the call is answered: the call belongs
  to that month (and that day: :func:`counted_at`), whose budget admitted it.

A limit of 0 admits nothing. Enterprise overrides arrive here already applied
(``tiers.limits_for``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import TransactWriteError, UpdateError

from agenthq import pricing
from agenthq.errors import QuotaExceeded
from agenthq.store import transaction
from agenthq.store.items import Quota, Reservation, Run, RunBody, RunTreeBudget, Workspace
from agenthq.tiers import TierLimits, limits_for
from agenthq.usage.counters import day, month, next_day
from agenthq.usage.vector import Usage

if TYPE_CHECKING:
    from agenthq.adapters.model import ModelRequest

TOKENS = "tokens_per_month"
BUDGET = "budget_usd_per_month"
RUNS = "runs_per_day"
RUN_BUDGET = "budget_usd"  # the run tree's: its root run's per-run budget
RESERVED_BEFORE = "reserved_before"  # reserve(call=…): the step was reserved by an earlier attempt, not for this call


def workspace_limits(workspace_id: str) -> TierLimits:
    """The limits the workspace is held to now (its tier, with enterprise overrides)."""
    workspace = Workspace.load(workspace_id)
    return limits_for(workspace.tier, workspace.limit_overrides)


def budget_micro_usd(limits: TierLimits) -> int:
    return int(limits.budget_usd_per_month / pricing.MICRO_DOLLAR)


# --------------------------------------------------------------------------- runs per day


def launch_condition(limits: TierLimits) -> Any:
    return Quota.runs.does_not_exist() | (Quota.runs < limits.runs_per_day)


def count_launch(tx: Any, workspace_id: str, limits: TierLimits, at: datetime) -> None:
    """In the launch's transaction: one more run today, if the day allows it."""
    if limits.runs_per_day <= 0:
        raise runs_exhausted(limits, at)
    tx.update(Quota(*Quota.key(workspace_id, day(at))), actions=[Quota.runs.add(1)],
              condition=launch_condition(limits))


def runs_exhausted(limits: TierLimits, at: datetime) -> QuotaExceeded:
    noun = "run" if limits.runs_per_day == 1 else "runs"
    return QuotaExceeded(f"Your plan allows {limits.runs_per_day} {noun} a day; the next day starts at 00:00 UTC.",
                         retry_after=seconds_to_next_day(at),
                         details=[{"field": RUNS, "message": f"limit is {limits.runs_per_day}"}])


def runs_today(workspace_id: str, at: datetime) -> int:
    quota = Quota.get_or_none(*Quota.key(workspace_id, day(at)))
    return int(quota.runs) if quota is not None else 0


def seconds_to_next_day(at: datetime) -> int:
    return max(1, math.ceil((next_day(at) - at).total_seconds()))


# --------------------------------------------------------------------------- tokens and budget per month


@dataclass(frozen=True)
class Hold:
    """What a model call is reserved: the most it can use and cost."""

    tokens: int
    micro_usd: int


def hold_for(request: ModelRequest, at: datetime) -> Hold:
    """The most ``request`` can use: every byte of its prompt as a token (a token
    is at least one byte) at the highest prompt rate, plus ``max_tokens`` of output."""
    prompt = {"system": request.system, "messages": request.messages, "tools": request.tools}
    prompt_tokens = len(json.dumps(prompt, ensure_ascii=False, separators=(",", ":")).encode())
    rates = pricing.price_for(request.model, at.date()).rates_for(prompt_tokens)
    prompt_rate = max(rates.input, rates.cache_write, rates.cache_read)
    usd = (prompt_tokens * prompt_rate + request.max_tokens * rates.output) / pricing.MILLION
    return Hold(tokens=prompt_tokens + request.max_tokens, micro_usd=math.ceil(usd / pricing.MICRO_DOLLAR))


@dataclass(frozen=True)
class RunTree:
    """The delegation tree a run belongs to: its root run (the run itself for a
    root) and the root's per-run budget, which every run of the tree spends from."""

    root_run_id: str
    budget_micro_usd: int

    @classmethod
    def of(cls, body: RunBody) -> RunTree | None:
        """The tree of the run whose body is ``body`` (None for a run made before trees were kept)."""
        if body.tree_root_run_id is None or body.tree_budget_micro_usd is None:
            return None
        return cls(body.tree_root_run_id, int(body.tree_budget_micro_usd))

    @classmethod
    def rooted_at(cls, run_id: str, budget_usd: Decimal) -> RunTree:
        return cls(run_id, int(Decimal(budget_usd) / pricing.MICRO_DOLLAR))

    def budget_usd(self) -> Decimal:
        return Decimal(self.budget_micro_usd) * pricing.MICRO_DOLLAR


def run_budget_left(run: Run, budget_usd: str) -> int:
    """Micro-dollars left of a run's own per-run budget (``budget_usd``, from its
    agent as launched): less its model cost and its finished children's (with
    theirs). Its own calls come one at a time, and it waits for each child, so
    what it holds in flight is at most the call about to be made."""
    spent = int(run.cost_micro_usd or 0) + int(run.children_micro_usd or 0)
    return int(Decimal(budget_usd) / pricing.MICRO_DOLLAR) - spent


def reservation_for(workspace_id: str, run_id: str, step: int, hold: Hold, at: datetime,
                    tree: RunTree | None = None, call: str | None = None) -> Reservation:
    """The reservation of ``hold`` for the model call of ``step``, as it is stored:
    taken from the month of ``at`` and from ``tree``'s budget; ``call``: the id of
    the attempt about to be sent under it (marked started at once)."""
    return Reservation(*Reservation.key(workspace_id, run_id, step), period=month(at), tokens=hold.tokens,
                       micro_usd=hold.micro_usd, reserved_at=at,
                       tree_root_run_id=tree.root_run_id if tree else None,
                       tree_budget_micro_usd=tree.budget_micro_usd if tree else None, call_started=call)


def beyond_limits(hold: Hold, limits: TierLimits, tree: RunTree | None = None) -> str | None:
    """The limit ``hold`` alone is larger than (it can never be reserved), or None."""
    if tree is not None and hold.micro_usd > tree.budget_micro_usd:
        return RUN_BUDGET
    if hold.tokens > limits.tokens_per_month:
        return TOKENS
    if hold.micro_usd > budget_micro_usd(limits):
        return BUDGET
    return None


def _tree_item(workspace_id: str, reservation: Reservation) -> RunTreeBudget | None:
    if reservation.tree_root_run_id is None:
        return None
    return RunTreeBudget(*RunTreeBudget.key(workspace_id, reservation.tree_root_run_id))


def reserve_in(tx: Any, workspace_id: str, reservation: Reservation, limits: TierLimits) -> None:
    """In ``tx``: store ``reservation`` (once) and add it to the month's committed
    tokens and budget, and to its run tree's committed budget, on the condition
    that they stay within ``limits`` and the tree's budget."""
    tokens, micro = int(reservation.tokens), int(reservation.micro_usd)
    fits = ((Quota.committed_tokens.does_not_exist() | (Quota.committed_tokens <= limits.tokens_per_month - tokens))
            & (Quota.committed_micro_usd.does_not_exist()
               | (Quota.committed_micro_usd <= budget_micro_usd(limits) - micro)))
    tx.save(reservation, condition=Reservation.pk.does_not_exist())
    tx.update(Quota(*Quota.key(workspace_id, reservation.period)),
              actions=[Quota.committed_tokens.add(tokens), Quota.committed_micro_usd.add(micro)], condition=fits)
    if (tree := _tree_item(workspace_id, reservation)) is not None:
        budget = int(reservation.tree_budget_micro_usd or 0)
        within = RunTreeBudget.committed_micro_usd <= budget - micro
        tx.update(tree, actions=[RunTreeBudget.committed_micro_usd.add(micro),
                                 RunTreeBudget.budget_micro_usd.set(budget),
                                 RunTreeBudget.type.set(RunTreeBudget)],
                  condition=within if micro > budget else RunTreeBudget.committed_micro_usd.does_not_exist() | within)


def reserve(workspace_id: str, run_id: str, step: int, hold: Hold, limits: TierLimits, at: datetime,
            tree: RunTree | None = None, attempts: int = 8, call: str | None = None) -> str | None:
    """Reserve ``hold`` for the model call of ``step`` (from the month and from
    ``tree``'s budget): None when reserved (or already reserved by an earlier
    attempt of the same step), else the limit it does not fit in
    (``budget_usd``, the tree's; ``tokens_per_month``; ``budget_usd_per_month``).
    ``call``: the attempt about to be sent under it (``reservation_for``); then a step
    reserved by an earlier attempt answers ``reserved_before`` (its reservation is not
    marked for ``call``: the caller reads it)."""
    if (limit := beyond_limits(hold, limits, tree)) is not None:
        return limit
    reservation = reservation_for(workspace_id, run_id, step, hold, at, tree, call)
    budget = budget_micro_usd(limits)
    for _ in range(attempts):
        try:
            with transaction() as tx:
                reserve_in(tx, workspace_id, reservation, limits)
            return None
        except TransactWriteError:
            if (found := Reservation.get_or_none(*reservation.key(workspace_id, run_id, step))) is not None:
                if call is not None and found.call_started != call:
                    return RESERVED_BEFORE
                return None  # an earlier attempt of this step reserved it
            if tree is not None:
                spent = RunTreeBudget.get_or_none(*RunTreeBudget.key(workspace_id, tree.root_run_id))
                if spent is not None and int(spent.committed_micro_usd) + hold.micro_usd > tree.budget_micro_usd:
                    return RUN_BUDGET
            quota = Quota.get_or_none(*Quota.key(workspace_id, reservation.period))
            if quota is not None and int(quota.committed_tokens) + hold.tokens > limits.tokens_per_month:
                return TOKENS
            if quota is not None and int(quota.committed_micro_usd) + hold.micro_usd > budget:
                return BUDGET
            # a transaction conflict with a concurrent writer: try again
    raise TransactWriteError("the month's quota kept changing")


def counted_at(reservation: Reservation | None, at: datetime) -> datetime:
    """When a model call metered at ``at`` is counted (its ledger entry, its day's
    and month's counters): in the day its reservation was made — the call was made
    then, and that month's budget admitted it. So ``at`` itself within that day
    (entries keep the order they were metered in), else when it was reserved."""
    if reservation is None or reservation.reserved_at is None or day(reservation.reserved_at) == day(at):
        return at
    return min(reservation.reserved_at, at)


def settle(tx: Any, workspace_id: str, reservation: Reservation | None, usage: Usage, at: datetime,
           tree: RunTree | None = None) -> None:
    """In the metering transaction: the call's actual use replaces its reservation,
    in the month it was reserved in and in its run tree's budget. A call whose
    reservation is gone (released meanwhile) still counts in the month of ``at``
    and in ``tree``, its run's tree: what the tree spent is what its ledger says."""
    tokens = usage.tokens.total
    reserved_tokens = int(reservation.tokens) if reservation else 0
    reserved_micro = int(reservation.micro_usd) if reservation else 0
    period = reservation.period if reservation else month(at)
    tx.update(Quota(*Quota.key(workspace_id, period)), actions=[
        Quota.used_tokens.add(tokens), Quota.used_micro_usd.add(usage.cost_micro_usd),
        Quota.committed_tokens.add(tokens - reserved_tokens),
        Quota.committed_micro_usd.add(usage.cost_micro_usd - reserved_micro)])
    if reservation is not None:
        tx.delete(reservation, condition=Reservation.pk.exists())
    spent = _tree_item(workspace_id, reservation) if reservation is not None else \
        RunTreeBudget(*RunTreeBudget.key(workspace_id, tree.root_run_id)) if tree is not None else None
    if spent is not None:
        tx.update(spent, actions=[RunTreeBudget.used_micro_usd.add(usage.cost_micro_usd),
                                  RunTreeBudget.committed_micro_usd.add(usage.cost_micro_usd - reserved_micro),
                                  RunTreeBudget.type.set(RunTreeBudget)])


def start_call(workspace_id: str, reservation: Reservation, call: str) -> bool:
    """Mark ``reservation`` as paying for the attempt ``call``, about to be sent: on
    the condition that it is still held and no attempt was begun under it. False when
    that does not hold (it was given back, or an earlier slice began a call under it)."""
    try:
        reservation.update(actions=[Reservation.call_started.set(call)],
                           condition=Reservation.pk.exists() & Reservation.call_started.does_not_exist())
    except UpdateError:
        return False
    return True


def reservations(workspace_id: str, run_id: str) -> list[Reservation]:
    """The run's reservations held now."""
    return list(Reservation.query(Run.partition(workspace_id, run_id), Reservation.sk.startswith("RESERVE#"),
                                  consistent_read=True))


def release(workspace_id: str, run_id: str, step: int, reservation: Reservation | None = None, *,
            unbilled: bool = False) -> None:
    """Give back the reservation of ``step`` (pass it when known, else it is read) to its
    month and its run tree. Idempotent. Not one under which a call was begun (``call_started``):
    that call may be billed, so it is metered instead — unless its caller knows that no
    attempt under it was (``unbilled``: each was refused before it began)."""
    if reservation is None:
        reservation = Reservation.get_or_none(*Reservation.key(workspace_id, run_id, step))
    if reservation is None:
        return
    held = Reservation.pk.exists()
    if not unbilled:
        held &= Reservation.call_started.does_not_exist()
    try:
        with transaction() as tx:
            tx.delete(reservation, condition=held)
            tx.update(Quota(*Quota.key(workspace_id, reservation.period)),
                      actions=[Quota.committed_tokens.add(-int(reservation.tokens)),
                               Quota.committed_micro_usd.add(-int(reservation.micro_usd))])
            if (tree := _tree_item(workspace_id, reservation)) is not None:
                tx.update(tree, actions=[RunTreeBudget.committed_micro_usd.add(-int(reservation.micro_usd))])
    except TransactWriteError:
        pass  # released (or settled) meanwhile, or a call was begun under it: it is metered, not given back


def release_all(workspace_id: str, run_id: str) -> None:
    """Give back every reservation of the run (it ended without settling them), but
    those under which a call was begun (``release``): the run's end meters them first."""
    for reservation in reservations(workspace_id, run_id):
        release(workspace_id, run_id, int(reservation.sk.removeprefix("RESERVE#")), reservation)


def month_quota(workspace_id: str, at: datetime) -> Quota | None:
    return Quota.get_or_none(*Quota.key(workspace_id, month(at)))


def has_room(workspace_id: str, hold: Hold, limits: TierLimits, at: datetime) -> bool:
    """Whether the month has room for ``hold`` now (tokens and budget)."""
    quota = month_quota(workspace_id, at)
    tokens = int(quota.committed_tokens) if quota else 0
    micro = int(quota.committed_micro_usd) if quota else 0
    return tokens + hold.tokens <= limits.tokens_per_month and micro + hold.micro_usd <= budget_micro_usd(limits)
