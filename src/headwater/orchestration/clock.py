"""Clocks: the scheduler asks an injected clock for "now" and for sleeping, so tests never wait.

Data never depends on the clock (transforms take the logical date); the clock decides only when
intervals are due, when retries and sensor pokes are next tried, and when SLAs are missed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """``now()`` in UTC and ``sleep(seconds)``; ``realtime`` says whether time passes by itself."""

    realtime: bool

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time."""

    realtime = True

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class OffsetClock(SystemClock):
    """Real time flowing from another starting point: replay "as if it were" ``start`` (demo, backfill)."""

    def __init__(self, start: datetime) -> None:
        self._offset = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


class ManualClock:
    """Time that only moves when slept on or advanced: backoff and sensor timeouts without waiting."""

    realtime = False

    def __init__(self, start: datetime) -> None:
        self._now = start
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += timedelta(seconds=max(0.0, seconds))

    def advance(self, delta: timedelta) -> None:
        self._now += delta
