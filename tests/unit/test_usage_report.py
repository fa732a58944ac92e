"""The usage API's arithmetic (agenthq.usage.report), without DynamoDB:
periods and their resets, percentages, date ranges, the run-id key range,
daily rows, the export's rows, totals and CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from agenthq import ids
from agenthq.errors import InvalidRequest
from agenthq.tiers import TIERS, Tier
from agenthq.usage import Usage, report

AT = datetime(2026, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)


def test_a_day_resets_at_the_next_midnight_and_a_month_on_the_first_of_the_next():
    assert report.period_bounds("day", AT) == (datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert report.period_bounds("month", AT) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    feb = datetime(2028, 2, 29, 12, tzinfo=UTC)
    assert report.next_month(feb) == datetime(2028, 3, 1, tzinfo=UTC)
    assert report.next_day(feb) == datetime(2028, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(("used", "limit", "expected"), [
    (0, 50, 0.0), (1, 3, 33.3), (2, 3, 66.6), (1999, 2000, 99.9), (2000, 2000, 100.0), (3, 2, 150.0),
    (0, 0, 100.0), (1, 1_000_000, 0.0),
])
def test_percent_has_one_decimal_rounded_down_so_100_means_used_up(used, limit, expected):
    assert report.percent(used, limit) == expected


def test_limits_are_measured_as_they_are_enforced():
    limits = TIERS[Tier.starter]
    month = report.MonthQuota(used_tokens=1_000_000, committed_tokens=1_250_000, used_micro_usd=3_000_000,
                              committed_micro_usd=3_500_001)
    slots = report.Slots(running=5, waiting=3)
    measured = {m.name: m.view() for m in report.measured_limits(limits, AT, 320, month, slots, 4, 7, 2,
                                                                 pending_approvals=25, webhooks=3)}
    assert measured == {
        "runs_per_day": {"period": "day", "used": 320, "limit": 400, "percent": 80.0,
                         "resets_at": "2027-01-01T00:00:00+00:00"},
        "concurrent_runs": {"period": None, "used": 5, "queued": 3, "limit": 5, "percent": 100.0, "resets_at": None},
        "tokens_per_month": {"period": "month", "used": 1_000_000, "reserved": 250_000, "limit": 5_000_000,
                             "percent": 20.0, "resets_at": "2027-01-01T00:00:00+00:00"},
        "budget_usd_per_month": {"period": "month", "used": "3.000000", "reserved": "0.500001",
                                 "limit": "15.000000", "percent": 20.0, "resets_at": "2027-01-01T00:00:00+00:00"},
        "max_agents": {"period": None, "used": 4, "limit": 10, "percent": 40.0, "resets_at": None},
        "live_connections": {"period": None, "used": 7, "limit": 100, "percent": 7.0, "resets_at": None},
        "schedules": {"period": None, "used": 2, "min_interval_seconds": 300, "limit": 10, "percent": 20.0,
                      "resets_at": None},
        "pending_approvals": {"period": None, "used": 25, "limit": 100, "percent": 25.0, "resets_at": None},
        "webhooks": {"period": None, "used": 3, "limit": 10, "percent": 30.0, "resets_at": None},
        "mcp_servers": {"period": None, "used": 0, "limit": 5, "percent": 0.0, "resets_at": None},
    }


def test_the_summary_shows_the_period_its_totals_and_the_limits():
    metered = Usage(runs=2, model_calls=3, input_tokens=10, cost_micro_usd=1_234_567, tool_calls=1, api_calls=5)
    body = report.summary("day", AT, "starter", [], metered)
    assert body["starts_at"] == "2026-12-31T00:00:00+00:00" and body["resets_at"] == "2027-01-01T00:00:00+00:00"
    assert body["usage"] == {"runs": 2, "model_calls": 3, "input_tokens": 10, "output_tokens": 0,
                             "cache_write_tokens": 0, "cache_read_tokens": 0, "model_cost_usd": "1.234567",
                             "infra_cost_usd": "0.000000", "tool_calls": 1, "agent_seconds": 0, "api_calls": 5}


@pytest.mark.parametrize(("first", "last", "expected"), [
    (None, None, (date(2026, 12, 1), date(2026, 12, 31))),
    ("2026-12-05", None, (date(2026, 12, 5), date(2026, 12, 31))),
    (None, "2026-11-15", (date(2026, 11, 1), date(2026, 11, 15))),
    ("2026-10-01", "2026-12-31", (date(2026, 10, 1), date(2026, 12, 31))),  # 92 days
    ("2026-02-03", "2026-02-03", (date(2026, 2, 3), date(2026, 2, 3))),
])
def test_date_ranges_default_to_this_month_so_far(first, last, expected):
    assert report.date_range(first, last, date(2026, 12, 31), 92) == expected


@pytest.mark.parametrize(("first", "last", "field"), [
    ("2026-09-30", "2026-12-31", "to"),  # 93 days
    ("2026-12-02", "2026-12-01", "from"),
    ("2026-13-01", None, "from"), ("2026-02-30", None, "from"), ("20261201", None, "from"),
    ("2026-1-01", None, "from"), (" 2026-12-01", None, "from"), ("1969-12-31", None, "from"),
    (None, "9999-12-31", "to"), (None, "yesterday", "to"), ("", None, "from"), ("２０２６-12-01", None, "from"),
])
def test_bad_date_ranges_are_invalid_requests_naming_the_field(first, last, field):
    with pytest.raises(InvalidRequest) as raised:
        report.date_range(first, last, date(2026, 12, 31), 92)
    assert raised.value.details[0]["field"] == field


def test_both_bad_dates_are_named():
    with pytest.raises(InvalidRequest) as raised:
        report.date_range("0001-01-01", "2026-02-29", date(2026, 12, 31), 92)
    assert [d["field"] for d in raised.value.details] == ["from", "to"]


def test_bad_periods_and_formats_are_invalid_requests():
    for bad in ("week", "", "DAY"):
        with pytest.raises(InvalidRequest):
            report.period_param(bad)
        with pytest.raises(InvalidRequest):
            report.export_format_param(bad)
    assert report.period_param("day") == "day" and report.export_format_param("csv") == "csv"


def test_the_run_id_range_holds_exactly_the_ids_made_in_those_days():
    lowest, highest = report.run_id_bounds(date(2026, 11, 27), date(2026, 11, 28))

    def made_at(*when):  # the smallest and the largest id of that millisecond
        prefix = ids.time_prefix(int(datetime(*when, tzinfo=UTC).timestamp() * 1000))
        return [prefix + "0" * 16, prefix + "Z" * 16]

    inside = [*made_at(2026, 11, 27), *made_at(2026, 11, 28, 23, 59, 59, 999_000), *made_at(2026, 11, 28, 12)]
    outside = [*made_at(2026, 11, 26, 23, 59, 59, 999_000), *made_at(2026, 11, 29)]
    assert all(ids.is_id(i) for i in inside + outside)
    assert all(lowest <= i <= highest for i in inside)
    assert not any(lowest <= i <= highest for i in outside)
    now = ids.new_id()
    assert now[:10] == ids.time_prefix(ids.id_time_ms(now))


def test_daily_rows_cover_every_day_with_zero_rows_for_quiet_days():
    by_day = {date(2026, 11, 2): Usage(runs=2, cost_micro_usd=5), date(2026, 11, 4): Usage(tool_calls=1)}
    rows = report.daily_rows(by_day, date(2026, 11, 1), date(2026, 11, 4))
    assert [r["date"] for r in rows] == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    assert [r["runs"] for r in rows] == [0, 2, 0, 0]
    assert [r["model_cost_usd"] for r in rows] == ["0.000000", "0.000005", "0.000000", "0.000000"]
    assert rows[0] == report.usage_view(Usage()) | {"date": "2026-11-01"}


def exported(n: int, name: str = "Ops", cost: int = 1_000_001) -> report.ExportedRun:
    return report.ExportedRun(
        run_id=ids.new_id(), agent_id="01KSAMPTE0000000000000000A", agent_name=name, parent_run_id=None,
        status="succeeded", created_at=datetime(2026, 11, 27, 10, n, tzinfo=UTC), finished_at=None,
        usage=Usage(runs=1, input_tokens=100 * n, output_tokens=n, cost_micro_usd=cost, tool_calls=n,
                    agent_seconds=2, infra_micro_usd=10 * n))


def test_export_totals_are_the_sum_of_the_rows_to_the_micro_dollar():
    runs = [exported(n) for n in range(1, 4)]
    body = report.export_json(runs, date(2026, 11, 27), date(2026, 11, 27))
    assert len(body["items"]) == 3
    assert body["totals"] == {"runs": 3, "input_tokens": 600, "output_tokens": 6, "cache_write_tokens": 0,
                              "cache_read_tokens": 0, "model_cost_usd": "3.000003", "infra_cost_usd": "0.000060",
                              "tool_calls": 6, "agent_seconds": 6}
    assert body["items"][0]["model_cost_usd"] == "1.000001" and body["items"][0]["infra_cost_usd"] == "0.000010"


def test_the_csv_has_a_header_and_a_row_per_run_and_defuses_formulas():
    runs = [exported(1, name="=HYPERLINK(\"http://evil\")"), exported(2, name="Ops, \"East\"")]
    rows = list(csv.reader(io.StringIO(report.export_csv(runs))))
    assert rows[0] == list(report.EXPORT_COLUMNS)
    assert len(rows) == 3
    by_column = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert by_column[0]["agent_name"] == "'=HYPERLINK(\"http://evil\")"
    assert by_column[1]["agent_name"] == "Ops, \"East\""
    assert by_column[0]["parent_run_id"] == "" and by_column[0]["model_cost_usd"] == "1.000001"


def test_an_export_past_its_run_bound_is_refused_not_cut():
    assert len(report.bounded((exported(1) for _ in range(3)), max_runs=3)) == 3
    with pytest.raises(InvalidRequest) as raised:
        report.bounded((exported(1) for _ in range(4)), max_runs=3)
    assert "more than 3 runs" in raised.value.message
