"""The benchmarks keep working (their figures are printed, never asserted)."""

from __future__ import annotations


def test_handler_benchmarks_run(cloud, capsys):
    from bench import handlers

    results = handlers.run(cloud, n=3, imports=0)
    rows = [row for table in results.values() for row in table]
    assert len(rows) == 4 and all(ratio > 0 for _, ratio, _ in rows)
    assert "full handler" in capsys.readouterr().out


def test_run_benchmark_runs(cloud, capsys):
    from bench import runs

    figures = runs.run(cloud, runs=1, getitem_samples=3, warmup_runs=0, paced=(2.0,), long_paced=())
    for name in ("transitions_per_step", "write_requests_per_step", "wru_per_step", "rru_per_step",
                 "wall_seconds_per_step", "wall_per_step_ratio", "total_usd", "langsmith_ratio"):
        assert figures[name] > 0, name
    assert all(usd > 0 for usd in figures["cost_usd"].values()), figures["cost_usd"]
    by_latency = figures["by_latency"]
    assert set(by_latency) == {runs.STEPS, runs.LONG_STEPS}
    for steps, costs in by_latency.items():
        assert list(costs) == list(runs.LATENCIES)
        usd = [costs[latency]["usd"] for latency in runs.LATENCIES]
        assert usd == sorted(usd), f"{steps} steps: a longer wait costs more"
    for steps, shape in figures["bounds"].items():  # counts, not timings: the bench's bound holds
        assert shape["writes_per_step"] <= 2, f"{steps} steps: the call mark rides on the commit before (275)"
    paced = by_latency[runs.STEPS][2.0]
    assert paced["measured"] == 1.0 and paced["billed_seconds"] >= runs.STEPS * 2.0, "the measured waits are billed"
    out = capsys.readouterr().out
    assert "state transitions" in out and "LangSmith" in out and "by model latency" in out


def test_memory_benchmark_runs_and_every_function_has_half_again_its_peak_memory(cloud, capsys):
    """Each function's MemorySize (template.yaml) is at least 1.5 × its peak RSS (docs/benchmarks.md, "Memory")."""
    from bench import memory

    figures = memory.run(cloud, runs=1)
    assert figures["RunStepsFunction"]["worker_peak_mb"] > 0, "the workload ran the run worker"
    for name, figure in figures.items():
        assert figure["peak_mb"] > 0, name
        assert figure["configured_mb"] >= memory.HEADROOM * figure["peak_mb"], (name, figure)
    assert "peak RSS" in capsys.readouterr().out


def test_cost_control_benchmark_runs(cloud, capsys):
    from bench import cost_control

    figures = cost_control.run(cloud, samples=10)
    assert figures["metering_wru"] > 0 and figures["run_infra_usd"] > 0
    assert figures["launch_p99_ratio"] > 0 and figures["reservation_p99_ratio"] > 0
    assert set(figures["worst_case"]) == {"free", "starter", "pro"}
    out = capsys.readouterr().out
    assert "WRU per metered model call" in out and "worst case" in out


def test_live_flood_benchmark_runs(cloud, capsys):
    from bench import live_flood

    figures = live_flood.run(cloud, pings=5, rate=100, rounds=2)
    assert figures["ping_p50_ratio"] > 0 and figures["ping_p99_ratio"] > 0 and figures["flooded"] > 0
    assert "Subscribe flood" in capsys.readouterr().out


def test_session_benchmark_runs_and_the_cache_read_share_grows_with_the_turns(cloud, capsys):
    from bench import sessions

    figures = sessions.run(cloud, turns=4)
    shares = [row["cache_read_share"] for row in figures["turns"]]
    assert shares == sorted(shares) and shares[-1] > shares[1] > 0, shares
    assert all(row["model_usd"] > 0 and row["aws_usd"] > 0 for row in figures["turns"])
    assert "cache-read share" in capsys.readouterr().out
