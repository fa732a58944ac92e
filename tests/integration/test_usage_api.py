"""The usage API on the local cloud (DESIGN §5): the summary, the daily series,
the per-run export and the alerts agree with what real runs used — the run
records, the usage ledger and the quota items — to the micro-dollar; who may
read them; and bad input is a 400."""

from __future__ import annotations

import calendar
import csv
import io
import json
from datetime import date, datetime

import pytest

from agenthq.store import tenant_scope
from agenthq.usage import Usage, ledger
from tests.support import (
    PASSWORD,
    assert_error,
    bearer,
    client_for,
    create_agent,
    launch,
    set_tier,
    signup,
    wait_for,
    with_api_key,
)

pytestmark = pytest.mark.slow

TOOLS = 'Check.\n/tools [{"name": "calculator", "input": {"expression": "6*7"}}, {"name": "current_time", "input": {}}]'
DELEGATE = "Ask the SRE.\n/tool delegate " + json.dumps(
    {"agent": "sre-bot", "input": 'Compute.\n/tool calculator {"expression": "2+2"}'})
ROUTES = ("/usage", "/usage/daily", "/usage/export", "/alerts")
USAGE_COLUMNS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens", "tool_calls",
                 "agent_seconds")


def micro(dollars: str) -> int:
    """A money string of the API ("1.234567") in micro-dollars, exactly."""
    whole, _, fraction = dollars.partition(".")
    assert len(fraction) == 6, dollars
    return int(whole) * 1_000_000 + int(fraction)


@pytest.fixture(scope="module")
def busy(cloud):
    """A pro workspace with two agents and four ended runs (one a delegated child),
    and the runs' ledger entries (``extra["ledger"]``)."""
    with client_for(cloud) as api:
        tenant = signup(api, tag="usage", tier="pro")
        coordinator = create_agent(tenant, "coordinator", "coordinator")
        create_agent(tenant, "sre-bot", "sre")
        launched = [launch(tenant, coordinator["id"], text).json()["id"] for text in (TOOLS, TOOLS, DELEGATE)]
        assert all(wait_for(tenant, rid)["status"] == "succeeded" for rid in launched)
        runs = tenant.get("/runs").json()["items"]
        assert len(runs) == 4 and all(r["status"] == "succeeded" for r in runs), runs
        tenant.extra["runs"] = {r["id"]: r for r in runs}
        with tenant_scope(tenant.workspace_id):
            tenant.extra["ledger"] = [e for rid in tenant.extra["runs"]
                                      for e in ledger.entries(tenant.workspace_id, rid)]
        yield tenant


def run_totals(runs: list[dict]) -> dict[str, int]:
    """The run records' usage, summed (cost in micro-dollars)."""
    totals = {name: sum(r["usage"][name] for r in runs) for name in USAGE_COLUMNS}
    return {**totals, "cost_micro_usd": sum(micro(r["usage"]["cost_usd"]) for r in runs),
            "infra_micro_usd": sum(micro(r["usage"]["infra_cost_usd"]) for r in runs)}


def ledger_total(entries, within=lambda at: True) -> Usage:
    """The ledger entries' sum — of those counted at a time ``within`` a period."""
    return sum((Usage.of(e) for e in entries if within(e.at)), Usage())


def metered(usage: Usage) -> dict:
    """A Usage as the API shows metered totals (cost in micro-dollars here)."""
    return {**{name: getattr(usage, name) for name in ("runs", "model_calls", *USAGE_COLUMNS)},
            "model_cost_usd": usage.cost_micro_usd, "infra_cost_usd": usage.infra_micro_usd}


def shown(body: dict) -> dict:
    return {**{name: body[name] for name in ("runs", "model_calls", *USAGE_COLUMNS)},
            "model_cost_usd": micro(body["model_cost_usd"]), "infra_cost_usd": micro(body["infra_cost_usd"])}


# --------------------------------------------------------------------------- the summary


def test_the_summary_matches_what_the_runs_used(busy):
    """What the runs used is their ledger: counted in the day and month of each
    entry (a run may straddle midnight), and equal to the run records in all."""
    runs, entries = list(busy.extra["runs"].values()), busy.extra["ledger"]
    everything = ledger_total(entries)
    recorded = run_totals(runs)
    assert {name: getattr(everything, name) for name in USAGE_COLUMNS} == {name: recorded[name] for name in USAGE_COLUMNS}
    assert everything.runs == 4 and everything.model_calls == sum(r["steps"] for r in runs)
    assert everything.cost_micro_usd == recorded["cost_micro_usd"] > 0

    month = busy.get("/usage", params={"period": "month"})
    assert month.status_code == 200, month.text
    body = month.json()
    assert body["workspace_id"] == busy.workspace_id and body["tier"] == "pro" and body["period"] == "month"
    now = datetime.fromisoformat(body["as_of"])
    first_of_next = date(now.year + now.month // 12, now.month % 12 + 1, 1)
    assert body["resets_at"] == f"{first_of_next}T00:00:00+00:00"
    assert body["starts_at"] == f"{now.date().replace(day=1)}T00:00:00+00:00"

    this_month = ledger_total(entries, lambda at: (at.year, at.month) == (now.year, now.month))
    assert shown(body["usage"]) == metered(this_month)

    limits = body["limits"]
    tokens = this_month.tokens.total
    assert limits["tokens_per_month"] == {
        "period": "month", "used": tokens, "reserved": 0, "limit": 20_000_000,
        "percent": float(tokens * 1000 // 20_000_000) / 10, "resets_at": body["resets_at"]}
    budget = limits["budget_usd_per_month"]
    assert micro(budget["used"]) == this_month.cost_micro_usd and budget["reserved"] == "0.000000"
    assert budget["limit"] == "40.000000" and budget["resets_at"] == body["resets_at"]
    assert budget["percent"] == float(this_month.cost_micro_usd * 1000 // 40_000_000) / 10
    assert limits["max_agents"] == {"period": None, "used": 2, "limit": 50, "percent": 4.0, "resets_at": None}
    assert limits["concurrent_runs"] == {"period": None, "used": 0, "queued": 0, "limit": 25, "percent": 0.0,
                                         "resets_at": None}, "every run ended: no slot is held"

    day = busy.get("/usage", params={"period": "day"}).json()
    today = datetime.fromisoformat(day["as_of"]).date()
    assert day["period"] == "day" and day["starts_at"] == f"{today}T00:00:00+00:00"
    launched_today = sum(1 for r in runs if r["created_at"][:10] == str(today))  # a launch counts on its day
    assert day["limits"]["runs_per_day"] == {
        "period": "day", "used": launched_today, "limit": 2000, "percent": float(launched_today * 1000 // 2000) / 10,
        "resets_at": f"{date.fromordinal(today.toordinal() + 1)}T00:00:00+00:00"}
    assert shown(day["usage"]) == metered(ledger_total(entries, lambda at: at.date() == today))
    assert busy.get("/usage").json()["period"] == "month", "month is the default period"


def test_concurrent_runs_show_the_runs_holding_a_slot_and_those_queued(cloud, api):
    tenant = signup(api, tag="slots", tier="pro")
    set_tier(api, tenant.workspace_id, "enterprise", limit_overrides={"concurrent_runs": 1})
    agent = create_agent(tenant, "slow", "architect")
    cloud.model_server.latency_seconds = 2.0  # the first run holds its slot while the second is launched
    try:
        launched = [launch(tenant, agent["id"], f"Task {i}.").json()["id"] for i in range(2)]
        seen = []
        for _ in range(100):  # until the first run is running and the second waits for its slot
            seen.append(tenant.get("/usage").json()["limits"]["concurrent_runs"])
            if seen[-1]["used"] == 1 and seen[-1]["queued"] == 1:
                break
        assert seen[-1] == {"period": None, "used": 1, "queued": 1, "limit": 1, "percent": 100.0,
                            "resets_at": None}, seen
    finally:
        cloud.model_server.latency_seconds = 0.0
    assert all(wait_for(tenant, rid)["status"] == "succeeded" for rid in launched)
    after = tenant.get("/usage").json()["limits"]["concurrent_runs"]
    assert (after["used"], after["queued"]) == (0, 0)


# --------------------------------------------------------------------------- the daily series


def test_the_daily_rows_of_the_month_sum_to_the_month(busy):
    month = busy.get("/usage", params={"period": "month"}).json()
    start = date.fromisoformat(month["starts_at"][:10])
    end = start.replace(day=calendar.monthrange(start.year, start.month)[1])
    daily = busy.get("/usage/daily", params={"from": str(start), "to": str(end)})
    assert daily.status_code == 200, daily.text
    body = daily.json()
    rows = body["items"]
    assert [r["date"] for r in rows] == [str(date.fromordinal(start.toordinal() + n)) for n in range(len(rows))]
    assert rows[-1]["date"] == str(end), "one row per day, both ends included"
    summed = {name: sum(r[name] for r in rows) for name in rows[0] if name != "date" and not name.endswith("_usd")}
    summed["model_cost_usd"] = sum(micro(r["model_cost_usd"]) for r in rows)
    expected = {name: value for name, value in month["usage"].items() if not name.endswith("_usd")}
    assert summed == {**expected, "model_cost_usd": micro(month["usage"]["model_cost_usd"])}
    assert body["totals"] == month["usage"]
    by_day: dict[str, Usage] = {}
    for entry in busy.extra["ledger"]:
        by_day[str(entry.at.date())] = by_day.get(str(entry.at.date()), Usage()) + Usage.of(entry)
    for row in rows:  # each day is its ledger entries; a quiet day is a row of zeros
        assert shown(row) == metered(by_day.get(row["date"], Usage()))
    assert sum(1 for r in rows if r["runs"]) >= 1

    default = busy.get("/usage/daily").json()  # this month so far
    assert default["from"] == default["to"][:8] + "01" and default["to"] >= month["as_of"][:10]


# --------------------------------------------------------------------------- the export


def test_the_export_totals_equal_the_ledger_and_the_run_records_to_the_micro_dollar(busy):
    runs = busy.extra["runs"]
    first = min(r["created_at"][:10] for r in runs.values())
    last = max(r["created_at"][:10] for r in runs.values())
    exported = busy.get("/usage/export", params={"format": "json", "from": first, "to": last})
    assert exported.status_code == 200, exported.text
    body = exported.json()
    assert [item["run_id"] for item in body["items"]] == sorted(runs), "every run once, oldest first"
    child = next(item for item in body["items"] if item["parent_run_id"])
    assert child["agent_name"] == "sre-bot" and child["parent_run_id"] in runs
    for item in body["items"]:
        record = runs[item["run_id"]]
        assert {name: item[name] for name in USAGE_COLUMNS} == {name: record["usage"][name] for name in USAGE_COLUMNS}
        assert item["model_cost_usd"] == record["usage"]["cost_usd"]
        assert item["infra_cost_usd"] == record["usage"]["infra_cost_usd"]
        assert (item["status"], item["created_at"]) == (record["status"], record["created_at"])

    totals = body["totals"]
    from_ledger = ledger_total(busy.extra["ledger"])
    from_records = run_totals(list(runs.values()))
    assert totals["runs"] == from_ledger.runs == 4
    assert micro(totals["model_cost_usd"]) == from_ledger.cost_micro_usd == from_records["cost_micro_usd"] > 0
    for name in USAGE_COLUMNS:
        assert totals[name] == getattr(from_ledger, name) == from_records[name], name
    assert micro(totals["infra_cost_usd"]) == from_ledger.infra_micro_usd == from_records["infra_micro_usd"] > 0

    as_csv = busy.get("/usage/export", params={"format": "csv", "from": first, "to": last})
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["content-disposition"] == (
        f'attachment; filename="agenthq-usage-{busy.workspace_id}-{first}-{last}.csv"')
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["run_id"] for r in rows] == [item["run_id"] for item in body["items"]]
    assert sum(micro(r["model_cost_usd"]) for r in rows) == from_ledger.cost_micro_usd
    for name in USAGE_COLUMNS:
        assert sum(int(r[name]) for r in rows) == getattr(from_ledger, name), name

    before = str(date.fromordinal(date.fromisoformat(first).toordinal() - 1))
    earlier = busy.get("/usage/export", params={"from": before, "to": before}).json()
    assert earlier["items"] == [] and earlier["totals"]["runs"] == 0
    assert earlier["totals"]["model_cost_usd"] == "0.000000"


# --------------------------------------------------------------------------- alerts


def test_alerts_are_listed_newest_first_and_paginated(api):
    tenant = signup(api, tag="alerts", tier="pro")
    set_tier(api, tenant.workspace_id, "enterprise", limit_overrides={"runs_per_day": 5})
    agent = create_agent(tenant, "counted", "architect")
    assert tenant.get("/alerts").json() == {"items": [], "next_cursor": None}
    for i in range(5):  # the 4th launch crosses 80%, the 5th 100%
        assert launch(tenant, agent["id"], f"Task {i}.").status_code == 202
    listed = tenant.get("/alerts").json()
    assert [(a["limit"], a["threshold_percent"]) for a in listed["items"]] == [
        ("runs_per_day", 100), ("runs_per_day", 80)]
    newest = listed["items"][0]
    assert newest["used"] == 5 and newest["allowed"] == 5 and newest["period"].startswith("DAY#")
    assert listed["items"][0]["at"] >= listed["items"][1]["at"]

    first = tenant.get("/alerts", params={"limit": 1}).json()
    assert first["items"] == listed["items"][:1] and first["next_cursor"]
    second = tenant.get("/alerts", params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert second["items"] == listed["items"][1:]
    summary = tenant.get("/usage", params={"period": "day"}).json()
    assert summary["limits"]["runs_per_day"]["percent"] == 100.0


# --------------------------------------------------------------------------- who may read


def test_viewers_and_usage_read_keys_may_read_others_may_not(cloud, busy):
    with client_for(cloud) as api:
        colleague = signup(api, tag="viewer", workspace_name="Viewer's own")
        owner = busy
        added = owner.api.post(owner.path("/members"), headers=owner.headers,
                               json={"email": colleague.email, "role": "viewer"})
        assert added.status_code == 201, added.text
        login = api.post("/auth/login", json={"email": colleague.email, "password": PASSWORD,
                                              "workspace_id": owner.workspace_id})
        as_viewer = bearer(login.json()["access_token"])
        reader = with_api_key(signup(api, tag="keys", tier="pro"), scopes=("usage:read",))
        blind = with_api_key(signup(api, tag="blind", tier="pro"), scopes=("runs:read", "workspace:read"))
        for route in ROUTES:
            assert api.get(owner.path(route), headers=as_viewer).status_code == 200, route
            assert api.get(reader.path(route), headers=reader.key_headers).status_code == 200, route
            error = assert_error(api.get(blind.path(route), headers=blind.key_headers), 403, "forbidden")
            assert "usage:read" in error["message"]
            # another workspace's usage, by its owner's token and by a key that may read usage
            assert_error(api.get(owner.path(route), headers=colleague.headers), 404, "not_found")
            assert_error(api.get(owner.path(route), headers=reader.key_headers), 404, "not_found")


# --------------------------------------------------------------------------- bad input


BAD = [
    ("/usage", {"period": "week"}, "period"),
    ("/usage", {"period": ""}, "period"),
    ("/usage", {"period": "a" * 200}, "period"),
    ("/usage/daily", {"from": "2026-13-01"}, "from"),
    ("/usage/daily", {"from": "2026-02-30", "to": "2026-03-01"}, "from"),
    ("/usage/daily", {"to": "tomorrow"}, "to"),
    ("/usage/daily", {"from": "2026-11-27", "to": "2026-11-26"}, "from"),
    ("/usage/daily", {"from": "2026-01-01", "to": "2026-04-03"}, "to"),  # 93 days: 92 is the most
    ("/usage/daily", {"from": "0001-01-01", "to": "0001-01-02"}, "from"),
    ("/usage/daily", {"from": "9999-12-31"}, "from"),
    ("/usage/export", {"format": "xml"}, "format"),
    ("/usage/export", {"format": "csv", "from": "2026-11-01", "to": "2026-12-02"}, "to"),  # 31 days is the most
    ("/usage/export", {"from": "2026-11-27T00:00:00"}, "from"),
    ("/usage/export", {"from": "2026-11-27", "to": "2026-11-01"}, "from"),
    ("/alerts", {"limit": 0}, "limit"),
    ("/alerts", {"cursor": "not-a-cursor"}, "cursor"),
]


@pytest.mark.parametrize(("route", "params", "field"), BAD, ids=[f"{r} {p}" for r, p, _ in BAD])
def test_bad_query_parameters_are_400_with_the_field(busy, route, params, field):
    error = assert_error(busy.get(route, params=params), 400, "invalid_request")
    assert field in {d["field"] for d in error.get("details", [])}, error
