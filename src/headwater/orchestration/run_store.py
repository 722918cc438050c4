"""The run store: one SQLite file (WAL) holding runs, step row counts and watermarks.

Each component owns a *namespace* of migrations (``core``, ``quality``, ``stream``...), versioned on
its own, so a later feature adds tables without touching another component's history::

    register_migrations("quality", ["CREATE TABLE ...", "ALTER TABLE ..."])

Migrations are append-only: never edit a shipped statement, add a new one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from headwater.errors import DataError, StorageError

_MIGRATIONS: dict[str, list[str]] = {}


def register_migrations(namespace: str, statements: Sequence[str]) -> None:
    """Declare the ordered schema statements of ``namespace`` (idempotent for the same list)."""
    known = _MIGRATIONS.setdefault(namespace, [])
    if list(statements[: len(known)]) != known:
        raise StorageError(f"migrations of {namespace!r} were edited: append new statements instead")
    known[:] = list(statements)


register_migrations(
    "core",
    [
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            pipeline_id TEXT NOT NULL,
            logical_date TEXT NOT NULL,
            interval_start TEXT NOT NULL,
            interval_end TEXT NOT NULL,
            state TEXT NOT NULL,
            trigger TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            error TEXT
        )""",
        "CREATE INDEX runs_by_pipeline ON runs (pipeline_id, logical_date)",
        """CREATE TABLE step_counts (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            step TEXT NOT NULL,
            rows_in INTEGER NOT NULL,
            rows_out INTEGER NOT NULL,
            filtered INTEGER NOT NULL,
            rejected INTEGER NOT NULL,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (run_id, step)
        )""",
        """CREATE TABLE watermarks (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
    ],
)


@dataclass(frozen=True)
class StepCounts:
    """Rows accounted by one step: ``rows_in == rows_out + filtered + rejected`` must hold."""

    step: str
    rows_in: int
    rows_out: int
    filtered: int = 0
    rejected: int = 0

    def __post_init__(self) -> None:
        if self.rows_in != self.rows_out + self.filtered + self.rejected:
            raise DataError(
                f"step {self.step!r} lost rows: in={self.rows_in} != out={self.rows_out} "
                f"+ filtered={self.filtered} + rejected={self.rejected}",
                step=self.step,
            )


def utc_now_iso() -> str:
    """Wall-clock time for metadata only (never for data: transforms take the logical date)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class RunStore:
    """Thread-safe access to the run store file; every write is its own short transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open run store {self.path}: {exc}") from exc

    # -- plumbing -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cur = self._conn.execute(sql, params)
            cur.row_factory = sqlite3.Row
            return cur.fetchall()

    def migrate(self) -> None:
        with self.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions (namespace TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            for namespace, statements in _MIGRATIONS.items():
                row = conn.execute("SELECT version FROM schema_versions WHERE namespace = ?", (namespace,)).fetchone()
                current = row[0] if row else 0
                for statement in statements[current:]:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_versions (namespace, version) VALUES (?, ?) "
                    "ON CONFLICT (namespace) DO UPDATE SET version = excluded.version",
                    (namespace, len(statements)),
                )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- runs and step counts -----------------------------------------------------------------
    def start_run(
        self,
        run_id: str,
        pipeline_id: str,
        logical_date: str,
        interval_start: str,
        interval_end: str,
        trigger: str = "manual",
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO runs (run_id, pipeline_id, logical_date, interval_start, interval_end, state, "
                "trigger, started_at) VALUES (?, ?, ?, ?, ?, 'running', ?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET state = 'running', started_at = excluded.started_at, "
                "finished_at = NULL, error = NULL",
                (run_id, pipeline_id, logical_date, interval_start, interval_end, trigger, utc_now_iso()),
            )

    def finish_run(self, run_id: str, state: str, error: str | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET state = ?, finished_at = ?, error = ? WHERE run_id = ?",
                (state, utc_now_iso(), error, run_id),
            )

    def record_step(self, run_id: str, counts: StepCounts) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO step_counts (run_id, step, rows_in, rows_out, filtered, rejected, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step) DO UPDATE SET "
                "rows_in = excluded.rows_in, rows_out = excluded.rows_out, filtered = excluded.filtered, "
                "rejected = excluded.rejected, recorded_at = excluded.recorded_at",
                (
                    run_id,
                    counts.step,
                    counts.rows_in,
                    counts.rows_out,
                    counts.filtered,
                    counts.rejected,
                    utc_now_iso(),
                ),
            )

    def step_counts(self, run_id: str) -> list[StepCounts]:
        rows = self.query(
            "SELECT step, rows_in, rows_out, filtered, rejected FROM step_counts WHERE run_id = ? "
            "ORDER BY recorded_at, step",
            (run_id,),
        )
        return [StepCounts(**dict(r)) for r in rows]

    # -- watermarks ---------------------------------------------------------------------------
    def get_watermark(self, name: str) -> str | None:
        rows = self.query("SELECT value FROM watermarks WHERE name = ?", (name,))
        return rows[0]["value"] if rows else None

    def advance_watermark(self, name: str, value: str) -> None:
        """Move the watermark forward only (ISO strings compare in time order)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO watermarks (name, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value), "
                "updated_at = excluded.updated_at",
                (name, value, utc_now_iso()),
            )
