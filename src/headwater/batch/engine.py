"""Batch engines: run a named SQL transform over named inputs and return an Arrow table.

A transform is written once (``batch/sql/<name>.sql``) against relation names and ``$param``
placeholders; the engine binds inputs (Parquet files or Arrow tables) to those names. DuckDB is
the embedded default; a Spark engine implements the same Protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Protocol

import duckdb
import pyarrow as pa

from headwater.errors import StorageError


@dataclass(frozen=True)
class ParquetInput:
    """Explicit part files (already pruned by partition) and the schema to use when there are none."""

    files: tuple[str, ...]
    schema: pa.Schema


Input = ParquetInput | pa.Table


@cache
def transform_sql(name: str) -> str:
    """The SQL text of a transform, shipped as package data."""
    return resources.files("headwater.batch").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


class Engine(Protocol):
    def run(self, transform: str, inputs: Mapping[str, Input], params: Mapping[str, object]) -> pa.Table: ...

    def close(self) -> None: ...


_local = threading.local()
_pool: list[duckdb.DuckDBPyConnection] = []
_pool_lock = threading.Lock()


class _Lease:
    """A thread's in-memory DuckDB, handed back to the pool when the thread ends (its locals are
    dropped then). The orchestrator runs every task try in a fresh thread, and opening a DuckDB
    costs ~30 ms: a pool keeps that cost to once per concurrent thread, not once per task."""

    def __init__(self) -> None:
        with _pool_lock:
            con = _pool.pop() if _pool else None
        if con is None:
            con = duckdb.connect(":memory:")
            con.execute("SET TimeZone = 'UTC'")
        self.con = con

    def __del__(self) -> None:
        try:
            with _pool_lock:
                _pool.append(self.con)
        except Exception:  # interpreter shutdown: nothing left to give it back to
            pass


def local_duckdb() -> duckdb.DuckDBPyConnection:
    """The calling thread's in-memory DuckDB. Views are connection-wide, so threads running in
    parallel never share one; a thread reuses its own for every query it makes."""
    lease = getattr(_local, "lease", None)
    if lease is None:
        lease = _local.lease = _Lease()
    return lease.con


class DuckDBEngine:
    """DuckDB with the session time zone in UTC, so timestamp -> date casts never shift a day.

    By default the thread's in-memory DuckDB; given a connection (e.g. the warehouse's own session),
    it runs there, so a result can be loaded with :meth:`relation` without ever leaving DuckDB."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None = None) -> None:
        self.con = local_duckdb() if con is None else con
        self._bound: list[str] = []

    def _bind(self, name: str, data: Input) -> None:
        if isinstance(data, ParquetInput):
            if data.files:
                # union_by_name: a raw partition may carry columns added by the source (schema evolution)
                rel = self.con.read_parquet(list(data.files), union_by_name=True)
            else:
                rel = self.con.from_arrow(pa.Table.from_batches([], data.schema))  # empty_table() imports pandas
        else:
            rel = self.con.from_arrow(data)
        self.con.register(name, rel)  # a temporary view: never stored in a database file
        self._bound.append(name)

    def relation(
        self, transform: str, inputs: Mapping[str, Input], params: Mapping[str, object]
    ) -> duckdb.DuckDBPyRelation:
        """The transform as a lazy relation of this engine's connection (valid until :meth:`close`)."""
        sql = transform_sql(transform)
        try:
            for name, data in inputs.items():
                self._bind(name, data)
            return self.con.sql(sql, params=dict(params))
        except duckdb.Error as exc:
            raise StorageError(f"transform {transform!r} failed: {exc}", transform=transform) from exc

    def run(self, transform: str, inputs: Mapping[str, Input], params: Mapping[str, object]) -> pa.Table:
        rel = self.relation(transform, inputs, params)
        try:
            return rel.to_arrow_table()
        except duckdb.Error as exc:
            raise StorageError(f"transform {transform!r} failed: {exc}", transform=transform) from exc

    def count(self, name: str) -> int:
        """Rows of a bound input (for row accounting; Parquet inputs answer from their footers)."""
        return self.con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]  # noqa: S608 - a bound name

    def close(self) -> None:
        """Drop this run's views so the thread's connection holds no input alive."""
        for name in self._bound:
            self.con.unregister(name)
        self._bound.clear()
