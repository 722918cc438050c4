"""Schedules: when data intervals start and end (UTC).

A run covers one *data interval* ``[start, end)`` and becomes due once ``end`` has passed, as in
Airflow: the run for 2024-03-01 under ``@daily`` starts after midnight of 2024-03-02. Supported:
presets (``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``), 5-field cron expressions
(``*/15 6-18 * * MON-FRI``; lists, ranges, steps and month/weekday names; day-of-month and
day-of-week OR-ed when both are restricted, like Vixie cron) and fixed ``timedelta`` intervals anchored
at the pipeline's ``start_date``. A small parser of our own avoids a dependency for 5 fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from headwater.errors import ConfigError

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}


def to_utc(value: date | datetime) -> datetime:
    """A date means its UTC midnight; naive datetimes are taken as UTC."""
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Schedule(Protocol):
    """When intervals start: ``first_at_or_after`` aligns, ``next_after`` steps to the following one."""

    expression: str

    def first_at_or_after(self, moment: datetime) -> datetime: ...

    def next_after(self, moment: datetime) -> datetime: ...


def _parse_field(text: str, lo: int, hi: int, names: dict[str, int] | None, what: str) -> frozenset[int]:
    values: set[int] = set()

    def number(token: str) -> int:
        token = token.upper()
        if names and token in names:
            return names[token]
        if not token.isdigit():
            raise ConfigError(f"cron {what} field: {token!r} is not a number")
        return int(token)

    for part in text.split(","):
        if not part:
            raise ConfigError(f"cron {what} field {text!r} has an empty list item")
        body, _, step_text = part.partition("/")
        step = number(step_text) if step_text else 1
        if step < 1:
            raise ConfigError(f"cron {what} field: step must be >= 1 in {part!r}")
        if body == "*":
            start, end = lo, hi
        elif "-" in body:
            a, b = body.split("-", 1)
            start, end = number(a), number(b)
        else:
            start = number(body)
            end = hi if step_text else start
        if not (lo <= start <= hi and lo <= end <= hi) or start > end:
            raise ConfigError(f"cron {what} field: {part!r} is outside {lo}-{hi}")
        values.update(range(start, end + 1, step))
    if what == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed 5-field cron expression (minute hour day-of-month month day-of-week), in UTC."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        text = PRESETS.get(expression.strip().lower(), expression.strip())
        fields = text.split()
        if len(fields) != 5:
            raise ConfigError(f"cron expression {expression!r} must have 5 fields, got {len(fields)}")
        return cls(
            expression=expression,
            minutes=_parse_field(fields[0], 0, 59, None, "minute"),
            hours=_parse_field(fields[1], 0, 23, None, "hour"),
            days=_parse_field(fields[2], 1, 31, None, "day-of-month"),
            months=_parse_field(fields[3], 1, 12, _MONTHS, "month"),
            weekdays=_parse_field(fields[4], 0, 7, _DAYS, "day-of-week"),
            any_day=fields[2] == "*",
            any_weekday=fields[4] == "*",
        )

    @property
    def _hours_sorted(self) -> list[int]:
        return sorted(self.hours)

    @property
    def _minutes_sorted(self) -> list[int]:
        return sorted(self.minutes)

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.weekday() + 1) % 7 in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow

    def first_at_or_after(self, moment: datetime) -> datetime:
        t = to_utc(moment)
        if t.second or t.microsecond:
            t = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                later = [h for h in self._hours_sorted if h > t.hour]
                t = t.replace(hour=later[0], minute=0) if later else t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.minute not in self.minutes:
                later = [m for m in self._minutes_sorted if m > t.minute]
                t = t.replace(minute=later[0]) if later else t.replace(minute=0) + timedelta(hours=1)
            else:
                return t
        raise ConfigError(f"cron expression {self.expression!r} never fires")

    def next_after(self, moment: datetime) -> datetime:
        return self.first_at_or_after(to_utc(moment).replace(second=0, microsecond=0) + timedelta(minutes=1))


@dataclass(frozen=True)
class IntervalSchedule:
    """Every ``every`` from ``anchor`` (the pipeline's start_date): e.g. ``timedelta(hours=6)``."""

    every: timedelta
    anchor: datetime

    @property
    def expression(self) -> str:
        return f"every {self.every}"

    def first_at_or_after(self, moment: datetime) -> datetime:
        moment = to_utc(moment)
        if moment <= self.anchor:
            return self.anchor
        steps = -((self.anchor - moment) // self.every)  # ceil division
        return self.anchor + steps * self.every

    def next_after(self, moment: datetime) -> datetime:
        moment = to_utc(moment)
        if moment < self.anchor:
            return self.anchor
        return self.anchor + ((moment - self.anchor) // self.every + 1) * self.every


def make_schedule(spec: str | timedelta | Schedule | None, anchor: datetime) -> Schedule | None:
    """Turn a pipeline's ``schedule=`` argument into a :class:`Schedule` (None: manual runs only)."""
    if spec is None:
        return None
    if isinstance(spec, timedelta):
        if spec <= timedelta(0):
            raise ConfigError(f"schedule interval must be positive, got {spec}")
        return IntervalSchedule(spec, to_utc(anchor))
    if isinstance(spec, str):
        return CronSchedule.parse(spec)
    return spec


def iter_intervals(
    schedule: Schedule, start: datetime, until: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """Intervals ``[s, e)`` with ``s >= start`` (aligned) and ``e <= until``: those complete by ``until``."""
    s = schedule.first_at_or_after(start)
    while True:
        e = schedule.next_after(s)
        if e > until:
            return
        yield s, e
        s = e


def interval_containing_start(schedule: Schedule, logical: datetime) -> tuple[datetime, datetime]:
    """The interval that starts at the first fire at or after ``logical`` (for backfill by date)."""
    s = schedule.first_at_or_after(logical)
    return s, schedule.next_after(s)
