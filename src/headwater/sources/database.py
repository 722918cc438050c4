"""Extract from the OLTP source (SQLite stand-in for the production Postgres).

Rows come out *raw* (text as stored) and are typed by the quality gate, so a bad value becomes a
quarantined row with its reason instead of an exception halfway through a day.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from headwater.errors import SourceError, SourceNotReady

TS_FORMAT = "%Y-%m-%d %H:%M:%S"
TS_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"

RAW_ORDER_COLUMNS = ("order_id", "customer_id", "order_ts", "total_amount", "status", "_customer_known")

# Rows of the interval, plus rows whose order_ts cannot be placed in any interval (missing or not a
# timestamp) attributed by updated_at, so that they are quarantined instead of silently never read.
_ORDERS_SQL = """
SELECT {select},
       CASE WHEN c.customer_id IS NULL THEN 0 ELSE 1 END
FROM orders AS o LEFT JOIN customers AS c ON c.customer_id = {customer_id}
WHERE (o.order_ts >= :start AND o.order_ts < :end)
   OR ((o.order_ts IS NULL OR o.order_ts NOT GLOB :ts_glob)
       AND o.updated_at >= :start AND o.updated_at < :end)
ORDER BY o.order_id
"""
_CONTRACT_COLUMNS = RAW_ORDER_COLUMNS[:-1]
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _orders_sql(present: tuple[str, ...], extra: tuple[str, ...]) -> str:
    """The extract statement: contract columns the source still has (others as NULL), then carried ones.
    Identifiers are the contract's constants or source column names checked against ``_IDENT``."""
    select = []
    for col in (*_CONTRACT_COLUMNS, *extra):
        if col in _CONTRACT_COLUMNS and col not in present:
            select.append("NULL")
        elif not _IDENT.match(col):
            raise SourceError(f"refusing to read source column {col!r}", dataset="orders")
        else:
            select.append(f'CAST(o."{col}" AS TEXT)' if col == "total_amount" else f'o."{col}"')
    customer_id = "o.customer_id" if "customer_id" in present else "NULL"
    return _ORDERS_SQL.format(select=", ".join(select), customer_id=customer_id)


def connect_readonly(path: Path) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise SourceError(f"orders source database not found at {path} (run `headwater generate` first)")
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise SourceError(f"cannot open orders source {path}: {exc}") from exc


def extract_orders(
    path: Path,
    start: datetime,
    end: datetime,
    present: tuple[str, ...] = _CONTRACT_COLUMNS,
    extra: tuple[str, ...] = (),
) -> pa.Table:
    """Orders of the data interval ``[start, end)`` as raw text columns (plus ``_customer_known``).

    ``present``: the contract columns the source table still has (an approved removal reads as
    NULL); ``extra``: added source columns to carry (schema evolution)."""
    params = {"start": start.strftime(TS_FORMAT), "end": end.strftime(TS_FORMAT), "ts_glob": TS_GLOB}
    names = [*_CONTRACT_COLUMNS, *extra, "_customer_known"]
    con = connect_readonly(path)
    try:
        rows = con.execute(_orders_sql(present, extra), params).fetchall()
        if not rows:
            latest = con.execute("SELECT max(order_ts) FROM orders WHERE order_ts GLOB :ts_glob", params).fetchone()[0]
            if latest is None or latest < params["start"]:
                raise SourceNotReady(
                    f"orders source has no data for {start.date()} yet (latest order: {latest or 'none'})",
                    dataset="orders",
                    partition=str(start.date()),
                )
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read orders from {path}: {exc}", dataset="orders") from exc
    finally:
        con.close()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    *text_columns, known = columns
    arrays = [pa.array([None if v is None else str(v) for v in col], pa.string()) for col in text_columns]
    arrays.append(pa.array([bool(v) for v in known], pa.bool_()))
    return pa.table(arrays, names=names)


def source_schema(path: Path, table: str = "orders") -> dict[str, str]:
    """Column name -> declared SQLite type of a source table (what schema evolution compares)."""
    con = connect_readonly(path)
    try:
        rows = con.execute("SELECT name, type FROM pragma_table_info(?)", (table,)).fetchall()
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read the schema of {table} in {path}: {exc}", dataset=table) from exc
    finally:
        con.close()
    return {name: declared or "" for name, declared in rows}


def latest_order_ts(path: Path) -> str | None:
    """The newest well-formed order timestamp in the source (what a SQL sensor polls)."""
    con = connect_readonly(path)
    try:
        return con.execute("SELECT max(order_ts) FROM orders WHERE order_ts GLOB ?", (TS_GLOB,)).fetchone()[0]
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read orders from {path}: {exc}", dataset="orders") from exc
    finally:
        con.close()
