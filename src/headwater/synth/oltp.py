"""The SQLite stand-in for the OLTP database: ``customers`` and ``orders``, with bad orders injected.

Bulk load with journaling off (a crash just means regenerate), build the index after the load,
then switch to WAL so extract jobs can read while something else writes, like a real source.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.domain.enums import ORDER_STATUSES
from headwater.errors import StorageError
from headwater.synth import text
from headwater.synth.anomalies import null_spike_rows
from headwater.synth.bad_records import BadRecordLog, allocate, replace_rows
from headwater.synth.customers import Customers
from headwater.synth.orders import Orders
from headwater.synth.spec import DAY_S, WorldSpec, rng_for

ORDERS = "orders"
ORDER_BAD_KINDS = (
    "impossible_order_ts",
    "negative_total_amount",
    "null_customer_id",
    "orphan_customer_id",
    "unknown_status",
    "unparseable_order_ts",
)
UNKNOWN_STATUS = "shipped_twice"
UNPARSEABLE_TS = "not-a-date"
CHUNK_ROWS = 500_000

SCHEMA = (
    "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, email TEXT, country TEXT,"
    " signup_date TEXT)",
    "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER NULL, order_ts TEXT NULL,"
    " total_amount NUMERIC NULL, status TEXT NULL, updated_at TEXT)",
)
# order_ts serves interval extracts; updated_at (the change-tracking column) finds rows whose
# order_ts cannot be placed in any interval, so the extract's OR query stays two index lookups.
ORDERS_INDEXES = (
    "CREATE INDEX orders_by_ts ON orders(order_ts)",
    "CREATE INDEX orders_by_updated_at ON orders(updated_at)",
)


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def impossible_timestamps(order_s: np.ndarray) -> pa.Array:
    """The day after the last day of the order's month, keeping the time: ``2024-02-30 12:00:00``.

    A calendar-overflow bug (Feb 30, Apr 31, Mar 32, and Feb 29 in a common year): it has the shape
    of a timestamp and sorts inside its own month, so only a real date parse catches it.
    """
    month = order_s.astype("datetime64[s]").astype("datetime64[M]")
    days_in_month = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64)
    clock = text.timestamps(order_s % DAY_S)  # 1970-01-01 HH:MM:SS
    return pc.binary_join_element_wise(
        pa.array(np.datetime_as_string(month, unit="M").tolist(), pa.string()),
        "-",
        pc.utf8_lpad(text.ints(days_in_month + 1), 2, "0"),
        " ",
        pc.utf8_slice_codeunits(clock, 11, 19),
        "",
    )


def _order_columns(orders: Orders, customers: Customers, spec: WorldSpec, log: BadRecordLog) -> list[Any]:
    """Insert-ready columns (numpy object/number arrays or Arrow strings) with bad rows rewritten."""
    rng = rng_for(spec, "bad_records.orders")
    bad = allocate(rng, len(orders), spec.bad_records, ORDER_BAD_KINDS)
    customer_id = orders.customer_id.astype(object)
    customer_id[bad["null_customer_id"]] = None
    customer_id[null_spike_rows(orders, spec)] = None  # injected anomaly (none unless asked for)
    orphans = bad["orphan_customer_id"]
    customer_id[orphans] = len(customers) + 1 + rng.integers(0, 10_000, len(orphans))
    cents = orders.cents.copy()
    cents[bad["negative_total_amount"]] *= -1
    status = np.array([*ORDER_STATUSES, UNKNOWN_STATUS], dtype=object)[orders.status]
    status[bad["unknown_status"]] = UNKNOWN_STATUS

    order_ts = text.timestamps(orders.order_s)
    impossible = bad["impossible_order_ts"]
    order_ts = replace_rows(order_ts, impossible, impossible_timestamps(orders.order_s[impossible]))
    unparseable = bad["unparseable_order_ts"]
    order_ts = replace_rows(order_ts, unparseable, pa.array([UNPARSEABLE_TS] * len(unparseable)))

    for kind, rows in bad.items():
        log.record(ORDERS, kind, len(rows), orders.order_id[rows])
    return [orders.order_id, customer_id, order_ts, cents / 100, status, text.timestamps(orders.updated_s)]


def _chunks(columns: list[Any], n: int) -> Iterator[tuple[int, Iterator[tuple[Any, ...]]]]:
    for start in range(0, n, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n)
        lists = [
            col.slice(start, stop - start).to_numpy(zero_copy_only=False).tolist()
            if isinstance(col, pa.Array)
            else col[start:stop].tolist()
            for col in columns
        ]
        yield stop, zip(*lists, strict=True)


def write_source_db(
    path: Path,
    customers: Customers,
    orders: Orders,
    spec: WorldSpec,
    log: BadRecordLog,
    progress: Callable[[float], None] = lambda _: None,
) -> None:
    """Replace the SQLite file at ``path`` with the generated customers and orders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_database(path)
    order_columns = _order_columns(orders, customers, spec, log)
    customer_columns = [
        customers.customer_id,
        customers.name,
        customers.email,
        customers.country,
        text.dates(customers.signup_s),
    ]
    try:
        con = sqlite3.connect(path, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute("PRAGMA synchronous=OFF")
            con.execute("PRAGMA cache_size=-262144")
            con.execute("BEGIN")
            for statement in SCHEMA:
                con.execute(statement)
            for _, rows in _chunks(customer_columns, len(customers)):
                con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", rows)
            for done, rows in _chunks(order_columns, len(orders)):
                con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", rows)
                progress(0.85 * done / max(len(orders), 1))
            for statement in ORDERS_INDEXES:
                con.execute(statement)
            con.execute("COMMIT")
            con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise StorageError(f"could not write the source database {path}: {exc}", path=str(path)) from exc
    progress(1.0)
