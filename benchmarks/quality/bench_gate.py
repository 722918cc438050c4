"""Quality checks on N order rows: the extract step with and without them, in the same run.

Usage: ``.venv/bin/python benchmarks/quality/bench_gate.py --rows 10000000 --repeat 3``

Builds (once, cached under --work) a SQLite orders source holding N orders on one day (0.5% bad rows
of six kinds), then, ``--repeat`` times: reads the interval once (the read is the same work for both
variants, and on a shared machine its noise is larger than the effect measured) and runs, in
alternating order, two variants of the rest of the extract step on that same table:

- **without checks**: drop cancelled rows, type the text columns with a plain ``TRY_CAST``
  statement, write the raw partition;
- **with checks**: the real step's work: schema evolution against the contract, the full gate (not
  null, type, enum, range, reference, interval, duplicate key: one DuckDB statement), raw +
  quarantine partitions, and the ingest metrics (volume, null rates, per-rule counts) into the run store.

Prints a JSON line per measurement and a summary; see README.md for the method and the results.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.batch.engine import local_duckdb
from headwater.config import Settings
from headwater.domain.enums import CANCELLED
from headwater.orchestration.run_store import RunStore
from headwater.quality.contracts import CONTRACTS
from headwater.quality.gate import apply_gate, arrow_schema
from headwater.quality.ingest import evolve_orders, record_ingest
from headwater.sources.database import extract_orders
from headwater.storage.lake import Lake

DAY = date(2024, 3, 1)


def build_source(path: Path, rows: int, seed: int = 7) -> None:
    if path.exists():
        con = sqlite3.connect(path)
        n = con.execute("SELECT count(*) FROM orders").fetchone()[0]
        con.close()
        if n == rows:
            return
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    customers = max(rows // 50, 10)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("BEGIN")
    con.execute("CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, email TEXT, country TEXT,"
                " signup_date TEXT)")
    con.executemany("INSERT INTO customers VALUES (?, 'n', 'e', 'DE', '2024-01-01')",
                    ((i,) for i in range(1, customers + 1)))
    con.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER, order_ts TEXT,"
                " total_amount NUMERIC, status TEXT, updated_at TEXT)")
    start = int(datetime.combine(DAY, datetime.min.time(), tzinfo=UTC).timestamp())
    chunk = 1_000_000
    statuses = np.array(["completed", "refunded", "cancelled"], dtype=object)
    for lo in range(0, rows, chunk):
        n = min(chunk, rows - lo)
        ids = np.arange(lo + 1, lo + n + 1)
        cust = rng.integers(1, customers + 1, n).astype(object)
        secs = np.sort(rng.integers(0, 86_400, n)) + start
        ts = np.datetime_as_string(secs.astype("datetime64[s]"), unit="s").astype(object)
        ts = np.char.replace(ts.astype(str), "T", " ").astype(object)
        amount = np.round(np.exp(rng.normal(3.5, 0.7, n)), 2)
        status = statuses[rng.choice(3, n, p=[0.925, 0.025, 0.05])]
        bad = rng.random(n) < 0.005
        kind = rng.integers(0, 5, n)
        cust[bad & (kind == 0)] = None
        cust[bad & (kind == 1)] = customers + 99
        amount = amount.astype(object)
        amount[bad & (kind == 2)] = -1.0
        status[bad & (kind == 3)] = "shipped_twice"
        ts[bad & (kind == 4)] = "not-a-date"
        con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)",
                        zip(ids.tolist(), cust.tolist(), ts.tolist(), amount.tolist(), status.tolist(),
                            ts.tolist(), strict=True))
    con.execute("CREATE INDEX orders_by_ts ON orders (order_ts)")
    con.execute("COMMIT")
    con.close()


_PLAIN = """SELECT TRY_CAST(order_id AS BIGINT) AS order_id, TRY_CAST(customer_id AS BIGINT) AS customer_id,
CAST(TRY_STRPTIME(order_ts, '%Y-%m-%d %H:%M:%S') AS TIMESTAMPTZ) AS order_ts,
TRY_CAST(total_amount AS DECIMAL(12, 2)) AS total_amount, status FROM raw"""


def read(settings: Settings, store: RunStore) -> tuple[pa.Table, float, float]:
    """The source read both variants share; returns (table, read seconds, evolution seconds)."""
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)
    t0 = time.perf_counter()
    source = evolve_orders(settings.source_db, store, "bench")
    t1 = time.perf_counter()
    raw = extract_orders(settings.source_db, start, start + timedelta(days=1), source.present, source.carried)
    return raw, time.perf_counter() - t1, t1 - t0


def without_checks(settings: Settings, raw: pa.Table) -> dict[str, float]:
    t1 = time.perf_counter()
    kept = raw.filter(pc.invert(pc.fill_null(pc.equal(raw["status"], CANCELLED), False)))
    con = local_duckdb()
    con.register("raw", kept)
    typed = con.sql(_PLAIN).to_arrow_table()
    con.unregister("raw")
    schema = arrow_schema(CONTRACTS["orders"])
    typed = typed.cast(pa.schema([f.with_nullable(True) for f in schema]))
    t2 = time.perf_counter()
    Lake(settings.lake_dir).write_partition("raw", "orders_plain", DAY, typed)
    t3 = time.perf_counter()
    return {"type_or_gate": t2 - t1, "write": t3 - t2, "after_read": t3 - t1, "rows_out": typed.num_rows}


def with_checks(settings: Settings, store: RunStore, raw: pa.Table, evolve_s: float) -> dict[str, float]:
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)
    t1 = time.perf_counter()
    kept = raw.filter(pc.invert(pc.fill_null(pc.equal(raw["status"], CANCELLED), False)))
    gate = apply_gate("orders", kept, start, start + timedelta(days=1), contract=CONTRACTS["orders"])
    t2 = time.perf_counter()
    lake = Lake(settings.lake_dir)
    lake.write_partition("raw", "orders", DAY, gate.passed)
    lake.write_partition("quarantine", "orders", DAY, gate.quarantined)
    record_ingest(store, "bench", DAY, "orders", kept, gate, seconds=time.perf_counter() - t1)
    t3 = time.perf_counter()
    return {"type_or_gate": t2 - t1, "write": t3 - t2, "after_read": t3 - t1 + evolve_s,
            "evolve": evolve_s, "rows_out": gate.passed.num_rows, "quarantined": gate.quarantined.num_rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/headwater-bench-quality"))
    args = ap.parse_args()
    settings = Settings(home=args.work / f"home-{args.rows}")
    t = time.perf_counter()
    build_source(settings.source_db, args.rows)
    print(json.dumps({"source_ready_s": round(time.perf_counter() - t, 1), "rows": args.rows}), flush=True)
    store = RunStore(settings.run_store)
    results: dict[str, list[dict]] = {"without": [], "with": []}
    reads = []
    for i in range(args.repeat):
        raw, read_s, evolve_s = read(settings, store)  # one read per try, shared by both variants
        reads.append(read_s)
        print(json.dumps({"try": i, "read": round(read_s, 3), "rows": raw.num_rows}), flush=True)
        order = ("without", "with") if i % 2 == 0 else ("with", "without")
        for variant in order:
            r = without_checks(settings, raw) if variant == "without" else with_checks(settings, store, raw, evolve_s)
            results[variant].append(r)
            print(json.dumps({"variant": variant, "try": i, **{k: round(v, 3) for k, v in r.items()}}), flush=True)
        del raw
    store.close()
    read_med = statistics.median(reads)
    med = {v: {k: statistics.median(r[k] for r in rs) for k in ("type_or_gate", "write", "after_read")}
           for v, rs in results.items()}
    step_without = read_med + med["without"]["after_read"]
    step_with = read_med + med["with"]["after_read"]
    print(json.dumps({"read_median": read_med, "median": med, "step_without": step_without, "step_with": step_with,
                      "overhead": step_with / step_without - 1}, default=lambda x: round(x, 3)))


if __name__ == "__main__":
    main()
