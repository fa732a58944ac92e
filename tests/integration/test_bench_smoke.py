"""The benchmarks keep working (their figures are printed, never asserted)."""

from __future__ import annotations


def test_handler_benchmarks_run(cloud, capsys):
    from bench import handlers

    results = handlers.run(cloud, n=3, imports=0)
    rows = [row for table in results.values() for row in table]
    assert len(rows) == 4 and all(ratio > 0 for _, ratio, _ in rows)
    assert "full handler" in capsys.readouterr().out
