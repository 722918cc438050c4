"""The embedded scheduler: creates runs for due intervals and drives their task instances.

One loop, one writer: the loop creates due runs (catching up when ``catchup=True``), activates queued
runs up to ``max_active_runs``, applies trigger rules, submits ready instances to a bounded thread
pool, and records each outcome in the run store *before* acting on it. Sensors and retries wait in
the store (``next_attempt_at``), not on a thread. A file lock keeps a second scheduler off the same
run store; on start, instances a killed scheduler left ``running`` are scheduled again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from headwater.config import Settings
from headwater.errors import ConfigError
from headwater.monitoring.alerts import Alert, AlertChannel, default_channels, send_all
from headwater.monitoring.sla import sla_deadline
from headwater.orchestration.clock import Clock, SystemClock
from headwater.orchestration.context import TaskContext
from headwater.orchestration.executor import Outcome, run_try
from headwater.orchestration.pipeline import Pipeline, Task, TaskOptions
from headwater.orchestration.run_store import RunStore
from headwater.orchestration.schedule import iter_intervals
from headwater.orchestration.sensors import Sensor
from headwater.orchestration.state import TERMINAL_TASK_STATES, NewRun, OrchestrationStore, iso, parse_ts
from headwater.orchestration.tasklogs import task_logs_enabled
from headwater.orchestration.trigger_rules import decide

log = logging.getLogger("headwater.scheduler")


def run_id_for(pipeline_id: str, logical_date: datetime) -> str:
    """One run per pipeline and logical date: a re-trigger resumes rather than duplicates."""
    fmt = "%Y-%m-%dT%H:%M"  # minutes suffice for cron schedules; sub-minute intervals need more
    if logical_date.second or logical_date.microsecond:
        fmt += ":%S.%f" if logical_date.microsecond else ":%S"
    return f"{pipeline_id}__{logical_date.strftime(fmt)}"


@dataclass(eq=False)
class _TI:
    task: Task
    opts: TaskOptions
    state: str
    try_number: int = 0
    failures: int = 0
    pokes: int = 0
    next_attempt_at: datetime | None = None
    first_poke_at: datetime | None = None
    error: str | None = None
    pending_up: int = 0  # upstream instances not terminal yet
    failed_up: int = 0  # upstream instances failed or upstream_failed


@dataclass(eq=False)
class _Run:
    """In-memory mirror of an active run; every change is written to the store first."""

    run_id: str
    pipeline: Pipeline
    state: str
    interval_start: datetime
    interval_end: datetime
    trigger: str
    tis: dict[str, _TI] = field(default_factory=dict)
    running: int = 0
    unfinished: int = 0  # instances not terminal
    dirty: set[str] = field(default_factory=set)  # scheduled instances whose upstream changed
    ready: deque[_TI] = field(default_factory=deque)  # passed their trigger rule, waiting for a worker
    timed: dict[str, _TI] = field(default_factory=dict)  # up_for_retry / up_for_reschedule
    sla_deadline: datetime | None = None
    sla_status: str | None = None


@dataclass
class RunResult:
    """A finished run as reported to progress callbacks."""

    run_id: str
    pipeline_id: str
    logical_date: datetime
    state: str
    error: str | None


@dataclass
class SchedulerReport:
    runs_created: int = 0
    recovered_instances: int = 0
    tries: int = 0
    finished: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [r for r, s in self.finished.items() if s != "success"]


class Scheduler:
    """Drives the given pipelines against one run store. See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        pipelines: Iterable[Pipeline],
        *,
        store: RunStore | None = None,
        clock: Clock | None = None,
        max_workers: int = 4,
        channels: list[AlertChannel] | None = None,
        poll_interval: float = 5.0,
        rng: random.Random | None = None,
        on_run_finished: Callable[[RunResult], None] | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        if max_workers < 1:
            raise ConfigError(f"max_workers must be >= 1, got {max_workers}")
        self.settings = settings
        self.pipelines = {p.pipeline_id: p.validate() for p in pipelines}
        self._own_store = store is None
        self.store = store or RunStore(settings.run_store)
        self.state = OrchestrationStore(self.store)
        self.clock: Clock = clock or SystemClock()
        self.max_workers = max_workers
        self.channels = channels if channels is not None else default_channels(settings)
        self.poll_interval = poll_interval
        self.rng = rng or random.Random(0)
        self.on_run_finished = on_run_finished
        self.params = dict(params or {})  # handed to every task as ctx.params
        self._stop = threading.Event()
        self._lock_depth = 0
        self._runs: dict[str, _Run] = {}
        self._futures: dict[Future[Outcome], tuple[_Run, _TI]] = {}
        self._next_check: dict[str, datetime] = {}
        self._last_sla_check: datetime | None = None
        self._blocked: dict[tuple[str, str], str] = {}  # (run, task) waiting on the previous run
        self._progressed = False  # anything activated, submitted or finished in this pass
        self.report = SchedulerReport()

    # -- public API -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to stop after the tries in flight (signal handlers call this)."""
        self._stop.set()

    def close(self) -> None:
        for channel in self.channels:
            channel.close()
        if self._own_store:
            self.store.close()

    def create_due_runs(self, as_of: datetime, pipeline_ids: Collection[str] | None = None) -> int:
        """Queue a run for every interval complete by ``as_of`` that has none (``catchup=True``), or
        only for the latest complete interval (``catchup=False``)."""
        created = 0
        for pid in pipeline_ids or self.pipelines:
            p = self.pipelines[pid]
            if p.schedule is None or as_of < self._next_check.get(pid, p.start_date):
                continue  # nothing new can be due before the current interval ends
            intervals = [
                (s, e) for s, e in iter_intervals(p.schedule, p.start_date, as_of)
                if p.end_date is None or s <= p.end_date
            ]
            if not p.catchup:
                intervals = intervals[-1:]
            existing = self.state.logical_dates(pid)
            new = [
                NewRun(run_id_for(pid, s), pid, s, e, "scheduled", sla_deadline(e, p.sla, "scheduled"))
                for s, e in intervals
                if iso(s) not in existing
            ]
            created += self.state.create_runs(new, self.clock.now())
            self._next_check[pid] = p.schedule.next_after(as_of)
        self.report.runs_created += created
        return created

    def run(
        self,
        *,
        once: bool = False,
        as_of: datetime | None = None,
        pipeline_ids: Collection[str] | None = None,
        max_loops: int | None = None,
    ) -> SchedulerReport:
        """Schedule and run. ``once``: do what is due (incl. waiting sensors/retries), then return.
        ``as_of`` pins the moment used to decide which intervals are due (replays, demos, tests)."""
        scope = list(pipeline_ids or self.pipelines)
        unknown = set(scope) - set(self.pipelines)
        if unknown:
            raise ConfigError(f"unknown pipeline(s): {sorted(unknown)}; known: {sorted(self.pipelines)}")
        return self._loop(scope, create=True, once=once, as_of=as_of, max_loops=max_loops)

    def drive(
        self, run_ids: Collection[str], *, reverse: bool = False, max_active: int | None = None
    ) -> SchedulerReport:
        """Run the given (queued or running) runs to completion: the engine behind backfill."""
        return self._loop(
            list(self.pipelines), create=False, once=True, run_ids=set(run_ids), reverse=reverse,
            max_active=max_active,
        )

    # -- the loop -----------------------------------------------------------------------------
    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the run store's scheduler lock (re-entrant): one writer of orchestration state."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        path = Path(str(self.store.path) + ".lock")
        fh = open(path, "a+")  # noqa: SIM115 - held for the whole loop
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                fh.seek(0)
                raise ConfigError(
                    f"another scheduler or backfill is running on {self.store.path} (pid {fh.read().strip()})"
                ) from exc
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            self._lock_depth = 1
            yield
        finally:
            self._lock_depth = 0
            fh.close()

    def _loop(
        self,
        scope: list[str],
        *,
        create: bool,
        once: bool,
        as_of: datetime | None = None,
        max_loops: int | None = None,
        run_ids: set[str] | None = None,
        reverse: bool = False,
        max_active: int | None = None,
    ) -> SchedulerReport:
        self._stop.clear()
        self.report = SchedulerReport()
        pool_cm = ThreadPoolExecutor(self.max_workers, thread_name_prefix="hw-worker")
        with self.exclusive(), task_logs_enabled(), pool_cm as pool:
            self.report.recovered_instances += self.state.recover_interrupted(self.clock.now())
            self._load_runs(scope, run_ids)
            loops = 0
            while not self._stop.is_set():
                loops += 1
                self._progressed = False
                now = self.clock.now()
                if create and self.create_due_runs(as_of or now, scope):
                    self._load_runs(scope, run_ids)
                self._activate(now, reverse, max_active)
                wake = self._schedule_ready(now, pool)
                self._check_slas(now, scope)
                if max_loops is not None and loops >= max_loops and not self._futures:
                    break
                if self._futures:
                    timeout = self.poll_interval if self.clock.realtime else 0.05
                    if wake is not None and self.clock.realtime:
                        timeout = min(timeout, max(0.0, (wake - now).total_seconds()))
                    done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
                    if done:
                        self._complete(done)
                    continue
                if not self._runs and once:
                    break
                if self._progressed:
                    continue  # something changed (a run finished, say): look again before sleeping
                if wake is None and self._blocked:
                    self._fail_blocked(now)
                    continue
                if wake is None:
                    wake = now + timedelta(seconds=self.poll_interval)
                    nxt = min(self._next_check.values(), default=None) if create and as_of is None else None
                    if nxt is not None:
                        wake = min(wake, nxt)
                delay = (wake - now).total_seconds()
                if delay > 0:
                    self.clock.sleep(min(delay, self.poll_interval) if self.clock.realtime else delay)
        return self.report

    def _load_runs(self, scope: list[str], run_ids: set[str] | None) -> None:
        for row in self.state.active_runs(scope):
            if row["run_id"] in self._runs or (run_ids is not None and row["run_id"] not in run_ids):
                continue
            run = _Run(
                run_id=row["run_id"],
                pipeline=self.pipelines[row["pipeline_id"]],
                state=row["state"],
                interval_start=parse_ts(row["interval_start"]),  # type: ignore[arg-type]
                interval_end=parse_ts(row["interval_end"]),  # type: ignore[arg-type]
                trigger=row["trigger"],
                sla_deadline=parse_ts(row["sla_deadline"]),
                sla_status=row["sla_status"],
            )
            self._runs[run.run_id] = run
            if run.state == "running":
                self._load_task_instances(run)

    def _load_task_instances(self, run: _Run) -> None:
        p = run.pipeline
        order = p.topological_order()
        opts = {tid: p.tasks[tid].options() for tid in order}
        self.state.insert_task_instances(run.run_id, [(tid, p.tasks[tid].kind, opts[tid].retries) for tid in order])
        rows = {r["task_id"]: r for r in self.state.task_instances(run.run_id)}
        for tid in order:
            r = rows[tid]
            state = "scheduled" if r["state"] == "running" else r["state"]
            run.tis[tid] = _TI(
                task=p.tasks[tid], opts=opts[tid], state=state, try_number=r["try_number"],
                failures=r["failures"], pokes=r["pokes"], next_attempt_at=parse_ts(r["next_attempt_at"]),
                first_poke_at=parse_ts(r["first_poke_at"]), error=r["error"],
            )
        for tid, ti in run.tis.items():
            ups = [run.tis[u].state for u in ti.task.upstream_ids]
            ti.pending_up = sum(s not in TERMINAL_TASK_STATES for s in ups)
            ti.failed_up = sum(s in ("failed", "upstream_failed") for s in ups)
            if ti.state not in TERMINAL_TASK_STATES:
                run.unfinished += 1
            if ti.state == "scheduled":
                run.dirty.add(tid)
            elif ti.state in ("up_for_retry", "up_for_reschedule"):
                run.timed[tid] = ti

    def _activate(self, now: datetime, reverse: bool, max_active: int | None) -> None:
        by_pipeline: dict[str, list[_Run]] = {}
        for run in self._runs.values():
            by_pipeline.setdefault(run.pipeline.pipeline_id, []).append(run)
        for runs in by_pipeline.values():
            limit = max_active or runs[0].pipeline.max_active_runs
            active = sum(r.state == "running" for r in runs)
            queued = sorted((r for r in runs if r.state == "queued"), key=lambda r: r.interval_start, reverse=reverse)
            for run in queued[: max(0, limit - active)]:
                self.state.set_run_state(run.run_id, "running", now)
                self._progressed = True
                run.state = "running"
                self._load_task_instances(run)

    def _to_terminal(self, run: _Run, ti: _TI, state: str) -> None:
        """Record in memory that ``ti`` is done and tell its downstream instances."""
        ti.state = state
        run.unfinished -= 1
        failed = state in ("failed", "upstream_failed")
        for d in ti.task.downstream_ids:
            down = run.tis[d]
            down.pending_up -= 1
            down.failed_up += failed
            if down.state == "scheduled":
                run.dirty.add(d)

    def _verdict(self, run: _Run, ti: _TI) -> str:
        rule = ti.opts.trigger_rule
        if ti.pending_up and (rule == "all_done" or (rule in ("all_success", "none_failed") and not ti.failed_up)):
            return "wait"  # the common case, decided without looking at every upstream
        return decide(rule, (run.tis[u].state for u in ti.task.upstream_ids))

    def _evaluate(self, run: _Run, now: datetime) -> datetime | None:
        """Trigger rules for changed instances, due retries and pokes; returns the next wake-up."""
        for run_id, task_id in self._blocked:
            if run_id == run.run_id:
                run.dirty.add(task_id)
        changes: list[tuple[str, str, str | None]] = []
        while run.dirty:
            ti = run.tis[run.dirty.pop()]
            if ti.state != "scheduled":
                continue
            verdict = self._verdict(run, ti)
            if verdict == "wait":
                continue
            if verdict != "run":
                ti.error = f"{verdict} by trigger rule {ti.opts.trigger_rule}"
                changes.append((ti.task.task_id, verdict, ti.error))
                self._to_terminal(run, ti, verdict)  # may dirty downstream: the loop cascades
                continue
            if ti.opts.depends_on_past:
                key = (run.run_id, ti.task.task_id)
                past = self._past_state(run, ti.task.task_id)
                if past not in (None, "success", "skipped"):
                    self._blocked[key] = past
                    continue
                self._blocked.pop(key, None)
            ti.state = "queued"  # in memory only: it sits in run.ready until a worker is free
            run.ready.append(ti)
        if changes:
            self.state.set_task_states(run.run_id, changes, now)
            self._progressed = True
        wake: datetime | None = None
        for tid, ti in list(run.timed.items()):
            if ti.next_attempt_at is None or ti.next_attempt_at <= now:
                del run.timed[tid]
                run.ready.append(ti)
            else:
                wake = ti.next_attempt_at if wake is None else min(wake, ti.next_attempt_at)
        return wake

    def _schedule_ready(self, now: datetime, pool: ThreadPoolExecutor) -> datetime | None:
        """Apply trigger rules, submit what can run now; return the earliest future wake-up."""
        wake: datetime | None = None
        runs = sorted((r for r in self._runs.values() if r.state == "running"), key=lambda r: r.interval_start)
        for run in runs:
            w = self._evaluate(run, now)
            if w is not None:
                wake = w if wake is None else min(wake, w)
        free = self.max_workers - len(self._futures)
        batch: list[tuple[_Run, _TI]] = []
        for run in runs:
            while run.ready and len(batch) < free:
                batch.append((run, run.ready.popleft()))
        if batch:
            self._submit(batch, now, pool)
        for run in runs:
            self._maybe_finish(run, now)
        return wake

    def _past_state(self, run: _Run, task_id: str) -> str | None:
        """State of ``task_id`` in the pipeline's previous run (None: there is no previous run)."""
        rows = self.store.query(
            "SELECT r.run_id, t.state FROM runs r LEFT JOIN task_instances t "
            "ON t.run_id = r.run_id AND t.task_id = ? WHERE r.pipeline_id = ? AND r.logical_date < ? "
            "AND r.trigger IN ('scheduled', 'backfill') ORDER BY r.logical_date DESC LIMIT 1",
            (task_id, run.pipeline.pipeline_id, iso(run.interval_start)),
        )
        if not rows:
            return None
        prev = self._runs.get(rows[0]["run_id"])
        if prev is not None and task_id in prev.tis:  # in memory is fresher than the store
            return prev.tis[task_id].state
        return rows[0]["state"] or "not started"

    def _fail_blocked(self, now: datetime) -> None:
        """Nothing can move: fail instances stuck behind a previous run that did not succeed."""
        for (run_id, task_id), past in list(self._blocked.items()):
            run = self._runs.get(run_id)
            if run is None or run.tis[task_id].state != "scheduled":
                continue
            ti = run.tis[task_id]
            ti.error = f"depends_on_past: {task_id} is {past} in the previous run"
            self.state.set_task_states(run_id, [(task_id, "upstream_failed", ti.error)], now)
            self._to_terminal(run, ti, "upstream_failed")
        self._blocked.clear()

    def _submit(self, batch: list[tuple[_Run, _TI]], now: datetime, pool: ThreadPoolExecutor) -> None:
        """Mark the batch running in one transaction, then hand each try to the pool."""
        rows = []
        for run, ti in batch:
            is_sensor = isinstance(ti.task, Sensor)
            if not (is_sensor and ti.state == "up_for_reschedule"):
                ti.try_number += 1
            first_poke = is_sensor and ti.first_poke_at is None
            if first_poke:
                ti.first_poke_at = now
            rows.append((run.run_id, ti.task.task_id, ti.try_number, first_poke))
        self.state.mark_running(rows, now)
        self._progressed = True
        for run, ti in batch:
            ti.state = "running"
            run.running += 1
            pid = run.pipeline.pipeline_id
            ctx = TaskContext(
                pipeline_id=pid,
                run_id=run.run_id,
                task_id=ti.task.task_id,
                try_number=ti.try_number,
                logical_date=run.interval_start,
                data_interval_start=run.interval_start,
                data_interval_end=run.interval_end,
                settings=self.settings,
                store=self.store,
                log=logging.LoggerAdapter(
                    logging.getLogger(f"headwater.task.{pid}.{ti.task.task_id}"), {"run_id": run.run_id}
                ),
                params=dict(self.params),
            )
            fut = pool.submit(
                run_try, ti.task, ctx, failures=ti.failures, pokes=ti.pokes, first_poke_at=ti.first_poke_at,
                now=now, rng=self.rng,
            )
            self._futures[fut] = (run, ti)
        self.report.tries += len(batch)

    def _complete(self, done: Iterable[Future[Outcome]]) -> None:
        """Record finished tries (one transaction), then move their instances on."""
        now = self.clock.now()
        items, moved = [], []
        for fut in done:
            run, ti = self._futures.pop(fut)
            run.running -= 1
            try:
                out = fut.result()
            except BaseException as exc:  # run_try classifies task errors; this is a bug in the engine
                out = Outcome("failed", 0.0, error=f"internal error: {type(exc).__name__}: {exc}")
            if out.state in ("up_for_retry", "failed") and out.poke is None:
                ti.failures += 1
            if out.poke is not None:
                ti.pokes += 1
            ti.error, ti.next_attempt_at = out.error, out.next_attempt_at
            items.append({
                "run_id": run.run_id, "task_id": ti.task.task_id, "state": out.state, "try_number": ti.try_number,
                "failures": ti.failures, "now": now, "duration_s": out.duration_s, "error": out.error,
                "next_attempt_at": out.next_attempt_at, "retry_delay_s": out.retry_delay_s,
                "metrics": out.metrics or None, "poke": out.poke,
            })
            moved.append((run, ti, out.state))
        self.state.finish_tries(items)
        for run, ti, state in moved:
            if state in TERMINAL_TASK_STATES:
                self._to_terminal(run, ti, state)
            else:
                ti.state = state
                run.timed[ti.task.task_id] = ti
        for run in {id(r): r for r, _, _ in moved}.values():
            self._maybe_finish(run, now)

    def _maybe_finish(self, run: _Run, now: datetime) -> None:
        if run.state != "running" or run.running or run.unfinished:
            return
        bad = [t for t in run.tis.values() if t.state in ("failed", "upstream_failed")]
        first_failed = next((t for t in bad if t.state == "failed"), bad[0] if bad else None)
        error = f"task {first_failed.task.task_id} failed: {first_failed.error}" if first_failed else None
        state = "failed" if bad else "success"
        self._progressed = True
        self.state.set_run_state(run.run_id, state, now, error=error, finished=True)
        run.state = state
        del self._runs[run.run_id]
        self.report.finished[run.run_id] = state
        deadline = run.sla_deadline
        if state == "success" and deadline is not None and run.sla_status == "pending":
            if now <= deadline:
                self.state.set_sla_status(run.run_id, "met")
            else:
                self._sla_miss(run.run_id, run.pipeline.pipeline_id, deadline, now, finished_late=True)
        if state == "failed":
            log.error("run %s failed: %s", run.run_id, error)
            send_all(self.channels, Alert("run_failed", run.pipeline.pipeline_id, run.run_id, error or "failed",
                                          severity="error"))
        if self.on_run_finished is not None:
            self.on_run_finished(RunResult(run.run_id, run.pipeline.pipeline_id, run.interval_start, state, error))

    # -- SLA ----------------------------------------------------------------------------------
    def _check_slas(self, now: datetime, scope: list[str]) -> None:
        """At most once a (clock) second: runs past their deadline without success are misses."""
        if self._last_sla_check is not None and now - self._last_sla_check < timedelta(seconds=1):
            return
        self._last_sla_check = now
        rows = self.store.query(
            "SELECT run_id, pipeline_id, sla_deadline FROM runs WHERE sla_status = 'pending' "
            "AND sla_deadline < ? AND pipeline_id IN (SELECT value FROM json_each(?))",
            (iso(now), json.dumps(scope)),
        )
        for r in rows:
            self._sla_miss(r["run_id"], r["pipeline_id"], parse_ts(r["sla_deadline"]), now, finished_late=False)  # type: ignore[arg-type]

    def _sla_miss(self, run_id: str, pipeline_id: str, deadline: datetime, now: datetime, finished_late: bool) -> None:
        if run_id in self._runs:
            self._runs[run_id].sla_status = "missed"
        how = "finished after" if finished_late else "not done by"
        detail = f"run {run_id} {how} its SLA deadline {deadline.isoformat()} (late by {now - deadline})"
        failures = send_all(
            self.channels,
            Alert("sla_miss", pipeline_id, run_id, detail, details={"deadline": deadline.isoformat()}),
        )
        self.state.record_sla_miss(
            run_id, pipeline_id, deadline, now, notified=len(failures) < len(self.channels), detail=detail
        )


def summarize(report: SchedulerReport) -> dict[str, Any]:
    states: dict[str, int] = {}
    for s in report.finished.values():
        states[s] = states.get(s, 0) + 1
    return {"created": report.runs_created, "tries": report.tries, "finished": states}
