"""A schedule's cron: parsed, written in EventBridge Scheduler's form and read back, its fires in a
time zone (daylight-saving changes included), and the shortest gap the tiers limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agenthq.schedules.cron import Cron, CronError, zone
from agenthq.tiers import limits_for

NOW = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize("cron, aws", [
    ("0 9 * * *", "cron(0 9 * * ? *)"),
    ("*/15 * * * *", "cron(0,15,30,45 * * * ? *)"),
    ("0 9 * * MON-FRI", "cron(0 9 ? * 2-6 *)"),
    ("0 9 * * 0", "cron(0 9 ? * 1 *)"),
    ("0 9 * * 7", "cron(0 9 ? * 1 *)"),  # 7 is Sunday too
    ("30 8 1,15 JAN-MAR *", "cron(30 8 1,15 1-3 ? *)"),
    ("0 0-23/6 * * *", "cron(0 0,6,12,18 * * ? *)"),
    ("5 4 * * sun,sat", "cron(5 4 ? * 1,7 *)"),
    ("0 0 * * MON/2", "cron(0 0 ? * 1-2,4,6 *)"),  # 1, 3, 5, 7 (as cron counts 0-7): Mon, Wed, Fri, Sun
])
def test_a_cron_is_written_as_eventbridge_scheduler_reads_it_and_read_back(cron, aws):
    parsed = Cron.parse(cron)
    assert parsed.aws_expression() == aws
    assert Cron.parse_aws(aws) == parsed


@pytest.mark.parametrize("cron", ["* * * *", "* * * * * *", "60 * * * *", "0 24 * * *", "0 0 0 * *", "0 0 * 13 *",
                                  "0 0 * * 8", "0 0 1 * MON", "5-1 * * * *", "*/0 * * * *", "0 0 31 2 *", "a b c d e"])
def test_a_cron_scheduler_could_not_run_or_that_never_fires_is_refused(cron):
    with pytest.raises(CronError):
        Cron.parse(cron)


@pytest.mark.parametrize("name", ["Mars/Olympus", "../../etc/passwd", "", "utc ", "/usr/share/zoneinfo/UTC"])
def test_only_iana_time_zone_names_are_time_zones(name):
    with pytest.raises(CronError):
        zone(name)


def test_fires_are_wall_clock_times_in_the_time_zone():
    fires = list(Cron.parse("0 9 * * MON-FRI").fires(NOW, zone("Europe/Paris"), until=NOW + timedelta(days=7)))
    assert [f.astimezone(ZoneInfo("Europe/Paris")).strftime("%a %H:%M") for f in fires] == [
        "Tue 09:00", "Wed 09:00", "Thu 09:00", "Fri 09:00", "Mon 09:00"]
    assert fires[0] == datetime(2026, 12, 8, 8, 0, tzinfo=UTC)


def test_a_time_the_clock_skips_fires_an_hour_later_and_a_repeated_time_fires_once():
    new_york = zone("America/New_York")
    spring = list(Cron.parse("30 2 * * *").fires(datetime(2027, 3, 13, 12, tzinfo=UTC), new_york,
                                                 until=datetime(2027, 3, 15, 12, tzinfo=UTC)))
    assert [f.astimezone(new_york).strftime("%d %H:%M") for f in spring] == ["14 03:30", "15 02:30"]
    autumn = list(Cron.parse("30 1 * * *").fires(datetime(2027, 11, 6, 12, tzinfo=UTC), new_york,
                                                 until=datetime(2027, 11, 8, 12, tzinfo=UTC)))
    assert [f.astimezone(UTC).strftime("%d %H:%M") for f in autumn] == ["07 05:30", "08 06:30"]


@pytest.mark.parametrize("cron, tz, gap", [
    ("0 * * * *", "UTC", timedelta(hours=1)),
    ("*/5 * * * *", "Asia/Tokyo", timedelta(minutes=5)),
    ("0 9 * * *", "Europe/Paris", timedelta(hours=23)),  # the day the clocks go forward
    ("0 9 * * MON", "UTC", None),  # never two days in a row
    ("0 0,23 1,2 * *", "UTC", timedelta(hours=1)),  # 23:00 on the 1st, 00:00 on the 2nd
    ("0 0,23 1,15 * *", "UTC", timedelta(hours=23)),  # never two days in a row: no gap over midnight
    ("0,58 1,3 * * *", "America/New_York", timedelta(minutes=2)),  # 01:58 EST, then 03:00 EDT
    ("0 1,3 * * *", "America/New_York", timedelta(hours=1)),  # 01:00 EST, then 03:00 EDT
])
def test_the_shortest_gap_is_measured_in_real_time_in_the_time_zone(cron, tz, gap):
    assert Cron.parse(cron).shortest_gap(zone(tz), NOW) == gap


def test_the_tiers_shortest_intervals_are_hourly_for_free_and_five_minutes_when_paid():
    assert [limits_for(t).schedule_min_interval_seconds for t in ("free", "starter", "pro")] == [3600, 300, 300]
    assert [limits_for(t).schedules for t in ("free", "starter", "pro")] == [1, 10, 50]
    assert limits_for("enterprise", {"schedules": 500, "schedule_min_interval_seconds": 60}).schedules == 500
