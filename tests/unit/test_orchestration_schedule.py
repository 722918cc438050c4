"""Cron parsing and data intervals: the arithmetic every run's logical date depends on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from headwater.errors import ConfigError
from headwater.orchestration.schedule import CronSchedule, IntervalSchedule, iter_intervals, make_schedule, to_utc


def dt(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def test_daily_preset_fires_at_midnight() -> None:
    s = CronSchedule.parse("@daily")
    assert s.first_at_or_after(dt(2024, 3, 1, 0, 0)) == dt(2024, 3, 1)
    assert s.first_at_or_after(dt(2024, 3, 1, 0, 1)) == dt(2024, 3, 2)
    assert s.next_after(dt(2024, 3, 1)) == dt(2024, 3, 2)
    assert s.next_after(dt(2024, 2, 28, 23, 59, 30)) == dt(2024, 2, 29)  # leap day


def test_hourly_weekly_monthly_presets() -> None:
    assert CronSchedule.parse("@hourly").next_after(dt(2024, 3, 1, 5, 30)) == dt(2024, 3, 1, 6)
    assert CronSchedule.parse("@weekly").next_after(dt(2024, 3, 1)) == dt(2024, 3, 3)  # a Sunday
    assert CronSchedule.parse("@monthly").next_after(dt(2024, 1, 31, 12)) == dt(2024, 2, 1)
    assert CronSchedule.parse("@yearly").next_after(dt(2024, 6, 1)) == dt(2025, 1, 1)


def test_cron_steps_ranges_lists_and_names() -> None:
    s = CronSchedule.parse("*/15 6-8 * * MON-FRI")
    assert s.minutes == {0, 15, 30, 45}
    assert s.hours == {6, 7, 8}
    assert s.weekdays == {1, 2, 3, 4, 5}
    # Friday 2024-03-01 08:45 -> next is Monday 06:00
    assert s.next_after(dt(2024, 3, 1, 8, 45)) == dt(2024, 3, 4, 6, 0)
    assert CronSchedule.parse("0 0 1,15 JAN,jul *").next_after(dt(2024, 1, 15)) == dt(2024, 7, 1)
    assert CronSchedule.parse("0 12 * * 7").weekdays == {0}


def test_day_of_month_and_weekday_are_ored_when_both_restricted() -> None:
    s = CronSchedule.parse("0 0 13 * 5")  # the 13th, or any Friday
    assert s.next_after(dt(2024, 3, 1)) == dt(2024, 3, 8)  # a Friday before the 13th
    assert s.next_after(dt(2024, 3, 12)) == dt(2024, 3, 13)


@pytest.mark.parametrize(
    "expr", ["* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "*/0 * * * *", "5-1 * * * *", "a * * * *"]
)
def test_bad_cron_expressions_are_config_errors(expr: str) -> None:
    with pytest.raises(ConfigError):
        CronSchedule.parse(expr)


def test_impossible_date_never_fires() -> None:
    with pytest.raises(ConfigError, match="never fires"):
        CronSchedule.parse("0 0 30 2 *").next_after(dt(2024, 1, 1))


def test_interval_schedule_is_anchored_at_start_date() -> None:
    s = IntervalSchedule(timedelta(hours=6), dt(2024, 1, 1, 3))
    assert s.first_at_or_after(dt(2024, 1, 1, 4)) == dt(2024, 1, 1, 9)
    assert s.next_after(dt(2024, 1, 1, 9)) == dt(2024, 1, 1, 15)
    assert s.first_at_or_after(dt(2023, 1, 1)) == dt(2024, 1, 1, 3)


def test_intervals_complete_by_a_moment() -> None:
    s = make_schedule("@daily", dt(2024, 1, 1))
    assert s is not None
    got = list(iter_intervals(s, dt(2024, 1, 1), dt(2024, 1, 4, 5)))
    assert got == [(dt(2024, 1, d), dt(2024, 1, d + 1)) for d in (1, 2, 3)]
    assert list(iter_intervals(s, dt(2024, 1, 1), dt(2024, 1, 1, 23))) == []
    assert make_schedule(None, dt(2024, 1, 1)) is None
    with pytest.raises(ConfigError):
        make_schedule(timedelta(0), dt(2024, 1, 1))


def test_dates_and_naive_datetimes_mean_utc() -> None:
    assert to_utc(date(2024, 5, 1)) == dt(2024, 5, 1)
    assert to_utc(datetime(2024, 5, 1, 7)) == dt(2024, 5, 1, 7)


@pytest.mark.parametrize("expr", ["*/15 6-8 * * MON-FRI", "5 */3 * * *", "0 0 1,15 * *", "30 12 * * 0", "0 0 13 * 5"])
def test_next_after_matches_a_brute_force_minute_walk(expr: str) -> None:
    import random

    s = CronSchedule.parse(expr)

    def matches(t: datetime) -> bool:
        return t.minute in s.minutes and t.hour in s.hours and t.month in s.months and s._day_matches(t)

    rng = random.Random(expr)
    for _ in range(3):
        start = dt(2024, 1, 1) + timedelta(minutes=rng.randrange(366 * 24 * 60))
        t = start.replace(second=0) + timedelta(minutes=1)
        while not matches(t):
            t += timedelta(minutes=1)
        assert s.next_after(start) == t
