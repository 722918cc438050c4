"""Batch benchmark: Headwater's daily step vs the pandas reference, on the same raw zone.

    .venv/bin/python benchmarks/batch/run.py --orders 1000000
    .venv/bin/python benchmarks/batch/run.py --orders 10000000

Each measurement runs in a fresh subprocess (``--worker ...``); the parent reaps it with
``os.wait4`` to read that child's own peak RSS, and the child reports the wall time of the work
itself (imports and interpreter start-up excluded, for both contenders alike). See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent / ".data"
RESULTS = HERE / "results"

STATE, TICKET_STATE = "customer_order_state", "support_ticket_state"
STATES = (STATE, TICKET_STATE)  # the incremental states compute_order_metrics and load_warehouse fold day by day


# --- workers (run in their own process) -------------------------------------------------------
def transform_steps() -> tuple:
    """The daily step proper. ``validate_quality`` (output checks, monitors) follows it in the pipeline;
    pandas has no counterpart, so it is left out of the comparison."""
    from headwater.pipelines import daily

    return (daily.compute_order_metrics, daily.load_warehouse)


def _drop_staging(home: Path, datasets: tuple[str, ...], first: date, last: date) -> None:
    from headwater.config import Settings
    from headwater.storage.lake import Lake

    lake = Lake(Settings(home=home).lake_dir)
    for dataset in datasets:
        for day in lake.partitions("staging", dataset, first, last):
            shutil.rmtree(lake.partition_dir("staging", dataset, day))


def _headwater_days(home: Path, days: list[date], trigger: str) -> dict:
    """The transform steps of ``run_day`` for each day in order, recorded in the run store."""
    from headwater.config import Settings
    from headwater.orchestration.run_store import RunStore
    from headwater.pipelines import daily
    from headwater.storage.warehouse import release_warehouses

    settings = Settings(home=home)
    steps = transform_steps()
    per_day, per_step = [], {s.__name__: 0.0 for s in steps}
    consumed = []
    t_all, cpu_all = time.perf_counter(), time.process_time()
    store = RunStore(settings.run_store)
    for day in days:
        t_day = time.perf_counter()
        run_id = daily.run_id_for(day, trigger)
        start, end = daily.data_interval(day)
        store.start_run(run_id, daily.PIPELINE_ID, day.isoformat(), start.isoformat(), end.isoformat(), trigger)
        for step in steps:
            t0 = time.perf_counter()
            counts = step(settings, day, run_id, store)
            per_step[step.__name__] += time.perf_counter() - t0
            store.record_step(run_id, counts)
            if step is daily.compute_order_metrics:
                consumed.append(counts.rows_in)
        store.finish_run(run_id, "success")
        per_day.append(time.perf_counter() - t_day)
    store.close()
    release_warehouses()  # checkpoint the warehouse file: part of a durable load
    return {
        "seconds": time.perf_counter() - t_all,
        "work_cpu_seconds": time.process_time() - cpu_all,  # all threads, set-up excluded
        "per_day": per_day,
        "per_step": per_step,
        "orders_consumed": consumed,
    }


def _build_states_before(home: Path, day: date) -> None:
    """The order and ticket states of the day before ``day``, untimed (as after the daily runs)."""
    from headwater.config import Settings
    from headwater.orchestration.run_store import RunStore
    from headwater.storage.warehouse import release_warehouses

    settings = Settings(home=home)
    store = RunStore(settings.run_store)
    for step in transform_steps():  # compute_order_metrics: order state; load_warehouse: ticket state
        step(settings, day - timedelta(1), "benchsetup", store)
    store.close()
    release_warehouses()


def worker(kind: str, home: Path, first: date, last: date, out: Path) -> None:
    days = [first + timedelta(d) for d in range((last - first).days + 1)]
    if kind == "hw-daily-full":  # full recompute of `last`: no state of the day before may exist
        _drop_staging(home, STATES, last - timedelta(1), last)
        result = _headwater_days(home, [last], "benchdaily")
    elif kind == "hw-daily":  # the daily run as scheduled: yesterday's states exist
        _drop_staging(home, STATES, last - timedelta(1), last)
        _build_states_before(home, last)
        result = _headwater_days(home, [last], "benchdaily")
    elif kind == "hw-backfill-cold":  # no state before the range: day 1 is a full recompute
        _drop_staging(home, STATES, first - timedelta(1), last)
        result = _headwater_days(home, days, "benchbackfill")
    elif kind == "hw-backfill-warm":  # the states of the day before exist (as after daily runs)
        _drop_staging(home, STATES, first - timedelta(1), last)
        _build_states_before(home, first)
        result = _headwater_days(home, days, "benchbackfill")
    elif kind in ("pd-daily", "pd-backfill"):
        import reference

        from headwater.config import Settings

        lake, out_dir = Settings(home=home).lake_dir, home / "pandas_out"
        per_day, consumed = [], []
        t_all, cpu_all = time.perf_counter(), time.process_time()
        for day in days if kind == "pd-backfill" else [last]:
            t0 = time.perf_counter()
            consumed.append(reference.run_day(lake, out_dir, day))
            per_day.append(time.perf_counter() - t0)
        result = {"seconds": time.perf_counter() - t_all, "work_cpu_seconds": time.process_time() - cpu_all,
                  "per_day": per_day, "orders_consumed": consumed}
    else:
        raise SystemExit(f"unknown worker {kind!r}")
    out.write_text(json.dumps(result))


def spawn(kind: str, home: Path, first: date, last: date) -> dict:
    """Run one worker in a fresh process; its result plus that child's own peak RSS."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--home", str(home)]
    cmd += ["--first", first.isoformat(), "--last", last.isoformat(), "--out", str(out)]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"worker {kind} failed with exit code {proc.returncode}")
    result = json.loads(out.read_text())
    out.unlink()
    result["process_seconds"] = wall  # incl. interpreter start-up and imports
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux: KiB
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # whole process, all threads
    result["loadavg_1m"] = [load_before, os.getloadavg()[0]]  # others' load on the machine skews wall times
    return result


# --- checks --------------------------------------------------------------------------------------
_CHECK_SQL = """
WITH h AS (SELECT * FROM customer_metrics WHERE snapshot_date BETWEEN $first AND $last),
p AS (
    SELECT * REPLACE (
        CAST(snapshot_date AS DATE) AS snapshot_date,
        CAST(first_order_date AS DATE) AS first_order_date,
        CAST(last_order_date AS DATE) AS last_order_date)
    FROM read_parquet($files)
)
SELECT
    count(h.customer_id) AS headwater_rows,
    count(p.customer_id) AS pandas_rows,
    count(*) FILTER (WHERE h.customer_id IS NULL OR p.customer_id IS NULL) AS unmatched_customers,
    count(*) FILTER (WHERE CAST(h.total_revenue * 100 AS BIGINT) <> p.total_revenue_cents) AS total_revenue,
    count(*) FILTER (WHERE h.order_count <> p.order_count) AS order_count,
    count(*) FILTER (WHERE CAST(h.avg_order_value * 100 AS BIGINT) <> p.avg_order_value_cents) AS avg_order_value,
    count(*) FILTER (WHERE CAST(h.estimated_clv * 100 AS BIGINT) <> p.estimated_clv_cents) AS estimated_clv,
    count(*) FILTER (WHERE h.first_order_date <> p.first_order_date
                        OR h.last_order_date <> p.last_order_date) AS order_dates,
    count(*) FILTER (WHERE h.days_since_last_order <> p.days_since_last_order
                        OR h.customer_lifetime_days <> p.customer_lifetime_days) AS recency_lifetime,
    count(*) FILTER (WHERE abs(h.churn_risk - p.churn_risk) > 1.01e-4) AS churn_risk,
    count(*) FILTER (WHERE h.churn_risk_level <> p.churn_risk_level) AS churn_risk_level,
    count(*) FILTER (WHERE h.tickets_30d <> p.tickets_30d OR h.tickets_90d <> p.tickets_90d
                        OR h.high_priority_tickets_30d <> p.high_priority_tickets_30d
                        OR h.open_tickets <> p.open_tickets) AS support_counts,
    count(*) FILTER (WHERE (h.mean_resolution_hours_90d IS NULL) <> (p.mean_resolution_hours_90d IS NULL)
                        OR abs(h.mean_resolution_hours_90d - p.mean_resolution_hours_90d) > 0.0101)
        AS mean_resolution_hours,
    count(*) FILTER (WHERE h.email_opens_30d <> p.email_opens_30d OR h.email_clicks_30d <> p.email_clicks_30d
                        OR h.campaign_views_30d <> p.campaign_views_30d) AS marketing_counts,
    count(*) FILTER (WHERE (h.click_rate_30d IS NULL) <> (p.click_rate_30d IS NULL)
                        OR abs(h.click_rate_30d - p.click_rate_30d) > 1.01e-4) AS click_rate,
    sum(h.order_count) AS headwater_orders,
    CAST(sum(h.total_revenue) AS VARCHAR) AS headwater_revenue
FROM h FULL JOIN p ON h.snapshot_date = p.snapshot_date AND h.customer_id = p.customer_id
"""

_SALES_SQL = """
SELECT count(*) FILTER (WHERE h.sales_date IS NULL OR p.sales_date IS NULL
    OR h.order_count <> p.order_count OR CAST(h.revenue * 100 AS BIGINT) <> p.revenue_cents
    OR h.unique_customers <> p.unique_customers OR h.refunded_orders <> p.refunded_orders
    OR h.new_customers <> p.new_customers) AS mismatched_days
FROM (SELECT * FROM daily_sales WHERE sales_date BETWEEN $first AND $last) AS h
FULL JOIN (SELECT * REPLACE (CAST(sales_date AS DATE) AS sales_date) FROM read_parquet($files)) AS p
    ON h.sales_date = p.sales_date
"""


def check_same(home: Path, first: date, last: date) -> dict:
    """Compare the warehouse snapshots of ``first..last`` with the pandas output; assert they agree."""
    import duckdb

    from headwater.config import Settings

    days = [first + timedelta(d) for d in range((last - first).days + 1)]
    parts = [home / "pandas_out" / f"snapshot_date={d.isoformat()}" for d in days]
    con = duckdb.connect(str(Settings(home=home).warehouse), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        params = {"first": first, "last": last}
        rel = con.sql(_CHECK_SQL, params={**params, "files": [str(p / "customer_metrics.parquet") for p in parts]})
        row = dict(zip(rel.columns, rel.fetchall()[0], strict=True))
        sales = con.sql(_SALES_SQL, params={**params, "files": [str(p / "daily_sales.parquet") for p in parts]})
        row["daily_sales"] = sales.fetchall()[0][0]
    finally:
        con.close()
    mismatches = {
        k: v
        for k, v in row.items()
        if k not in ("headwater_rows", "pandas_rows", "headwater_orders", "headwater_revenue") and v
    }
    assert row["headwater_rows"] == row["pandas_rows"] > 0, row
    assert not mismatches, f"Headwater and pandas disagree for {first}..{last}: {mismatches}"
    return row


# --- driver --------------------------------------------------------------------------------------
def _machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    import duckdb
    import pandas
    import pyarrow

    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
    }


def _fmt_table(r: dict) -> str:
    d, b = r["daily"], r.get("backfill")
    lines = [
        f"World: {r['world']['orders_generated']:,} orders generated, {d['orders_in_history']:,} in the raw "
        f"zone up to D={r['day']} ({r['world']['customers']:,} customers, {r['world']['days']} days); "
        f"generation {r['world']['generate_seconds']:.1f} s, raw-zone fill {r['world']['fill_raw_seconds']:.1f} s.",
        "",
        "| run | contender | wall s (best) | median s | CPU s | orders/s | pandas / Headwater | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]

    def row(run: str, name: str, m: dict, ratio: str) -> str:
        cpu = m.get("cpu", m["cpu_seconds"])[m["best_index"]]
        return (
            f"| {run} | {name} | {m['best']:.2f} | {m['median']:.2f} | {cpu:.1f} | "
            f"{m['rows_per_s']:,.0f} | {ratio} | "
            f"{m['peak_rss_mib']:,.0f} |"
        )

    if "headwater_full" in d:
        run = f"daily step (best of {d['repeats']})"
        lines.append(row(run, "Headwater (as scheduled: yesterday's state)", d["headwater"], f"**{d['ratio']:.1f}x**"))
        lines.append(row("", "Headwater (full recompute)", d["headwater_full"], f"**{d['ratio_full']:.1f}x**"))
        lines.append(row("", "pandas", d["pandas"], ""))
    else:  # results files from before the incremental daily row
        lines.append(row(f"daily step (best of {d['repeats']})", "Headwater (full recompute)", d["headwater"], ""))
        lines.append(row("", "pandas", d["pandas"], f"**{d['ratio']:.1f}x**"))
    if b:
        for mode in ("cold", "warm"):
            if mode in b["headwater"]:
                ratio = b["pandas"]["best"] / b["headwater"][mode]["best"]
                lines.append(
                    row(f"{b['days']}-day backfill", f"Headwater ({mode})", b["headwater"][mode], f"**{ratio:.1f}x**")
                )
        lines.append(row("", "pandas (recompute each day)", b["pandas"], ""))
    return "\n".join(lines)


def _summary(runs: list[dict], orders: int) -> dict:
    secs = [x["seconds"] for x in runs]
    return {
        "best": min(secs),
        "best_index": secs.index(min(secs)),
        "median": statistics.median(secs),
        "all": secs,
        "rows_per_s": orders / min(secs),
        "peak_rss_mib": max(x["peak_rss_mib"] for x in runs),
        "process_seconds": [x["process_seconds"] for x in runs],
        "cpu_seconds": [x["cpu_seconds"] for x in runs],
        # the work's own CPU time where the worker measured it (set-up excluded), else the process's
        "cpu": [x.get("work_cpu_seconds", x["cpu_seconds"]) for x in runs],
        "loadavg_1m": [x["loadavg_1m"] for x in runs],
        **({"per_step_best": min(runs, key=lambda x: x["seconds"])["per_step"]} if "per_step" in runs[0] else {}),
        **({"per_day_best": min(runs, key=lambda x: x["seconds"])["per_day"]} if "per_day" in runs[0] else {}),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=1_000_000, help="approximate orders in the world")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3, help="daily-step repeats per contender (best is reported)")
    ap.add_argument("--backfill-days", type=int, default=30, help="0 skips the backfill")
    ap.add_argument("--backfill-repeats", type=int, default=1)
    ap.add_argument("--backfill-modes", default="cold,warm", help="Headwater backfill start states")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--tag", help="suffix of the results files, e.g. a second run: orders-N.<tag>.json")
    ap.add_argument("--table-from", type=Path, help="only print the table of a results JSON file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--first", type=date.fromisoformat, help=argparse.SUPPRESS)
    ap.add_argument("--last", type=date.fromisoformat, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.table_from:
        print(_fmt_table(json.loads(args.table_from.read_text())))
        return
    if args.worker:
        worker(args.worker, args.home, args.first, args.last, args.out)
        return

    from world import prepare

    def say(msg: str) -> None:
        print(msg, flush=True)

    world = prepare(args.data_dir.resolve(), args.orders, args.days, args.start, args.seed, log=say)
    home, day = world.home, world.last_day
    # Start from what the current code builds: no staged state, no warehouse (its DDL may have changed).
    shutil.rmtree(home / "pandas_out", ignore_errors=True)
    shutil.rmtree(world.settings.lake_dir / "staging", ignore_errors=True)
    for leftover in world.settings.warehouse.parent.glob(world.settings.warehouse.name + "*"):
        leftover.unlink()
    result: dict = {
        "machine": _machine(),
        "day": day.isoformat(),
        "world": {
            "orders_target": args.orders,
            "orders_generated": world.prep["manifest_rows"]["orders"],
            "customers": world.spec.customers,
            "days": world.spec.days,
            "seed": world.spec.seed,
            "generate_seconds": world.prep["generate_seconds"],
            "fill_raw_seconds": world.prep["fill_raw_seconds"],
            "raw_rows": world.prep["raw_rows"],
        },
    }

    # 1. the daily step for D, interleaved so all see the same machine state: Headwater as scheduled
    #    (yesterday's states exist), Headwater recomputing from the whole history, pandas
    hw_runs, full_runs, pd_runs = [], [], []
    for k in range(args.repeats):
        hw_runs.append(spawn("hw-daily", home, day, day))
        pd_runs.append(spawn("pd-daily", home, day, day))
        if k == 0:
            check = check_same(home, day, day)
        full_runs.append(spawn("hw-daily-full", home, day, day))
        if k == 0:
            check_full = check_same(home, day, day)
        say(
            f"daily #{k + 1}: Headwater {hw_runs[-1]['seconds']:.2f} s (full recompute "
            f"{full_runs[-1]['seconds']:.2f} s), pandas {pd_runs[-1]['seconds']:.2f} s"
        )
    say(f"  same result: {check['headwater_rows']:,} customers, {check['headwater_orders']:,} orders")
    history = full_runs[0]["orders_consumed"][0]
    assert history == pd_runs[0]["orders_consumed"][0] == check["headwater_orders"] == check_full["headwater_orders"]
    hw, full, pdm = _summary(hw_runs, history), _summary(full_runs, history), _summary(pd_runs, history)
    result["daily"] = {
        "repeats": args.repeats,
        "orders_in_history": history,
        "orders_folded_incremental": hw_runs[0]["orders_consumed"][0],
        "check": check,
        "check_full": check_full,
        "headwater": hw,
        "headwater_full": full,
        "pandas": pdm,
        "ratio": pdm["best"] / hw["best"],
        "ratio_full": pdm["best"] / full["best"],
    }
    d = result["daily"]
    say(f"daily: pandas/Headwater = {d['ratio']:.1f}x (full recompute {d['ratio_full']:.1f}x)")

    # 2. the backfill of the last N days
    if args.backfill_days > 0:
        first = day - timedelta(args.backfill_days - 1)
        shutil.rmtree(home / "pandas_out", ignore_errors=True)
        pd_runs = [spawn("pd-backfill", home, first, day) for _ in range(args.backfill_repeats)]
        say(f"backfill pandas: {min(r['seconds'] for r in pd_runs):.1f} s")
        touched = sum(pd_runs[0]["orders_consumed"])
        backfill: dict = {
            "days": args.backfill_days,
            "first": first.isoformat(),
            "orders_in_histories": touched,
            "pandas": _summary(pd_runs, touched),
            "headwater": {},
        }
        for mode in args.backfill_modes.split(","):
            runs = [spawn(f"hw-backfill-{mode}", home, first, day) for _ in range(args.backfill_repeats)]
            backfill["headwater"][mode] = _summary(runs, touched)
            backfill["headwater"][mode]["check"] = check_same(home, first, day)
            ratio = backfill["pandas"]["best"] / backfill["headwater"][mode]["best"]
            say(f"backfill Headwater {mode}: {min(r['seconds'] for r in runs):.1f} s ({ratio:.1f}x), same result")
        result["backfill"] = backfill

    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / (f"orders-{args.orders}" + (f".{args.tag}" if args.tag else ""))
    stem.parent.joinpath(stem.name + ".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = _fmt_table(result)
    stem.parent.joinpath(stem.name + ".md").write_text(table + "\n")
    say("\n" + table)


if __name__ == "__main__":
    main()
