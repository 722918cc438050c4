"""Backfill: run a pipeline over a past date range, idempotently and resumably.

Existing successful runs are kept (running a backfill twice changes nothing); runs left queued or
running by an interrupted backfill are resumed; failed runs are re-run only with ``rerun_failed``
(their failed and upstream-failed task instances, keeping what succeeded) and everything is re-run
with ``clear``. Backfill runs carry no SLA.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from headwater.config import Settings
from headwater.errors import ConfigError
from headwater.monitoring.alerts import AlertChannel
from headwater.orchestration.clock import Clock, OffsetClock
from headwater.orchestration.pipeline import Pipeline
from headwater.orchestration.run_store import RunStore
from headwater.orchestration.schedule import to_utc
from headwater.orchestration.scheduler import RunResult, Scheduler, SchedulerReport, run_id_for
from headwater.orchestration.state import NewRun, iso

_RERUN_STATES = ("failed", "upstream_failed", "skipped")


@dataclass
class BackfillReport:
    planned: int = 0
    created: int = 0
    already_done: int = 0
    skipped_failed: int = 0
    requeued: int = 0
    finished: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return sorted(r for r, s in self.finished.items() if s != "success")


def _range_end(end: date | datetime) -> tuple[datetime, bool]:
    """A date end is inclusive of that whole day; a datetime end is inclusive of that instant."""
    if isinstance(end, datetime):
        return to_utc(end), True
    return to_utc(end) + timedelta(days=1), False


def plan_intervals(pipeline: Pipeline, start: date | datetime, end: date | datetime) -> list[tuple[datetime, datetime]]:
    """Data intervals whose logical date falls in ``[start, end]``."""
    if pipeline.schedule is None:
        raise ConfigError(f"pipeline {pipeline.pipeline_id!r} has no schedule to backfill")
    lo = to_utc(start)
    hi, inclusive = _range_end(end)
    if hi < lo:
        raise ConfigError(f"backfill range is empty: end {end} is before start {start}")
    out = []
    s = pipeline.schedule.first_at_or_after(lo)
    while s < hi or (inclusive and s == hi):
        e = pipeline.schedule.next_after(s)
        out.append((s, e))
        s = e
    return out


def backfill(
    settings: Settings,
    pipeline: Pipeline,
    start: date | datetime,
    end: date | datetime,
    *,
    reverse: bool = False,
    max_active: int | None = None,
    rerun_failed: bool = False,
    clear: bool = False,
    max_workers: int = 4,
    store: RunStore | None = None,
    clock: Clock | None = None,
    channels: list[AlertChannel] | None = None,
    progress: Callable[[RunResult], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> BackfillReport:
    """Run ``pipeline`` for every logical date in ``[start, end]``; see the module docstring.

    ``on_plan(total, already_done)`` is called once before running (to size a progress bar) and
    ``progress`` after each run finishes.
    """
    intervals = plan_intervals(pipeline, start, end)
    past = [t.task_id for t in pipeline.tasks.values() if t.options().depends_on_past]
    if reverse and past:
        raise ConfigError(
            f"cannot backfill {pipeline.pipeline_id!r} in reverse: {', '.join(past)} depend(s) on the previous run"
        )
    sched = Scheduler(
        settings, [pipeline], store=store, clock=clock, max_workers=max_workers, channels=channels,
        on_run_finished=progress,
    )
    report = BackfillReport(planned=len(intervals))
    try:
        with sched.exclusive():  # planning writes runs too: hold the lock from the start
            pid = pipeline.pipeline_id
            now = sched.clock.now()
            rows = sched.store.query("SELECT run_id, state FROM runs WHERE pipeline_id = ?", (pid,))
            existing = {r["run_id"]: r for r in rows}
            new, to_drive = [], []
            for s, e in intervals:
                rid = run_id_for(pid, s)
                to_drive.append(rid)
                row = existing.get(rid)
                if row is None:
                    new.append(NewRun(rid, pid, s, e, "backfill", None))
                elif clear:
                    sched.state.requeue_run(rid, now, None)
                    report.requeued += 1
                elif row["state"] == "failed" and rerun_failed:
                    sched.state.requeue_run(rid, now, _RERUN_STATES)
                    report.requeued += 1
                elif row["state"] == "success":
                    report.already_done += 1
                elif row["state"] == "failed":
                    report.skipped_failed += 1
            report.created = sched.state.create_runs(new, now)
            if on_plan is not None:
                on_plan(len(intervals), report.already_done + report.skipped_failed)
            result: SchedulerReport = sched.drive(to_drive, reverse=reverse, max_active=max_active)
            report.finished = dict(result.finished)
    finally:
        sched.close()
    return report


def run_pipeline_range(
    settings: Settings,
    pipeline: Pipeline,
    start: date,
    end: date,
    *,
    max_workers: int = 4,
    progress: Callable[[RunResult], None] | None = None,
    store: RunStore | None = None,
    params: dict[str, Any] | None = None,
    channels: list[AlertChannel] | None = None,
    rerun: bool = False,
) -> SchedulerReport:
    """Run ``pipeline`` for ``start..end`` through the scheduler with catchup, replaying time as if
    it were just after the last interval ended (the demo's synthetic world lives in the past).
    ``rerun`` re-runs intervals that already have runs (otherwise they are kept, as in catchup)."""
    ranged = pipeline.with_dates(start, end)
    intervals = plan_intervals(ranged, start, end)
    as_of = intervals[-1][1]
    sched = Scheduler(
        settings, [ranged], store=store, clock=OffsetClock(as_of), max_workers=max_workers,
        on_run_finished=progress, params=params, channels=channels,
    )
    try:
        if rerun:  # e.g. the world was regenerated: earlier runs of these dates are obsolete
            existing = {r["run_id"] for r in sched.store.query(
                "SELECT run_id FROM runs WHERE pipeline_id = ?", (pipeline.pipeline_id,))}
            for s, _ in intervals:
                rid = run_id_for(pipeline.pipeline_id, s)
                if rid in existing:
                    sched.state.requeue_run(rid, sched.clock.now(), None)
        return sched.run(once=True, as_of=as_of)
    finally:
        sched.close()


__all__ = ["BackfillReport", "backfill", "iso", "plan_intervals", "run_pipeline_range"]
