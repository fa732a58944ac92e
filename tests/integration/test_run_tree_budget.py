"""A run tree's budget (issue 17, hole 6): every model call of every run of a
delegation tree is reserved against what is left of its root's per-run budget
(``budget_usd``) before it is made, so the tree never spends more than that —
on the local cloud, as a user delegates, and under concurrent children."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from agenthq.agent_lookup import find_agent
from agenthq.services import Services, get_services
from agenthq.store import tenant_scope
from agenthq.store.items import Run, RunTreeBudget
from agenthq.usage import ledger, quota
from tests.support import create_agent, events_of, launch, signup, wait_for

pytestmark = pytest.mark.slow

LEAF = 'Compute.\n/tool calculator {"expression": "6*7"}'


def delegating(text: str, *steps: tuple[str, str]) -> str:
    """``text``, then one delegate call per (agent, input), one turn each."""
    return "\n".join([text, *(f"/tool delegate {json.dumps({'agent': a, 'input': i})}" for a, i in steps)])


def tree_of(tenant, root_id: str) -> list[dict]:
    """The runs of the tree rooted at ``root_id`` (the workspace holds only this tree's runs)."""
    runs = tenant.get("/runs").json()["items"]
    by_id = {r["id"]: r for r in runs}

    def root(run: dict) -> str:
        while run["parent_run_id"]:
            run = by_id[run["parent_run_id"]]
        return run["id"]

    return [r for r in runs if root(r) == root_id]


def ledger_cost(workspace_id: str, run_ids: list[str]) -> int:
    """The model cost of ``run_ids`` across the ledger, in micro-dollars."""
    with tenant_scope(workspace_id):
        return sum(int(e.cost_micro_usd) for rid in run_ids for e in ledger.entries(workspace_id, rid))


def tree_budget(workspace_id: str, root_id: str) -> RunTreeBudget | None:
    with tenant_scope(workspace_id):
        return RunTreeBudget.get_or_none(*RunTreeBudget.key(workspace_id, root_id))


def test_a_root_with_4_thousandths_of_a_dollar_delegating_twice_deep_spends_at_most_that(api):
    """The issue's case: a root with budget_usd $0.004 delegates to a coordinator that
    delegates to a leaf. Today the tree spent $0.0186; every call of it must fit in $0.004."""
    tenant = signup(api, tier="pro")
    lead = create_agent(tenant, "lead", "coordinator", budget_usd="0.004")
    create_agent(tenant, "planner", "coordinator")
    create_agent(tenant, "worker", "sre")
    text = delegating("Plan it.", ("planner", delegating("Split it.", ("worker", LEAF))))
    root = wait_for(tenant, launch(tenant, lead["id"], text).json()["id"])

    tree = tree_of(tenant, root["id"])
    spent = ledger_cost(tenant.workspace_id, [r["id"] for r in tree])
    assert spent <= 4_000, f"the tree spent ${spent / 1e6:.6f} of a $0.004 budget"
    assert root["status"] == "failed" and root["error"]["reason"] == "budget_exhausted", root
    assert sum(Decimal(r["usage"]["cost_usd"]) for r in tree) * 1_000_000 == spent, "runs and ledger agree"


def test_descendants_spend_from_the_roots_budget_and_a_call_that_does_not_fit_ends_its_run(api):
    """Root $0.05 on a cheap model → planner → worker (cheap: fits) and → designer (its
    model's call alone may cost more than is left: it ends budget_exhausted without calling
    the model). The parent is charged its child's whole subtree, grandchildren included."""
    tenant = signup(api, tier="pro")
    cheap = "claude-haiku-5-5"
    lead = create_agent(tenant, "lead", "coordinator", model=cheap, budget_usd="0.05")
    create_agent(tenant, "planner", "coordinator", model=cheap)
    create_agent(tenant, "worker", "sre", model=cheap)
    create_agent(tenant, "designer", "architect", model="claude-opus-5-5")  # 4,096 tokens out: $0.08
    middle = delegating("Split it.", ("worker", LEAF), ("designer", "Design it."))
    root = wait_for(tenant, launch(tenant, lead["id"], delegating("Plan it.", ("planner", middle))).json()["id"])
    assert root["status"] == "succeeded", root

    tree = {r["agent_id"]: r for r in tree_of(tenant, root["id"])}
    agents = {a["name"]: a["id"] for a in tenant.get("/agents").json()["items"]}
    planner, worker, designer = (tree[agents[name]] for name in ("planner", "worker", "designer"))
    assert worker["status"] == "succeeded" and planner["status"] == "succeeded"
    assert designer["status"] == "failed" and designer["error"]["reason"] == "budget_exhausted", designer
    assert designer["steps"] == 0, "the call that does not fit is never made"
    assert "model.called" not in [e["type"] for e in events_of(tenant, designer["id"])]
    refused = next(e for e in events_of(tenant, planner["id"])
                   if e["type"] == "tool.result" and e["data"]["is_error"])
    assert "ended failed" in refused["data"]["content"] and "could cost more than is left" in refused["data"]["content"]

    spent = ledger_cost(tenant.workspace_id, [r["id"] for r in tree.values()])
    assert 0 < spent <= 50_000
    budget = tree_budget(tenant.workspace_id, root["id"])
    assert budget is not None and int(budget.used_micro_usd) == int(budget.committed_micro_usd) == spent, \
        "the tree's item counts every call of the tree once, and holds nothing after it"
    with tenant_scope(tenant.workspace_id):
        root_item = Run.get(*Run.key(tenant.workspace_id, root["id"]))
    below = sum(Decimal(r["usage"]["cost_usd"]) for r in (planner, worker, designer)) * 1_000_000
    assert int(root_item.children_micro_usd) == below, "the root is charged its grandchildren too"


# --------------------------------------------------------------------------- concurrent children


class HeldModel:
    """The real (offline) model, holding every answer until the test lets them go:
    the calls that were reserved are all in flight at once."""

    def __init__(self, real, expected: int) -> None:
        self.real = real
        self.expected = expected
        self.requests: list = []
        self.go = threading.Event()
        self.lock = threading.Lock()

    def create_message(self, request):
        with self.lock:
            self.requests.append(request)
        assert self.go.wait(120), "the test never let the answers go"
        return self.real.create_message(request)


def test_concurrent_children_reserving_at_once_cannot_pass_the_roots_budget_together(api):
    """Eight children of one root start at once (as a retried or parallel delegation
    could start them). Each of their first calls is reserved against the root's budget,
    which has room for three: three calls are made, five children end budget_exhausted
    without calling the model — decided before any answer arrives."""
    tenant = signup(api, tier="pro")
    lead = create_agent(tenant, "lead", "coordinator")
    worker = create_agent(tenant, "worker", "sre")
    services = get_services()
    with tenant_scope(tenant.workspace_id):
        lead_item, worker_item = (find_agent(tenant.workspace_id, a["id"]) for a in (lead, worker))

    def children_of(root: Run, count: int) -> list[Run]:
        from agenthq.runs.launch import create_run_record

        return [create_run_record(services, tenant.workspace_id, worker_item, "Answer briefly.",
                                  created_by=root.created_by, parent=root, parent_tool_use_id=f"toolu_{i}")
                for i in range(count)]

    def start(model, run: Run) -> str:
        from agenthq.runs.engine import run_step

        fake = Services(services.settings, services.clock, model=model)
        return run_step(fake, {"step": "start", "workspace_id": run.workspace_id, "run_id": run.id},
                        lambda: 1_000.0)["next"]

    # What one child's first call reserves: one child under a root with room for it.
    from agenthq.runs.launch import create_run_record

    with tenant_scope(tenant.workspace_id):
        probe_root = create_run_record(services, tenant.workspace_id, lead_item, "Probe.", created_by="test")
        probe_model = HeldModel(services.model, 1)
        probe_model.go.set()
        (probe,) = children_of(probe_root, 1)
        assert start(probe_model, probe) == "done"
    hold = quota.hold_for(probe_model.requests[0], services.now()).micro_usd

    budget = 3 * hold + hold // 2  # room for three calls' reservations at once
    frugal = create_agent(tenant, "frugal", "coordinator", budget_usd=f"{Decimal(budget) / 1_000_000:.6f}")
    with tenant_scope(tenant.workspace_id):
        lead_item = find_agent(tenant.workspace_id, frugal["id"])
        root = create_run_record(services, tenant.workspace_id, lead_item, "Plan it.", created_by="test")
        children = children_of(root, 8)
        model = HeldModel(services.model, 8)
        ended: list[str] = []

        def one(child: Run) -> str:
            with tenant_scope(tenant.workspace_id):
                answer = start(model, child)
            ended.append(child.id)
            return answer

        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(one, child) for child in children]
            deadline = time.monotonic() + 120
            while len(model.requests) + len(ended) < len(children) and time.monotonic() < deadline:
                time.sleep(0.05)  # every child has either called the model (held) or ended
            in_flight = len(model.requests)
            model.go.set()
            answers = [f.result() for f in futures]

        assert in_flight == 3, f"{in_flight} calls were made at once against room for 3"
        assert answers == ["done"] * 8
        runs = [Run.get(*Run.key(tenant.workspace_id, c.id)) for c in children]
    reasons = sorted((r.status, (r.error or {}).get("reason")) for r in runs)
    assert reasons == [("failed", "budget_exhausted")] * 5 + [("succeeded", None)] * 3
    spent = ledger_cost(tenant.workspace_id, [c.id for c in children])
    tree = tree_budget(tenant.workspace_id, root.id)
    assert tree is not None and spent == int(tree.used_micro_usd) == int(tree.committed_micro_usd) <= budget


def test_a_later_call_that_no_longer_fits_ends_the_run_after_its_tool_results_are_kept(api):
    """After the first call, another run of the tree takes all but $0.001 of the budget (a
    reservation in flight, made here while the run's tool runs): the reservation the tool
    results' commit would make does not fit, the results are kept alone, and the next think
    ends the run budget_exhausted without a second call; the other run's hold stays its own."""
    from agenthq.store.items import RunTreeBudget as Tree
    from tests.support import tools_replaced_by

    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "counter", "sre", budget_usd="1.00")
    taken: list[int] = []

    def sibling_reserves(call: int, ctx) -> None:
        item = Tree.get(*Tree.key(ctx.workspace_id, ctx.run_id))
        taken.append(1_000_000 - int(item.committed_micro_usd) - 1_000)
        item.update(actions=[Tree.committed_micro_usd.add(taken[-1])])

    with tools_replaced_by(sibling_reserves):
        run = wait_for(tenant, launch(tenant, agent["id"], LEAF).json()["id"])
    assert run["status"] == "failed" and run["error"]["reason"] == "budget_exhausted", run
    assert run["steps"] == 1
    types = [e["type"] for e in events_of(tenant, run["id"])]
    assert types.count("model.called") == 1 and "tool.result" in types
    spent = ledger_cost(tenant.workspace_id, [run["id"]])
    tree = tree_budget(tenant.workspace_id, run["id"])
    assert tree is not None and int(tree.used_micro_usd) == spent
    assert int(tree.committed_micro_usd) - int(tree.used_micro_usd) == taken[0], "nothing of this run stays reserved"


class ReleasedWhileAnswering:
    """The real (offline) model; while it answers the first call, the call's reservation is
    released (as a concurrent end of the run would release what it holds)."""

    def __init__(self, real, workspace_id: str) -> None:
        self.real, self.workspace_id = real, workspace_id
        self.run_id = ""
        self.calls = 0

    def create_message(self, request):
        self.calls += 1
        if self.calls == 1:
            quota.release_all(self.workspace_id, self.run_id)
        return self.real.create_message(request)


def test_a_call_whose_reservation_was_released_meanwhile_still_counts_in_its_tree(api):
    """Its answer cannot settle the reservation (gone), so the call is metered on its own:
    the ledger, the month and the tree all count it — the tree's spend is its ledger's."""
    from agenthq.runs.engine import run_step
    from agenthq.runs.launch import create_run_record

    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "solo", "sre")
    real = get_services()
    model = ReleasedWhileAnswering(real.model, tenant.workspace_id)
    services = Services(real.settings, real.clock, model=model)
    wid = tenant.workspace_id
    with tenant_scope(wid):
        run = create_run_record(services, wid, find_agent(wid, agent["id"]), LEAF, created_by=tenant.user_id)
        model.run_id = run.id
        assert run_step(services, {"step": "start", "workspace_id": wid, "run_id": run.id}, lambda: 1_000.0)[
            "next"] == "done"
        ended = Run.get(*Run.key(wid, run.id))
    assert ended.status == "succeeded" and model.calls == 2
    spent = ledger_cost(wid, [run.id])
    tree = tree_budget(wid, run.id)
    assert tree is not None and int(tree.used_micro_usd) == int(tree.committed_micro_usd) == spent > 0


def test_a_childs_steps_that_crash_after_committing_and_are_retried_count_once_in_the_tree(api):
    """The delegated run's think and act each crash once after their commit (the reply's
    commit holds the next call's reservation); the retried slices resume after them. The
    tree's item counts each call once and holds nothing at the end: its used is its ledger's."""
    from tests.support import StepFault, step_faults

    tenant = signup(api, tier="pro")
    cheap = "claude-haiku-5-5"
    lead = create_agent(tenant, "lead", "coordinator", model=cheap, budget_usd="0.05")
    create_agent(tenant, "worker", "sre", model=cheap)
    seen: list[str] = []

    def child(event) -> bool:  # any run of this workspace but the first (the root starts first)
        if event.get("workspace_id") != tenant.workspace_id:
            return False
        if not seen:
            seen.append(event["run_id"])
        return event["run_id"] != seen[0]

    crashes = (StepFault(steps=("think",), match=child, when="after"),
               StepFault(steps=("act",), match=child, when="after"))
    with step_faults(*crashes):
        root = wait_for(tenant, launch(tenant, lead["id"], delegating("Plan it.", ("worker", LEAF))).json()["id"])
    assert [c.fired for c in crashes] == [1, 1]
    assert root["status"] == "succeeded", root
    tree = tree_of(tenant, root["id"])
    assert len(tree) == 2 and all(r["status"] == "succeeded" for r in tree)
    calls = sum(1 for r in tree for e in events_of(tenant, r["id"]) if e["type"] == "model.called")
    with tenant_scope(tenant.workspace_id):
        entries = [e for r in tree for e in ledger.entries(tenant.workspace_id, r["id"]) if e.entry.startswith("model#")]
    assert len(entries) == calls == 4, "each call once in the ledger"
    spent = ledger_cost(tenant.workspace_id, [r["id"] for r in tree])
    budget = tree_budget(tenant.workspace_id, root["id"])
    assert budget is not None and int(budget.used_micro_usd) == int(budget.committed_micro_usd) == spent


def test_a_delegated_run_whose_own_budget_cannot_pay_for_one_call_ends_without_making_it(api):
    """Under a root with room ($1.00), a planner with its own $0.004 delegates to a designer
    whose model's call alone may cost more than the planner has left: the designer's budget is
    what its parent has left, and a call that could pass it is not made (the planner's subtree
    stays within its $0.004, where the designer used to make one full call)."""
    tenant = signup(api, tier="pro")
    cheap = "claude-haiku-5-5"
    lead = create_agent(tenant, "lead", "coordinator", model=cheap, budget_usd="1.00")
    create_agent(tenant, "planner", "coordinator", model=cheap, budget_usd="0.004")
    create_agent(tenant, "designer", "architect", model="claude-opus-5-5")
    text = delegating("Plan it.", ("planner", delegating("Ask the designer.", ("designer", "Design it."))))
    root = wait_for(tenant, launch(tenant, lead["id"], text).json()["id"])
    assert root["status"] == "succeeded", root

    tree = {r["agent_id"]: r for r in tree_of(tenant, root["id"])}
    agents = {a["name"]: a["id"] for a in tenant.get("/agents").json()["items"]}
    planner, designer = tree[agents["planner"]], tree[agents["designer"]]
    assert designer["status"] == "failed" and designer["error"]["reason"] == "budget_exhausted", designer
    assert designer["steps"] == 0 and "its budget of" in designer["error"]["message"]
    assert ledger_cost(tenant.workspace_id, [planner["id"], designer["id"]]) <= 4_000, \
        "the planner's subtree stays within the planner's own budget"
