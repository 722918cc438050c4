"""The quarantine zone: list, show and release quarantined rows.

Quarantine partitions live at ``lake/quarantine/<dataset>/date=D`` (source, line, the original
record as JSON, every failed rule, run id). *Release* re-ingests a day after the source was fixed:
the dataset's ingest step runs again for D (re-reading the source through the gate), replacing D's
raw and quarantine partitions, and the release is recorded with the counts before and after.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import date

import duckdb
import pyarrow as pa

from headwater.batch.engine import local_duckdb
from headwater.config import Settings
from headwater.errors import ConfigError, StorageError
from headwater.orchestration.run_store import RunStore, utc_now_iso
from headwater.quality.contracts import RAW_DATASETS
from headwater.storage.lake import Lake

QUARANTINE = "quarantine"


def _files(settings: Settings, dataset: str | None, start: date | None, end: date | None) -> list[str]:
    lake = Lake(settings.lake_dir)
    datasets = [dataset] if dataset else list(RAW_DATASETS)
    for d in datasets:
        if d not in RAW_DATASETS:
            raise ConfigError(f"unknown dataset {d!r} (one of {', '.join(RAW_DATASETS)})")
    return [f for d in datasets for f in lake.files(QUARANTINE, d, start, end)]


def _query(files: list[str], sql: str, params: list[object] | None = None) -> pa.Table:
    con = local_duckdb()
    try:
        con.read_parquet(files, hive_partitioning=False, filename=True, union_by_name=True).create_view(
            "q", replace=True
        )
        return con.sql(sql, params=params or []).to_arrow_table()
    except duckdb.Error as exc:
        raise StorageError(f"cannot read the quarantine: {exc}") from exc
    finally:
        con.execute("DROP VIEW IF EXISTS q")


_DATASET_EXPR = "regexp_extract(filename, '/quarantine/([^/]+)/date=', 1)"
_DATE_EXPR = "CAST(regexp_extract(filename, 'date=([0-9-]+)', 1) AS DATE)"


def quarantine_summary(
    settings: Settings, dataset: str | None = None, start: date | None = None, end: date | None = None
) -> list[dict]:
    """Per dataset and date: quarantined rows and the count per failed rule."""
    files = _files(settings, dataset, start, end)
    if not files:
        return []
    rows = _query(
        files,
        f"""SELECT dataset, day, count(DISTINCT rid) AS n_rows, rule, count(*) AS n_rule
            FROM (SELECT dataset, day, rid, unnest(rules) AS rule
                  FROM (SELECT {_DATASET_EXPR} AS dataset, {_DATE_EXPR} AS day, row_number() OVER () AS rid,
                               CASE WHEN len(failed_rules) = 0 THEN ['?'] ELSE failed_rules END AS rules FROM q))
            GROUP BY GROUPING SETS ((dataset, day), (dataset, day, rule))
            ORDER BY day, dataset, rule NULLS FIRST""",  # noqa: S608 (constant expressions only)
    ).to_pylist()
    out: list[dict] = []
    for r in rows:
        if r["rule"] is None:
            out.append({"dataset": r["dataset"], "date": r["day"], "rows": r["n_rows"], "by_rule": {}})
        else:
            out[-1]["by_rule"][r["rule"]] = r["n_rule"]
    return out


def quarantine_rows(
    settings: Settings, dataset: str, day: date, rule: str | None = None, limit: int = 20
) -> list[dict]:
    """Quarantined rows of one partition (optionally only those that failed ``rule``)."""
    files = _files(settings, dataset, day, day)
    if not files:
        return []
    rows = _query(
        files,
        "SELECT source, line, record, failed_rules, run_id FROM q "
        "WHERE $rule IS NULL OR list_contains(failed_rules, $rule) ORDER BY source, line, record LIMIT $limit",
        {"rule": rule, "limit": limit},  # type: ignore[arg-type]
    ).to_pylist()
    for r in rows:
        with contextlib.suppress(TypeError, ValueError):  # an unreadable line stays text
            r["record"] = json.loads(r["record"])
    return rows


@dataclass(frozen=True)
class Release:
    dataset: str
    day: date
    quarantined_before: int
    quarantined_after: int
    passed_after: int

    @property
    def released(self) -> int:
        return self.quarantined_before - self.quarantined_after


def release(settings: Settings, store: RunStore, dataset: str, day: date, by: str | None = None) -> Release:
    """Re-ingest ``dataset`` for ``day`` from the (fixed) source; rows that now pass leave the quarantine."""
    from headwater.pipelines import daily

    steps = {
        "orders": daily.extract_orders,
        "support_tickets": daily.ingest_support_tickets,
        "marketing_events": daily.ingest_marketing_events,
    }
    if dataset not in steps:
        raise ConfigError(f"unknown dataset {dataset!r} (one of {', '.join(steps)})")
    lake = Lake(settings.lake_dir)
    if day not in lake.partitions(QUARANTINE, dataset, day, day):
        raise ConfigError(f"nothing quarantined for {dataset} on {day} (see `headwater quarantine list`)")
    before = lake.read_partition(QUARANTINE, dataset, day).num_rows
    run_id = daily.run_id_for(day, "release")
    start, end = daily.data_interval(day)
    store.start_run(run_id, daily.PIPELINE_ID, day.isoformat(), start.isoformat(), end.isoformat(), "release")
    try:
        counts = steps[dataset](settings, day, run_id, store)
        store.record_step(run_id, counts)
    except Exception as exc:
        store.finish_run(run_id, "failed", str(exc))
        raise
    store.finish_run(run_id, "success")
    result = Release(dataset, day, before, counts.rejected, counts.rows_out)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO quality_releases (dataset, logical_date, released_at, released_by, quarantined_before,"
            " quarantined_after, passed_after) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (dataset, day.isoformat(), utc_now_iso(), by, before, result.quarantined_after, result.passed_after),
        )
    return result
