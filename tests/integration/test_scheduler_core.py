"""The scheduler against a real run store: order, parallelism, retries, trigger rules, catchup, limits."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from headwater.config import Settings
from headwater.errors import ConfigError, DataError, RetryableError
from headwater.orchestration import ManualClock, Pipeline, Scheduler, SkipTask, StepCounts, run_id_for
from headwater.orchestration.backfill import backfill

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def sched(settings: Settings, *pipes: Pipeline, clock: ManualClock | None = None, workers: int = 4) -> Scheduler:
    return Scheduler(
        settings, pipes, clock=clock or ManualClock(T0 + timedelta(days=1, hours=1)), max_workers=workers, channels=[]
    )


def daily(pid: str = "p", **kw) -> Pipeline:
    kw.setdefault("start_date", date(2024, 1, 1))
    return Pipeline(pid, schedule="@daily", **kw)


def states(s: Scheduler, run_id: str) -> dict[str, str]:
    return {r["task_id"]: r["state"] for r in s.state.task_instances(run_id)}


RID = run_id_for("p", T0)


def test_dependencies_are_respected(settings: Settings) -> None:
    spans: dict[str, tuple[float, float]] = {}

    def work(ctx) -> None:
        start = time.perf_counter()
        time.sleep(0.02)
        spans[ctx.task_id] = (start, time.perf_counter())

    p = daily()
    a, b, c, d = (p.task(work, task_id=n) for n in "abcd")
    a >> [b, c] >> d
    s = sched(settings, p)
    report = s.run(once=True)
    assert report.finished == {RID: "success"}
    assert spans["a"][1] <= spans["b"][0] and spans["a"][1] <= spans["c"][0]
    assert max(spans["b"][1], spans["c"][1]) <= spans["d"][0]


@pytest.mark.parametrize("workers", [2, 1])
def test_independent_tasks_really_run_in_parallel(settings: Settings, workers: int) -> None:
    barrier = threading.Barrier(2, timeout=10.0 if workers == 2 else 0.3)
    spans: dict[str, tuple[float, float]] = {}

    def meet(ctx) -> None:
        start = time.perf_counter()
        barrier.wait()  # only passes if the other task is running at the same time
        spans[ctx.task_id] = (start, time.perf_counter())

    p = daily()
    p.task(meet, task_id="left")
    p.task(meet, task_id="right")
    report = sched(settings, p, workers=workers).run(once=True)
    if workers == 2:
        assert report.finished[RID] == "success"
        (s1, e1), (s2, e2) = spans["left"], spans["right"]
        assert s1 < e2 and s2 < e1  # the two executions overlap in time
    else:
        assert report.finished[RID] == "failed"  # one worker: the barrier can never be met


def test_retries_use_exponential_backoff_on_the_injected_clock(settings: Settings) -> None:
    calls: list[int] = []
    retried: list[str] = []
    succeeded: list[tuple[str, int]] = []

    def flaky(ctx) -> StepCounts:
        calls.append(ctx.try_number)
        if len(calls) <= 3:
            raise RetryableError("database is locked")
        return StepCounts("flaky", 5, 5)

    p = daily()
    t = p.task(
        flaky,
        retries=4,
        retry_delay=timedelta(seconds=10),
        max_retry_delay=timedelta(seconds=25),
        on_retry=lambda ctx, exc: retried.append(str(exc)),
        on_success=lambda ctx, exc: succeeded.append((ctx.task_id, ctx.try_number)),
    )
    t >> p.task(lambda ctx: None, task_id="after", on_success=lambda ctx, exc: succeeded.append(("after", 1)))
    clock = ManualClock(T0 + timedelta(days=1, hours=1))
    s = sched(settings, p, clock=clock)
    t0 = time.perf_counter()
    assert s.run(once=True).finished[RID] == "success"
    assert time.perf_counter() - t0 < 10  # the waits add up to 55 s: none was slept for real
    assert calls == [1, 2, 3, 4]
    assert clock.sleeps == [10, 20, 25]  # 10, 20, 40 capped at 25
    tries = s.state.tries(RID, "flaky")
    assert [r["state"] for r in tries] == ["up_for_retry"] * 3 + ["success"]
    assert [r["retry_delay_s"] for r in tries[:3]] == [10, 20, 25]
    assert retried == ["database is locked"] * 3
    assert succeeded == [("flaky", 4), ("after", 1)]
    assert s.store.step_counts(RID) == [StepCounts("flaky", 5, 5)]


def test_jitter_spreads_delays_within_bounds(settings: Settings) -> None:
    def always(ctx) -> None:
        raise RetryableError("timeout")

    p = daily()
    p.task(always, retries=3, retry_delay=timedelta(seconds=100), jitter=0.5)
    s = sched(settings, p)
    assert s.run(once=True).finished[RID] == "failed"
    delays = [r["retry_delay_s"] for r in s.state.tries(RID, "always")][:3]
    for d, base in zip(delays, (100, 200, 400), strict=True):
        assert base * 0.5 <= d <= base * 1.5
    assert len(set(delays)) == 3 and delays != [100, 200, 400]
    assert len(s.state.tries(RID, "always")) == 4  # 1 + 3 retries, then failed


def test_permanent_errors_fail_at_once(settings: Settings) -> None:
    calls: list[int] = []
    failures: list[BaseException | None] = []

    def broken(ctx) -> None:
        calls.append(1)
        raise DataError("negative revenue", dataset="orders")

    p = daily()
    p.task(broken, retries=5, on_failure=lambda ctx, exc: failures.append(exc)) >> p.task(
        lambda ctx: None, task_id="load"
    )
    s = sched(settings, p)
    assert s.run(once=True).finished[RID] == "failed"
    assert calls == [1]
    assert isinstance(failures[0], DataError)
    assert states(s, RID) == {"broken": "failed", "load": "upstream_failed"}
    run = s.state.get_run(RID)
    assert run is not None and "broken" in run["error"] and "negative revenue" in run["error"]


def test_trigger_rules_and_skips_end_to_end(settings: Settings) -> None:
    ran: list[str] = []

    def mark(ctx) -> None:
        ran.append(ctx.task_id)

    def fail(ctx) -> None:
        raise DataError("bad")

    def skip(ctx) -> None:
        raise SkipTask("nothing to do today")

    p = daily()
    f = p.task(fail, task_id="fail")
    f >> p.task(mark, task_id="cleanup", trigger_rule="all_done")
    f >> p.task(mark, task_id="normal") >> p.task(mark, task_id="after_normal")
    f >> p.task(mark, task_id="alert", trigger_rule="one_failed")
    sk = p.task(skip, task_id="maybe")
    sk >> p.task(mark, task_id="after_skip")
    sk >> p.task(mark, task_id="tolerant", trigger_rule="none_failed")
    s = sched(settings, p)
    assert s.run(once=True).finished[RID] == "failed"
    assert sorted(ran) == ["alert", "cleanup", "tolerant"]
    assert states(s, RID) == {
        "fail": "failed",
        "cleanup": "success",
        "normal": "upstream_failed",
        "after_normal": "upstream_failed",
        "alert": "success",
        "maybe": "skipped",
        "after_skip": "skipped",
        "tolerant": "success",
    }


def test_execution_timeout_fails_the_try(settings: Settings) -> None:
    def slow(ctx) -> None:
        for _ in range(250):  # 5 s unless cancelled
            time.sleep(0.02)
            ctx.check_cancelled()

    p = daily()
    p.task(slow, execution_timeout=timedelta(seconds=0.2))
    s = sched(settings, p)
    t0 = time.perf_counter()
    assert s.run(once=True).finished[RID] == "failed"
    assert time.perf_counter() - t0 < 4  # the try would take 5 s without the timeout
    (ti,) = s.state.task_instances(RID)
    assert "TaskTimeout" in ti["error"] and "execution timeout" in ti["error"]


def test_catchup_creates_exactly_the_missing_runs(settings: Settings) -> None:
    p = daily(max_active_runs=3)
    p.task(lambda ctx: None, task_id="t")
    backfill(settings, p, date(2024, 1, 2), date(2024, 1, 2), channels=[])  # one interval already done
    s = sched(settings, p, clock=ManualClock(datetime(2024, 1, 6, 0, 30, tzinfo=UTC)))
    report = s.run(once=True)
    assert report.runs_created == 4
    assert sorted(report.finished) == [run_id_for("p", T0 + timedelta(days=d)) for d in (0, 2, 3, 4)]
    assert s.run(once=True).runs_created == 0  # nothing is missing any more
    s.clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
    assert s.run(once=True).finished == {run_id_for("p", T0 + timedelta(days=5)): "success"}


def test_without_catchup_only_the_latest_interval_runs(settings: Settings) -> None:
    p = daily(catchup=False)
    p.task(lambda ctx: None, task_id="t")
    s = sched(settings, p, clock=ManualClock(datetime(2024, 1, 6, 0, 30, tzinfo=UTC)))
    assert list(s.run(once=True).finished) == [run_id_for("p", datetime(2024, 1, 5, tzinfo=UTC))]


def test_max_active_runs_is_never_exceeded(settings: Settings) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def work(ctx) -> None:
        with lock:
            n = ctx.store.query("SELECT count(*) AS n FROM runs WHERE state = 'running'")[0]["n"]
            seen.append(n)
        time.sleep(0.03)

    p = daily(max_active_runs=2)
    p.task(work, task_id="a") >> p.task(work, task_id="b")
    s = sched(settings, p, clock=ManualClock(datetime(2024, 1, 7, tzinfo=UTC)), workers=4)
    report = s.run(once=True)
    assert len(report.finished) == 6 and set(report.finished.values()) == {"success"}
    assert max(seen) == 2  # reached, never exceeded


def test_a_second_scheduler_on_the_same_store_is_refused(settings: Settings) -> None:
    release = threading.Event()
    started = threading.Event()

    def hold(ctx) -> None:
        started.set()
        release.wait(5)

    p = daily()
    p.task(hold)
    first = sched(settings, p)
    th = threading.Thread(target=first.run, kwargs={"once": True})
    th.start()
    try:
        assert started.wait(5)
        with pytest.raises(ConfigError, match="another scheduler"):
            sched(settings, p).run(once=True)
    finally:
        release.set()
        th.join(5)
    assert first.report.finished == {RID: "success"}


def test_unknown_pipeline_is_a_config_error(settings: Settings) -> None:
    p = daily()
    p.task(lambda ctx: None, task_id="t")
    with pytest.raises(ConfigError, match="unknown pipeline"):
        sched(settings, p).run(once=True, pipeline_ids=["nope"])


def test_depends_on_past_serialises_a_task_across_runs(settings: Settings) -> None:
    order: list[str] = []

    def pre(ctx) -> None:
        time.sleep(0.08 if ctx.ds == "2024-01-01" else 0.0)  # the oldest run is the slowest to get there

    def fold(ctx) -> None:
        order.append(ctx.ds)
        if ctx.ds == "2024-01-03":
            raise DataError("bad state")

    p = daily(max_active_runs=4)
    p.task(pre) >> p.task(fold, depends_on_past=True)
    s = sched(settings, p, clock=ManualClock(datetime(2024, 1, 5, tzinfo=UTC)), workers=4)
    report = s.run(once=True)
    assert order == ["2024-01-01", "2024-01-02", "2024-01-03"]  # in order; never after a failure
    day4 = run_id_for("p", datetime(2024, 1, 4, tzinfo=UTC))
    assert report.finished[day4] == "failed"
    ti = {r["task_id"]: r for r in s.state.task_instances(day4)}["fold"]
    assert ti["state"] == "upstream_failed" and "depends_on_past: fold is failed in the previous run" in ti["error"]


def test_backfill_reverse_runs_newest_first_and_refuses_past_dependence(settings: Settings) -> None:
    seen: list[str] = []
    p = daily()
    p.task(lambda ctx: seen.append(ctx.ds), task_id="t")
    report = backfill(settings, p, date(2024, 1, 1), date(2024, 1, 4), reverse=True, channels=[])
    assert report.created == 4 and seen == ["2024-01-04", "2024-01-03", "2024-01-02", "2024-01-01"]
    q = daily("q")
    q.task(lambda ctx: None, task_id="t", depends_on_past=True)
    with pytest.raises(ConfigError, match="in reverse"):
        backfill(settings, q, date(2024, 1, 1), date(2024, 1, 4), reverse=True, channels=[])


def test_backfill_rerun_failed_keeps_what_succeeded(settings: Settings) -> None:
    calls: dict[str, int] = {}
    broken = {"2024-01-02"}

    def step(ctx) -> None:
        calls[f"{ctx.task_id}@{ctx.ds}"] = calls.get(f"{ctx.task_id}@{ctx.ds}", 0) + 1
        if ctx.task_id == "b" and ctx.ds in broken:
            raise DataError("bad day")

    p = daily()
    p.task(step, task_id="a") >> p.task(step, task_id="b") >> p.task(step, task_id="c")
    first = backfill(settings, p, date(2024, 1, 1), date(2024, 1, 3), channels=[])
    assert first.failed == [run_id_for("p", datetime(2024, 1, 2, tzinfo=UTC))]
    again = backfill(settings, p, date(2024, 1, 1), date(2024, 1, 3), channels=[])
    assert again.skipped_failed == 1 and again.already_done == 2 and again.finished == {}
    broken.clear()
    fixed = backfill(settings, p, date(2024, 1, 1), date(2024, 1, 3), rerun_failed=True, channels=[])
    assert fixed.requeued == 1 and list(fixed.finished.values()) == ["success"]
    assert calls["a@2024-01-02"] == 1 and calls["b@2024-01-02"] == 2 and calls["c@2024-01-02"] == 1
    assert calls["a@2024-01-01"] == 1  # successful runs were never touched


def test_long_running_mode_creates_each_run_after_its_interval_ends(settings: Settings) -> None:
    p = daily()
    p.task(lambda ctx: None, task_id="t")
    clock = ManualClock(datetime(2024, 1, 2, 0, 30, tzinfo=UTC))
    s = Scheduler(settings, [p], clock=clock, channels=[], poll_interval=86400)
    report = s.run(max_loops=40)  # the manual clock jumps to each next wake-up instead of waiting
    assert len(report.finished) >= 5 and set(report.finished.values()) == {"success"}
    assert clock.now() > datetime(2024, 1, 6, tzinfo=UTC)
    for run in s.state.list_runs("p", 100):
        assert run["queued_at"] >= run["interval_end"]  # never created before its data interval ended
    days = sorted(r["logical_date"][:10] for r in s.state.list_runs("p", 100))
    assert days == [f"2024-01-{d:02d}" for d in range(1, len(days) + 1)]  # no gaps, no duplicates


def test_stop_ends_the_long_running_loop(settings: Settings) -> None:
    p = daily()
    p.task(lambda ctx: s.stop(), task_id="t")  # the first task asks the scheduler to stop
    s = Scheduler(settings, [p], clock=ManualClock(T0 + timedelta(days=1, hours=1)), channels=[])
    report = s.run()
    assert report.finished == {RID: "success"}


def test_backfill_resumes_a_run_left_running_by_a_crash(settings: Settings) -> None:
    calls: dict[str, int] = {}

    def step(ctx) -> None:
        calls[f"{ctx.task_id}@{ctx.ds}"] = calls.get(f"{ctx.task_id}@{ctx.ds}", 0) + 1

    p = daily()
    p.task(step, task_id="a") >> p.task(step, task_id="b") >> p.task(step, task_id="c")
    backfill(settings, p, date(2024, 1, 1), date(2024, 1, 2), channels=[])
    # what a SIGKILL during b of 2024-01-02 leaves behind: run running, b running, c scheduled
    rid = run_id_for("p", datetime(2024, 1, 2, tzinfo=UTC))
    with sched(settings, p).store.transaction() as conn:
        conn.execute("UPDATE runs SET state = 'running', finished_at = NULL WHERE run_id = ?", (rid,))
        conn.execute("UPDATE task_instances SET state = 'running' WHERE run_id = ? AND task_id = 'b'", (rid,))
        conn.execute("UPDATE task_tries SET state = 'running' WHERE run_id = ? AND task_id = 'b'", (rid,))
        conn.execute("UPDATE task_instances SET state = 'scheduled' WHERE run_id = ? AND task_id = 'c'", (rid,))
    report = backfill(settings, p, date(2024, 1, 1), date(2024, 1, 2), channels=[])
    assert report.already_done == 1 and report.finished == {rid: "success"}
    assert calls == {
        "a@2024-01-01": 1,
        "b@2024-01-01": 1,
        "c@2024-01-01": 1,
        "a@2024-01-02": 1,
        "b@2024-01-02": 2,
        "c@2024-01-02": 2,
    }
    s = sched(settings, p)
    assert [t["state"] for t in s.state.tries(rid, "b")] == ["interrupted", "success"]


def test_backfill_refuses_to_touch_runs_while_a_scheduler_holds_the_store(settings: Settings) -> None:
    p = daily()
    p.task(lambda ctx: None, task_id="t")
    backfill(settings, p, date(2024, 1, 1), date(2024, 1, 1), channels=[])
    holder = sched(settings, p)
    with holder.exclusive(), pytest.raises(ConfigError, match="another scheduler"):
        backfill(settings, p, date(2024, 1, 1), date(2024, 1, 1), clear=True, channels=[])
    assert holder.state.get_run(RID)["state"] == "success"  # type: ignore[index]  # not requeued


def test_sub_minute_intervals_get_distinct_runs(settings: Settings) -> None:
    p = Pipeline("fast", schedule=timedelta(seconds=20), start_date=datetime(2024, 1, 1, tzinfo=UTC))
    p.task(lambda ctx: None, task_id="t")
    s = sched(settings, p, clock=ManualClock(datetime(2024, 1, 1, 0, 1, 1, tzinfo=UTC)))
    report = s.run(once=True)
    assert sorted(report.finished) == [
        "fast__2024-01-01T00:00",
        "fast__2024-01-01T00:00:20",
        "fast__2024-01-01T00:00:40",
    ]


def test_each_try_gets_its_own_log_file(settings: Settings) -> None:
    import logging

    from headwater.orchestration.tasklogs import log_path

    barrier = threading.Barrier(2, timeout=10)

    def chatty(ctx) -> None:
        if ctx.try_number == 1:
            barrier.wait()  # both first tries log at the same time, from two threads
            logging.getLogger("headwater.batch.something").info("module log from %s", ctx.task_id)
        ctx.log.warning("own log from %s try %d", ctx.task_id, ctx.try_number)
        if ctx.task_id == "left" and ctx.try_number == 1:
            raise RetryableError("again")

    p = daily()
    p.task(chatty, task_id="left", retries=1, retry_delay=timedelta(seconds=1))
    p.task(chatty, task_id="right")
    s = sched(settings, p, workers=2)
    assert s.run(once=True).finished == {RID: "success"}
    left1 = log_path(settings.home, RID, "left", 1).read_text()
    left2 = log_path(settings.home, RID, "left", 2).read_text()
    right = log_path(settings.home, RID, "right", 1).read_text()
    assert "module log from left" in left1 and "own log from left try 1" in left1 and "right" not in left1
    assert "own log from left try 2" in left2 and "try 1" not in left2
    assert "module log from right" in right and "left" not in right
    assert logging.getLogger("headwater").level == logging.NOTSET  # restored after the run
