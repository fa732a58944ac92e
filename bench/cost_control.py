"""What cost control costs, and what the tiers can cost the operator.

- DynamoDB write request units per metered model call: the reservation before
  the call and the metering after it (ReturnConsumedCapacity), ÷ the WRU of one
  UpdateItem of a counter;
- p99 of the launch-time enforcement (the launch transaction: run, body,
  event, ledger entry, counters, runs/day quota, pending slot) under 50
  concurrent launches, and of the pre-call reservation under 50 concurrent
  reservations, each ÷ the p99 of one UpdateItem measured in the same run;
- each tier's worst case — model budget + runs/day × 30 × the modelled
  infrastructure cost of a 5-step run (metered by the engine on a real run) —
  as a fraction of its price (DESIGN §5: ≤ 40% for paid tiers, ≤ $1.50 a month
  for free). Printed, not asserted here: the cheaper-runs work asserts the rule.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import boto3

from bench.common import ms, print_rows, print_table
from bench.runs import RUN_INPUT, STEPS

CONCURRENCY = 50


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def update_item_baseline(cloud: Any, samples: int) -> tuple[float, float, float]:
    """(median s, p99 s, WRU) of one UpdateItem ADD on a small counter item, with 50 threads at once."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    table = cloud.config.stack.table_name

    def one(i: int) -> tuple[float, float]:
        started = time.perf_counter()
        response = client.update_item(TableName=table, Key={"pk": {"S": "BENCH#COUNTER"}, "sk": {"S": f"S#{i % 8}"}},
                                      UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}},
                                      ReturnConsumedCapacity="TOTAL")
        return time.perf_counter() - started, float(response["ConsumedCapacity"]["CapacityUnits"])

    for i in range(200):  # warm the JVM
        one(i)
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        results = list(pool.map(one, range(samples)))
    times = [t for t, _ in results]
    return statistics.median(times), p99(times), statistics.median(u for _, u in results)


def run(cloud: Any, samples: int = 200) -> dict[str, Any]:
    from agenthq.adapters.model import ModelRequest
    from agenthq.runs.launch import create_run_record
    from agenthq.services import get_services
    from agenthq.store import tenant_scope
    from agenthq.store.items import Agent, Run
    from agenthq.tiers import TIERS
    from agenthq.usage import TokenUsage, Usage, infra, ledger, quota
    from tests.support import client_for, create_agent, set_tier, signup, wait_for

    services = get_services()
    median_update, p99_update, update_wru = update_item_baseline(cloud, samples)
    with client_for(cloud) as api:
        tenant = signup(api, tag="bench-cost", tier="pro")
        set_tier(api, tenant.workspace_id, "enterprise",
                 limit_overrides={"runs_per_day": 100_000, "concurrent_runs": 10_000})
        agent_view = create_agent(tenant, "bench-metered", "sre")
        five_step = wait_for(tenant, tenant.api.post(tenant.path(f"/agents/{agent_view['id']}/runs"),
                                                     json={"input": RUN_INPUT}, headers=tenant.headers).json()["id"])
    workspace_id = tenant.workspace_id
    with tenant_scope(workspace_id):
        limits = quota.workspace_limits(workspace_id)
        agent = Agent.get(*Agent.key(workspace_id, agent_view["id"]))

    # ---- launch enforcement under 50 concurrent launches (in process: the launch transaction itself)
    def launch_once(_: int) -> float:
        with tenant_scope(workspace_id):
            return _timed(lambda: create_run_record(services, workspace_id, agent, "bench", created_by="bench"))

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        launches = list(pool.map(launch_once, range(samples)))

    # ---- the reservation before a model call, 50 at once; and WRU of reserve + metering
    request = ModelRequest(model="claude-sonnet-5-5", system="You are a bench.", max_tokens=1024, tools=[],
                           messages=[{"role": "user", "content": [{"type": "text", "text": "Hello."}]}])
    at = services.now()
    hold = quota.hold_for(request, at)

    def reserve_once(i: int) -> float:
        with tenant_scope(workspace_id):
            return _timed(lambda: quota.reserve(workspace_id, f"BENCHRUN{i:018d}", 1, hold, limits, at))

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        reservations = list(pool.map(reserve_once, range(samples)))

    # ---- the same, every reservation also from one run tree's budget (its one item contended by all 50;
    # a real tree's runs reserve one at a time, as a parent waits for its child)
    tree = quota.RunTree("BENCHROOT" + "0" * 17, 10**12)

    def reserve_in_tree(i: int) -> float:
        with tenant_scope(workspace_id):
            return _timed(lambda: quota.reserve(workspace_id, f"BENCHTREE{i:017d}", 1, hold, limits, at, tree))

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        tree_reservations = list(pool.map(reserve_in_tree, range(samples)))

    from agenthq.runs import engine

    with tenant_scope(workspace_id):
        run = Run.get(*Run.key(workspace_id, five_step["id"]))
        work = engine.Slice(services, run)
        run_tree = quota.RunTree.of(work.body())  # a run launched now is the root of its tree
        with infra.metering(memory_mb=1024) as meter:
            quota.reserve(workspace_id, run.id, 999, hold, limits, at, run_tree)
            engine._meter_model_call(work, 999, ledger.model_entry(f"msg_bench_{time.time_ns()}"),
                                     request.model, Usage.model_call(request.model, TokenUsage(1200, 300), at.date()),
                                     quota.reservation_for(workspace_id, run.id, 999, hold, at, run_tree))
            metering_wru = meter.write_units

    print_table("Cost control (ratios to one DynamoDB UpdateItem measured in the same run, 50 threads)", [
        ("UpdateItem of a counter (baseline)", 1.0, f"median {ms(median_update)}, p99 {ms(p99_update)}, "
                                                     f"{update_wru:g} WRU"),
        ("WRU per metered model call", metering_wru / update_wru,
         f"{metering_wru:g} WRU: reservation (3 items: it, the month's quota, the run tree's) + metering "
         "(ledger, run, 2 counters, quota, run tree, reservation)"),
        ("launch enforcement p99, 50 concurrent", p99(launches) / p99_update,
         f"p99 {ms(p99(launches))} (median {ms(statistics.median(launches))}), {len(launches)} launches"),
        ("pre-call reservation p99, 50 concurrent", p99(reservations) / p99_update,
         f"p99 {ms(p99(reservations))} (median {ms(statistics.median(reservations))}), {len(reservations)} calls"),
        ("  the same, all 50 in one run tree", p99(tree_reservations) / p99_update,
         f"p99 {ms(p99(tree_reservations))} (median {ms(statistics.median(tree_reservations))}), "
         f"{len(tree_reservations)} calls"),
    ])

    infra_usd = Decimal(five_step["usage"]["infra_cost_usd"])
    rows = []
    worst: dict[str, float] = {}
    for tier, tier_limits in TIERS.items():
        month = tier_limits.budget_usd_per_month + tier_limits.runs_per_day * 30 * infra_usd
        price = tier_limits.price_usd_per_month
        worst[tier.value] = float(month / price) if price else float(month)
        detail = (f"${tier_limits.budget_usd_per_month} model + {tier_limits.runs_per_day} runs/day × 30 × "
                  f"${infra_usd} = ${month:.2f} a month")
        if price:
            rule = "within" if month <= price * Decimal("0.4") else "OVER"
            rows.append((f"{tier.value} (${price}/month)", f"{worst[tier.value]:.2f} of price", f"{detail}; {rule} 40%"))
        else:
            rule = "within" if month <= Decimal("1.50") else "OVER"
            rows.append((f"{tier.value} ($0)", f"${month:.2f}", f"{detail}; {rule} $1.50"))
    print_rows(f"Each tier's worst case (modelled infra of a {STEPS}-step run, metered by the engine: "
               f"${infra_usd})", rows)
    return {"metering_wru": metering_wru, "launch_p99_ratio": p99(launches) / p99_update,
            "reservation_p99_ratio": p99(reservations) / p99_update,
            "tree_reservation_p99_ratio": p99(tree_reservations) / p99_update, "run_infra_usd": float(infra_usd),
            "worst_case": worst}
