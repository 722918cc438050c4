"""The quality namespace of the run store: schema history and approvals, metric history, scores.

Tables (append-only migrations, see :func:`register_migrations`):

- ``quality_schema_changes``: every schema change seen on ingest, one row per (dataset, change_id),
  with its status (``recorded`` allowed changes, ``pending`` awaiting approval, ``approved``,
  ``blocked``) and the decision (who, when, why).
- ``quality_metrics``: one value per (run, dataset, metric): volumes, null rates, PSI, durations...
  the history the monitors learn expected ranges from.
- ``quality_checks``: each check's outcome per run (status ok/warn/critical/skipped, observed value,
  expected band) - what the report draws.
- ``quality_scores``: the quality score of each run and its level.
"""

from __future__ import annotations

from dataclasses import dataclass

from headwater.orchestration.run_store import RunStore, register_migrations, utc_now_iso

register_migrations(
    "quality",
    [
        """CREATE TABLE quality_schema_changes (
            dataset TEXT NOT NULL,
            change_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            column_name TEXT NOT NULL,
            old_type TEXT,
            new_type TEXT,
            status TEXT NOT NULL,
            first_seen_run TEXT,
            first_seen_at TEXT NOT NULL,
            last_seen_run TEXT,
            last_seen_at TEXT NOT NULL,
            decided_by TEXT,
            decided_at TEXT,
            reason TEXT,
            PRIMARY KEY (dataset, change_id)
        )""",
        """CREATE TABLE quality_metrics (
            run_id TEXT NOT NULL,
            logical_date TEXT NOT NULL,
            dataset TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (run_id, dataset, metric)
        )""",
        "CREATE INDEX quality_metrics_by_metric ON quality_metrics (dataset, metric, logical_date)",
        """CREATE TABLE quality_checks (
            run_id TEXT NOT NULL,
            logical_date TEXT NOT NULL,
            check_name TEXT NOT NULL,
            dimension TEXT NOT NULL,
            status TEXT NOT NULL,
            score REAL,
            observed REAL,
            expected_low REAL,
            expected_high REAL,
            detail TEXT,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (run_id, check_name)
        )""",
        """CREATE TABLE quality_scores (
            run_id TEXT PRIMARY KEY,
            logical_date TEXT NOT NULL,
            score REAL NOT NULL,
            level TEXT NOT NULL,
            dimensions TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        )""",
        """CREATE TABLE quality_releases (
            dataset TEXT NOT NULL,
            logical_date TEXT NOT NULL,
            released_at TEXT NOT NULL,
            released_by TEXT,
            quarantined_before INTEGER NOT NULL,
            quarantined_after INTEGER NOT NULL,
            passed_after INTEGER NOT NULL
        )""",
    ],
)


@dataclass(frozen=True)
class SchemaChange:
    dataset: str
    change_id: str
    kind: str  # add_column | remove_column | widen_type | change_type
    column: str
    old_type: str | None
    new_type: str | None
    status: str  # recorded | pending | approved | blocked
    first_seen_run: str | None = None
    first_seen_at: str | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.kind == "add_column":
            return f"column {self.column!r} ({self.new_type}) added"
        if self.kind == "remove_column":
            return f"column {self.column!r} removed"
        return f"column {self.column!r} type {self.old_type} -> {self.new_type}"


def _row_to_change(r) -> SchemaChange:
    return SchemaChange(
        dataset=r["dataset"],
        change_id=r["change_id"],
        kind=r["kind"],
        column=r["column_name"],
        old_type=r["old_type"],
        new_type=r["new_type"],
        status=r["status"],
        first_seen_run=r["first_seen_run"],
        first_seen_at=r["first_seen_at"],
        decided_by=r["decided_by"],
        decided_at=r["decided_at"],
        reason=r["reason"],
    )


def record_change(store: RunStore, change: SchemaChange, run_id: str | None) -> SchemaChange:
    """Insert a newly seen change or refresh ``last_seen``; a decided change keeps its decision."""
    now = utc_now_iso()
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO quality_schema_changes (dataset, change_id, kind, column_name, old_type, new_type, status,"
            " first_seen_run, first_seen_at, last_seen_run, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (dataset, change_id) DO UPDATE SET last_seen_run = excluded.last_seen_run,"
            " last_seen_at = excluded.last_seen_at",
            (
                change.dataset,
                change.change_id,
                change.kind,
                change.column,
                change.old_type,
                change.new_type,
                change.status,
                run_id,
                now,
                run_id,
                now,
            ),
        )
    return get_change(store, change.dataset, change.change_id) or change


def get_change(store: RunStore, dataset: str, change_id: str) -> SchemaChange | None:
    rows = store.query(
        "SELECT * FROM quality_schema_changes WHERE dataset = ? AND change_id = ?", (dataset, change_id)
    )
    return _row_to_change(rows[0]) if rows else None


def schema_history(store: RunStore, dataset: str | None = None) -> list[SchemaChange]:
    if dataset is None:
        rows = store.query("SELECT * FROM quality_schema_changes ORDER BY first_seen_at, dataset, change_id")
    else:
        rows = store.query(
            "SELECT * FROM quality_schema_changes WHERE dataset = ? ORDER BY first_seen_at, change_id", (dataset,)
        )
    return [_row_to_change(r) for r in rows]


def decide_change(store: RunStore, dataset: str, change_id: str, status: str, by: str, reason: str) -> None:
    with store.transaction() as conn:
        conn.execute(
            "UPDATE quality_schema_changes SET status = ?, decided_by = ?, decided_at = ?, reason = ?"
            " WHERE dataset = ? AND change_id = ?",
            (status, by, utc_now_iso(), reason, dataset, change_id),
        )


def record_metrics(store: RunStore, run_id: str, day: str, dataset: str, metrics: dict[str, float | None]) -> None:
    now = utc_now_iso()
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO quality_metrics (run_id, logical_date, dataset, metric, value, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, dataset, metric) DO UPDATE SET"
            " value = excluded.value, recorded_at = excluded.recorded_at, logical_date = excluded.logical_date",
            [(run_id, day, dataset, k, v, now) for k, v in metrics.items()],
        )


def metric_history(
    store: RunStore, dataset: str, metric: str, before_day: str, limit: int
) -> list[tuple[str, float]]:
    """(logical date, value) of the metric's latest value per date strictly before ``before_day``, newest first."""
    rows = store.query(
        "SELECT logical_date, value FROM quality_metrics WHERE dataset = ? AND metric = ? AND logical_date < ?"
        " AND value IS NOT NULL ORDER BY logical_date DESC, recorded_at DESC",
        (dataset, metric, before_day),
    )
    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    for r in rows:
        if r["logical_date"] in seen:
            continue
        seen.add(r["logical_date"])
        out.append((r["logical_date"], float(r["value"])))
        if len(out) >= limit:
            break
    return out


def metrics_of_day(store: RunStore, day: str) -> dict[tuple[str, str], float | None]:
    """The latest value of every metric recorded for ``day``: (dataset, metric) -> value."""
    rows = store.query(
        "SELECT dataset, metric, value FROM quality_metrics WHERE logical_date = ? ORDER BY recorded_at", (day,)
    )
    return {(r["dataset"], r["metric"]): r["value"] for r in rows}
