"""Orchestration overhead per task instance, with no-op tasks (all measured time is scheduler cost).

Scenarios (see README.md in this folder):

- ``wide``: one run of a 502-task DAG (start >> 500 parallel no-ops >> end);
- ``backfill``: a 365-day backfill of a 5-task pipeline (a >> [b, c] >> d >> e), via ``backfill()``.

Each scenario runs in a fresh HEADWATER_HOME on the local disk (real SQLite run store in WAL mode,
every state transition committed) and is repeated; the median is reported. Usage::

    .venv/bin/python benchmarks/orchestration/bench_overhead.py [--repeat 3] [--workers 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from headwater.config import Settings
from headwater.orchestration import ManualClock, Pipeline, Scheduler, backfill


def noop(ctx: object) -> None:
    return None


def wide_pipeline(width: int = 500) -> Pipeline:
    p = Pipeline("bench_wide", schedule="@daily", start_date=date(2024, 1, 1), catchup=False)
    start, end = p.task(noop, task_id="start"), p.task(noop, task_id="end")
    middle = [p.task(noop, task_id=f"t{i:03d}") for i in range(width)]
    start >> middle
    middle >> end
    return p


def five_task_pipeline() -> Pipeline:
    p = Pipeline("bench_five", schedule="@daily", start_date=date(2023, 1, 1), max_active_runs=4)
    a, b, c, d, e = (p.task(noop, task_id=n) for n in "abcde")
    a >> [b, c]
    [b, c] >> d
    d >> e
    return p


def run_wide(home: Path, workers: int) -> tuple[float, int]:
    p = wide_pipeline()
    s = Scheduler(Settings(home=home), [p], clock=ManualClock(datetime(2024, 1, 2, 1, tzinfo=UTC)),
                  max_workers=workers, channels=[])
    t0 = time.perf_counter()
    report = s.run(once=True)
    elapsed = time.perf_counter() - t0
    s.close()
    assert set(report.finished.values()) == {"success"}, report.finished
    return elapsed, report.tries


def run_backfill(home: Path, workers: int) -> tuple[float, int]:
    p = five_task_pipeline()
    t0 = time.perf_counter()
    report = backfill(Settings(home=home), p, date(2023, 1, 1), date(2023, 12, 31), max_workers=workers,
                      channels=[])
    elapsed = time.perf_counter() - t0
    assert len(report.finished) == 365 and set(report.finished.values()) == {"success"}
    return elapsed, 365 * 5


def measure(name: str, fn: Callable[[Path, int], tuple[float, int]], repeat: int, workers: int) -> dict:
    times, instances = [], 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
            elapsed, instances = fn(Path(tmp) / "hw", workers)
        times.append(elapsed)
    med = statistics.median(times)
    return {
        "scenario": name,
        "workers": workers,
        "task_instances": instances,
        "runs": [round(t, 3) for t in times],
        "median_s": round(med, 3),
        "ms_per_task_instance": round(1000 * med / instances, 3),
        "best_ms_per_task_instance": round(1000 * min(times) / instances, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = []
    for workers in args.workers:
        results.append(measure("wide 502-task DAG, 1 run", run_wide, args.repeat, workers))
        results.append(measure("365-day backfill, 5 tasks", run_backfill, args.repeat, workers))
    for r in results:
        print(
            f"{r['scenario']:<28} workers={r['workers']}  {r['task_instances']:>5} instances  "
            f"median {r['median_s']:.3f}s  {r['ms_per_task_instance']:.3f} ms/instance "
            f"(best {r['best_ms_per_task_instance']:.3f})  runs={r['runs']}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
