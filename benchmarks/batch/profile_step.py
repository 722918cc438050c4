"""Where Headwater's daily step spends its time, on a world prepared by ``run.py``.

    .venv/bin/python benchmarks/batch/profile_step.py --orders 1000000

Prints, for the last day D of the world: the cProfile top of a full recompute (compute + enrich +
load, in this fresh process), then each transform's SQL under DuckDB ``EXPLAIN ANALYZE`` with the
inputs the pipeline binds (and, if a transform still casts TIMESTAMPTZ -> DATE through ICU, the
same query with epoch arithmetic).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa

HERE = Path(__file__).resolve().parent
ICU_DATE = "CAST(order_ts AS DATE)"
EPOCH_DATE = "(DATE '1970-01-01' + CAST(epoch_us(order_ts) // 86400000000 AS INTEGER))"


def _best(fn, repeats: int = 3) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def _operators(plan: str, top: int = 8) -> str:
    """The slowest operators of an EXPLAIN ANALYZE tree (name, rows, time), one a line."""
    boxes = re.findall(r"─ ([A-Z][A-Za-z_ ]+?) ─.*?([\d,]+) rows\s+│?\s*([\d.]+)(µs|ms|s)\b", plan, re.S)
    scale = {"µs": 1e-6, "ms": 1e-3, "s": 1.0}
    rows = sorted(((float(t) * scale[u], n.strip(), r) for n, r, t, u in boxes), reverse=True)[:top]
    total = re.search(r"Total Time:\s*([\d.]+)(µs|ms|s)", plan)
    head = f"    total {total.group(1)}{total.group(2)}" if total else ""
    return "\n".join([head] + [f"    {secs * 1000:9.1f} ms  {name:<22} {nrows:>12} rows" for secs, name, nrows in rows])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data-dir", type=Path, default=HERE.parent / ".data")
    args = ap.parse_args()

    from world import prepare

    world = prepare(args.data_dir.resolve(), args.orders, args.days, args.start, args.seed)
    settings, day = world.settings, world.last_day

    from headwater.batch.engine import DuckDBEngine, ParquetInput, transform_sql
    from headwater.domain.schemas import RAW_SCHEMAS
    from headwater.orchestration.run_store import RunStore
    from headwater.pipelines import daily
    from headwater.storage.lake import Lake

    lake = Lake(settings.lake_dir)
    store = RunStore(settings.run_store)
    shutil.rmtree(lake.partition_dir("staging", daily.ORDER_STATE, day - timedelta(1)), ignore_errors=True)
    steps = (daily.compute_order_metrics, daily.load_warehouse)
    prof = cProfile.Profile()
    print(f"== full recompute of {day} in a fresh process (cProfile on)")
    for step in steps:
        t0 = time.perf_counter()
        prof.runcall(step, settings, day, "profile", store)
        print(f"  {step.__name__:<26} {time.perf_counter() - t0:7.2f} s")
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
    print("\n".join(line for line in buf.getvalue().splitlines()[6:] if line.strip()))

    print("\n== the same steps again in this (now warm) process, no profiler")
    shutil.rmtree(lake.partition_dir("staging", daily.ORDER_STATE, day - timedelta(1)), ignore_errors=True)
    for step in steps:
        t0 = time.perf_counter()
        step(settings, day, "profile", store)
        print(f"  {step.__name__:<26} {time.perf_counter() - t0:7.2f} s")

    orders_all = ParquetInput(tuple(lake.files("raw", "orders", end=day)), RAW_SCHEMAS["orders"])
    tickets_all = ParquetInput(tuple(lake.files("raw", "support_tickets", end=day)), RAW_SCHEMAS["support_tickets"])
    params = daily.window_params(day)

    def staged(name: str, schema) -> ParquetInput:
        return ParquetInput(tuple(lake.files("staging", name, day, day)), schema)

    cases = {
        "customer_order_state (full)": (
            daily.ORDER_STATE,
            {"previous": pa.Table.from_batches([], daily.ORDER_STATE_SCHEMA), "rows": orders_all},
            {"as_of": day},
        ),
        "support_ticket_state (full)": (
            daily.TICKET_STATE,
            {"previous": pa.Table.from_batches([], daily.TICKET_STATE_SCHEMA), "rows": tickets_all},
            {k: params[k] for k in ("interval_end", "since_90d")},
        ),
        "customer_metrics (snapshot)": (
            daily.CUSTOMER_METRICS,
            {
                "order_state": staged(daily.ORDER_STATE, daily.ORDER_STATE_SCHEMA),
                "tickets": staged(daily.TICKET_STATE, daily.TICKET_STATE_SCHEMA),
                "marketing": ParquetInput(
                    tuple(lake.files("raw", "marketing_events", day - timedelta(daily.MARKETING_LOOKBACK_DAYS), day)),
                    RAW_SCHEMAS["marketing_events"],
                ),
            },
            params,
        ),
    }
    engine = DuckDBEngine()
    for label, (name, inputs, params) in cases.items():
        print(f"\n== EXPLAIN ANALYZE {label}")
        for input_name, data in inputs.items():
            t0 = time.perf_counter()
            engine._bind(input_name, data)
            n_files = len(data.files) if isinstance(data, ParquetInput) else 0
            print(f"  bind {input_name:<12} {time.perf_counter() - t0:6.3f} s  ({n_files} files)")
        sql = transform_sql(name)
        t_query = _best(lambda sql=sql, p=params: engine.con.sql(sql, params=p).to_arrow_table())
        print(f"  query best of 3: {t_query:.3f} s")
        plan = engine.con.sql("EXPLAIN ANALYZE " + sql, params=params).fetchall()[0][1]
        print(_operators(plan))
        if ICU_DATE in sql:  # the cast the pipeline used before 910fbe0
            fast = sql.replace(ICU_DATE, EPOCH_DATE)
            t_fast = _best(lambda fast=fast, p=params: engine.con.sql(fast, params=p).to_arrow_table())
            print(f"  what-if: {ICU_DATE} -> epoch arithmetic: {t_fast:.3f} s")
    snapshot = engine.run(daily.CUSTOMER_METRICS, cases["customer_metrics (snapshot)"][1], params)
    engine.close()
    store.close()
    _write_floor(snapshot, day)


def _write_floor(snapshot: pa.Table, day: date) -> None:
    """What it costs only to store one day's snapshot, already computed: the floor of every day of a
    backfill, whatever the transforms cost (a scratch warehouse file, not the world's)."""
    import tempfile

    import pyarrow.parquet as pq

    from headwater.storage.lake import _WRITE_OPTIONS
    from headwater.storage.warehouse import DuckDBWarehouse, release_warehouses

    print(f"\n== storing one snapshot ({snapshot.num_rows:,} rows x {snapshot.num_columns} columns), best of 3")
    with tempfile.TemporaryDirectory() as scratch:
        wh = DuckDBWarehouse(Path(scratch) / "floor.duckdb")

        def timed(fn) -> tuple[float, float]:
            best = (float("inf"), 0.0)
            for _ in range(3):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
            return best

        wall, cpu = timed(lambda: wh.replace_partitions(day, {"customer_metrics": snapshot}))
        print(f"  DuckDB warehouse partition replace: {wall:.3f} s wall, {cpu:.3f} s CPU")
        wall, cpu = timed(lambda: pq.write_table(snapshot, Path(scratch) / "s.parquet", **_WRITE_OPTIONS))
        print(f"  Parquet file (the lake's writer options): {wall:.3f} s wall, {cpu:.3f} s CPU")
        wh.close()
        release_warehouses()


if __name__ == "__main__":
    main()
