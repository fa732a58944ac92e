"""A 10-turn session on the local cloud: each turn's model tokens by class, and what it costs.

Each turn is a message to one session of an SRE agent (a tool call and an answer: two model calls),
whose prompt carries every earlier turn. The prompt's unchanged prefix carries ``cache_control``, so
from the second turn on the earlier turns are read from the prompt cache (the offline model server
caches as the Messages API does). Printed per turn, from the turn's run (its metered usage):

- input, cache-write, cache-read and output tokens, and the **cache-read share** of the prompt
  (cache read ÷ all prompt tokens): it grows with the turns, as the unchanged prefix does;
- the model cost (each call at the model's prices for all four classes, rounded up per call);
- the **modelled AWS cost** of the turn: what the engine metered for its steps (state transitions,
  Lambda GB-s, DynamoDB request units, the launch) on the local cloud, where a model call takes 0 s,
  and the same priced as on AWS with each model call taking 5 s (DESIGN §5: Lambda bills the run
  worker while it waits on the model).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bench.common import print_rows

TURNS = 10
DESIGN_LATENCY = 5.0  # seconds per model call the AWS cost is also priced at (DESIGN §5)
RUN_WORKER_MB = 256  # the run worker's MemorySize (template.yaml, decisions 183)
TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")


def turn_input(number: int) -> str:
    return "\n".join([f"Turn {number}: check the error budget of service {number} at 99.9% for 30 days.",
                      '/tool calculator {"expression": "(1 - 0.999) * 30 * 24 * 60"}'])


def run(cloud: Any, turns: int = TURNS, poll_interval: float = 0.1) -> dict[str, Any]:
    """Hold a ``turns``-turn session and print its tokens and costs per turn; returns the figures."""
    import time

    from agenthq.usage import infra
    from tests.support import client_for, signup

    if cloud.model_server is None:
        raise RuntimeError("the sessions benchmark needs the offline model server (no ANTHROPIC_API_KEY)")
    gb_second = infra.gb_second_price("arm64")
    rows: list[dict[str, Any]] = []
    with client_for(cloud) as api:
        tenant = signup(api, tag="bench-sessions", tier="pro")
        agent = tenant.post("/agents", json={"name": "bench-sessions", "personality": "sre"}).json()
        session = tenant.post(f"/agents/{agent['id']}/sessions", json={"title": "bench"}).json()
        for number in range(1, turns + 1):
            launched = tenant.post(f"/sessions/{session['id']}/messages", json={"input": turn_input(number)})
            if launched.status_code != 202:
                raise RuntimeError(f"turn {number} was refused: {launched.text}")
            run_id = launched.json()["id"]
            while (found := tenant.get(f"/runs/{run_id}").json())["status"] not in TERMINAL:
                time.sleep(poll_interval)
            if found["status"] != "succeeded":
                raise RuntimeError(f"turn {number} ended {found['status']}: {found['error']}")
            usage = found["usage"]
            prompt = usage["input_tokens"] + usage["cache_write_tokens"] + usage["cache_read_tokens"]
            wait_usd = found["steps"] * DESIGN_LATENCY * RUN_WORKER_MB / 1024 * gb_second
            rows.append({"turn": number, "steps": found["steps"], "input": usage["input_tokens"],
                         "cache_write": usage["cache_write_tokens"], "cache_read": usage["cache_read_tokens"],
                         "output": usage["output_tokens"], "cache_read_share": usage["cache_read_tokens"] / prompt,
                         "model_usd": Decimal(usage["cost_usd"]), "aws_usd": Decimal(usage["infra_cost_usd"]),
                         "aws_usd_at_5s": Decimal(usage["infra_cost_usd"]) + Decimal(str(round(wait_usd, 9)))})
    print_rows(f"A {turns}-turn session: model tokens by class and cost per turn (each turn 2 model calls)", [
        (f"turn {r['turn']:2d}",
         f"in {r['input']:6d}  cache write {r['cache_write']:6d}  cache read {r['cache_read']:6d}  "
         f"out {r['output']:4d}",
         f"cache-read share {r['cache_read_share']:5.1%}  model ${r['model_usd']:.6f}  "
         f"AWS ${r['aws_usd']:.6f} (at {DESIGN_LATENCY:g} s/call ${r['aws_usd_at_5s']:.6f})")
        for r in rows])
    total_model = sum((r["model_usd"] for r in rows), Decimal(0))
    total_aws = sum((r["aws_usd_at_5s"] for r in rows), Decimal(0))
    print(f"  whole session: model ${total_model:.6f}, AWS at {DESIGN_LATENCY:g} s/call ${total_aws:.6f}; "
          f"cache-read share from {rows[0]['cache_read_share']:.1%} (turn 1) to {rows[-1]['cache_read_share']:.1%} "
          f"(turn {turns})")
    return {"turns": rows, "model_usd": total_model, "aws_usd_at_5s": total_aws}
