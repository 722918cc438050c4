"""``validate_output_quality``: the day's outputs against their contracts and the source, the batch
monitors, and the run's quality score (with alerts).

Output checks (a failure fails the task, permanently):

- the warehouse contracts of ``customer_metrics`` and ``daily_sales`` for the snapshot: not-null,
  enum, range, column-order rules, primary-key uniqueness (one row per customer per snapshot);
- ``revenue_reconciles``: source revenue of the interval's non-cancelled orders (the extract's own
  predicate) == ``daily_sales.revenue`` + the revenue of the day's quarantined in-interval rows,
  exactly (decimal cents); ``orders_reconcile``: the same for counts;
- ``metrics_monotonic``: against the previous snapshot, no customer's order_count or total_revenue
  decreased, no customer disappeared, no first_order_date moved.

Quality score (documented formula)::

    check score  s_c = 1 (ok) | 0.5 (warn) | 0 (critical);
                 warmup/skipped checks are not scored
    dimension    S_d = min over its scored checks, 1 when it has none (validity, completeness,
                       volume, distribution, timeliness, consistency)
    run score    S   = mean of the six S_d

so one critical check anywhere gives S <= 5/6 (< 0.90: critical) and one warning S <= 11/12
(< 0.95: warning). Levels: S >= 0.95 ok, 0.90 <= S < 0.95 warning, S < 0.90 critical; warning and
critical raise an alert (kind ``quality_score``) through the alert channels.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa

from headwater.batch.engine import local_duckdb
from headwater.config import Settings
from headwater.errors import DataError, SourceError, StorageError
from headwater.orchestration.run_store import RunStore, utc_now_iso
from headwater.quality import monitors
from headwater.quality.contracts import CONTRACTS, RAW_DATASETS, Contract, column_rules
from headwater.quality.monitors import Check
from headwater.quality.store import metrics_of_day
from headwater.sources.database import TS_FORMAT, connect_readonly
from headwater.storage.lake import Lake
from headwater.storage.warehouse import DuckDBWarehouse

log = logging.getLogger(__name__)

WARN_THRESHOLD = 0.95
CRITICAL_THRESHOLD = 0.90
DIMENSIONS = ("validity", "completeness", "volume", "distribution", "timeliness", "consistency")
PIPELINE_ID = "customer_analytics"


@dataclass
class Outcome:
    day: date
    run_id: str
    checks: list[Check]
    score: float
    level: str
    dimensions: dict[str, float | None] = field(default_factory=dict)

    @property
    def failed_output_checks(self) -> list[Check]:
        return [c for c in self.checks if c.dimension == "consistency" and c.status == "critical"]


# --- output checks --------------------------------------------------------------------------------
def contract_sql(c: Contract, partition_column: str) -> tuple[str, list[str], dict[str, object]]:
    """One statement counting each rule's violations in a warehouse partition (derived from the contract)."""
    rules, params = column_rules(c)
    exprs = [(f"not_null:{col.name}", f"{col.name} IS NULL") for col in c.columns if not col.nullable]
    exprs += [(r.name, f"coalesce({r.violated}, false)") for r in (*rules, *c.rules)]
    names = [n for n, _ in exprs]
    selects = [f"count(*) FILTER (WHERE {e})" for _, e in exprs]
    selects.append(f"count(*) - count(DISTINCT ({', '.join(c.key)}))")
    names.append(f"unique:{'+'.join(c.key)}")
    selects.append("count(*)")
    # identifiers from the contract; values bound
    sql = f"SELECT {', '.join(selects)} FROM {c.dataset} WHERE {partition_column} = $day"  # noqa: S608
    return sql, names, params


def warehouse_contract_checks(wh: DuckDBWarehouse, day: date) -> list[Check]:
    out = []
    for table, part_col in (("customer_metrics", "snapshot_date"), ("daily_sales", "sales_date")):
        sql, names, params = contract_sql(CONTRACTS[table], part_col)
        try:
            row = wh.con.sql(sql, params={**params, "day": day}).fetchall()[0]
        except duckdb.Error as exc:
            raise StorageError(f"cannot check {table}: {exc}", dataset=table) from exc
        *violations, total = row
        bad = {n: v for n, v in zip(names, violations, strict=True) if v}
        name = f"contract:{table}"
        if table == "daily_sales" and total != 1:
            bad["one_row_per_day"] = total
        detail = ", ".join(f"{k} {v}" for k, v in bad.items()) or f"{total} rows conform"
        out.append(Check(name, "consistency", "critical" if bad else "ok", float(sum(bad.values())), detail=detail))
    return out


def _source_interval(settings: Settings, day: date) -> pa.Table:
    """Amount (as text) of the interval's non-cancelled source orders: the extract's own predicate."""
    from headwater.pipelines.daily import data_interval

    start, end = data_interval(day)
    con = connect_readonly(settings.source_db)
    try:
        rows = con.execute(
            "SELECT CAST(total_amount AS TEXT) FROM orders WHERE order_ts >= ? AND order_ts < ?"
            " AND (status IS NULL OR status <> 'cancelled')",
            (start.strftime(TS_FORMAT), end.strftime(TS_FORMAT)),
        ).fetchall()
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read source orders for reconciliation: {exc}", dataset="orders") from exc
    finally:
        con.close()
    return pa.table({"amount": pa.array([r[0] for r in rows], pa.string())})


_MONEY_SUM = "CAST(coalesce(sum(coalesce(TRY_CAST({col} AS DECIMAL(18, 2)), 0)), 0) AS DECIMAL(18, 2))"


def reconciliation_checks(settings: Settings, wh: DuckDBWarehouse, day: date) -> list[Check]:
    from headwater.pipelines.daily import data_interval

    start, end = data_interval(day)
    con = local_duckdb()
    source = _source_interval(settings, day)
    try:
        con.register("src", source)
        n_src, rev_src = con.sql(f"SELECT count(*), {_MONEY_SUM.format(col='amount')} FROM src").fetchall()[0]  # noqa: S608
        con.unregister("src")
        q_files = Lake(settings.lake_dir).files("quarantine", "orders", day, day)
        n_q, rev_q = 0, Decimal("0.00")
        if q_files:
            n_q, rev_q = con.sql(
                f"""SELECT count(*), {_MONEY_SUM.format(col="json_extract_string(record, '$.total_amount')")}
                    FROM read_parquet($files, union_by_name = true)
                    WHERE json_extract_string(record, '$.order_ts') >= $start
                      AND json_extract_string(record, '$.order_ts') < $end
                      AND coalesce(json_extract_string(record, '$.status'), '') <> 'cancelled'""",  # noqa: S608
                params={"files": q_files, "start": start.strftime(TS_FORMAT), "end": end.strftime(TS_FORMAT)},
            ).fetchall()[0]
    except duckdb.Error as exc:
        raise StorageError(f"reconciliation failed: {exc}") from exc
    sales = wh.query("SELECT order_count, revenue FROM daily_sales WHERE sales_date = ?", [day]).to_pylist()
    if len(sales) != 1:
        return [Check("revenue_reconciles", "consistency", "critical", detail=f"{len(sales)} daily_sales rows")]
    loaded_n, loaded_rev = sales[0]["order_count"], sales[0]["revenue"]
    rev_ok = rev_src == loaded_rev + rev_q
    n_ok = n_src == loaded_n + n_q
    return [
        Check("revenue_reconciles", "consistency", "ok" if rev_ok else "critical", float(loaded_rev),
              detail=f"source {rev_src} = warehouse {loaded_rev} + quarantined {rev_q}"
              + ("" if rev_ok else f" (off by {rev_src - loaded_rev - rev_q})")),
        Check("orders_reconcile", "consistency", "ok" if n_ok else "critical", float(loaded_n),
              detail=f"source {n_src} = warehouse {loaded_n} + quarantined {n_q}"),
    ]


def monotonic_check(wh: DuckDBWarehouse, day: date) -> Check:
    prev = day - timedelta(days=1)
    rows = wh.query(
        """SELECT count(*) FILTER (WHERE t.customer_id IS NULL) AS vanished,
                  count(*) FILTER (WHERE t.order_count < p.order_count) AS fewer_orders,
                  count(*) FILTER (WHERE t.total_revenue < p.total_revenue) AS less_revenue,
                  count(*) FILTER (WHERE t.first_order_date <> p.first_order_date) AS moved_first,
                  count(*) AS previous
           FROM customer_metrics AS p
           LEFT JOIN customer_metrics AS t ON t.customer_id = p.customer_id AND t.snapshot_date = ?
           WHERE p.snapshot_date = ?""",
        [day, prev],
    ).to_pylist()[0]
    if rows["previous"] == 0:
        return Check("metrics_monotonic", "consistency", "skipped", detail=f"no snapshot for {prev}")
    bad = {k: v for k, v in rows.items() if k != "previous" and v}
    detail = ", ".join(f"{k} {v}" for k, v in bad.items()) or f"{rows['previous']} customers consistent with {prev}"
    return Check("metrics_monotonic", "consistency", "critical" if bad else "ok", float(sum(bad.values())),
                 detail=detail)


def output_checks(settings: Settings, day: date) -> list[Check]:
    wh = DuckDBWarehouse(settings.warehouse, read_only=True)
    try:
        checks = warehouse_contract_checks(wh, day)
        return [*checks, *reconciliation_checks(settings, wh, day), monotonic_check(wh, day)]
    finally:
        wh.close()


# --- monitors ---------------------------------------------------------------------------------------
def monitor_checks(settings: Settings, store: RunStore, day: date) -> list[Check]:
    from headwater.pipelines.daily import data_interval

    metrics = metrics_of_day(store, day.isoformat())
    out: list[Check] = []
    for dataset in RAW_DATASETS:
        m = {metric: v for (ds, metric), v in metrics.items() if ds == dataset}
        rows_in = m.get("rows_in")
        gate = monitors.gate_check(store, dataset, day, m)
        if gate is not None:
            out.append(gate)
        out.append(monitors.volume_check(store, dataset, day, rows_in))
        out.extend(monitors.null_checks(store, dataset, day, m))
        out.append(monitors.duration_check(store, dataset, day, m.get("duration_s")))
    out.append(monitors.drift_check(settings, day))
    out.extend(monitors.freshness_checks(settings, day, data_interval(day)[1]))
    return out


# --- score, persistence, alerts -----------------------------------------------------------------------
def score(checks: Sequence[Check]) -> tuple[float, dict[str, float | None]]:
    dims: dict[str, float | None] = {}
    for d in DIMENSIONS:
        values = [c.value for c in checks if c.dimension == d and c.value is not None]
        dims[d] = min(values) if values else None  # None: nothing judged yet (warm-up), counts as 1
    return sum(1.0 if v is None else v for v in dims.values()) / len(DIMENSIONS), dims


def level_of(value: float) -> str:
    return "ok" if value >= WARN_THRESHOLD else "warning" if value >= CRITICAL_THRESHOLD else "critical"


def _persist(store: RunStore, outcome: Outcome) -> None:
    now = utc_now_iso()
    ds = outcome.day.isoformat()
    with store.transaction() as conn:
        conn.execute("DELETE FROM quality_checks WHERE run_id = ?", (outcome.run_id,))
        conn.executemany(
            "INSERT INTO quality_checks (run_id, logical_date, check_name, dimension, status, score, observed,"
            " expected_low, expected_high, detail, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(outcome.run_id, ds, c.name, c.dimension, c.status, c.value, c.observed, c.low, c.high, c.detail, now)
             for c in outcome.checks],
        )
        conn.execute(
            "INSERT INTO quality_scores (run_id, logical_date, score, level, dimensions, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET score = excluded.score,"
            " level = excluded.level, dimensions = excluded.dimensions, recorded_at = excluded.recorded_at,"
            " logical_date = excluded.logical_date",
            (outcome.run_id, ds, outcome.score, outcome.level, json.dumps(outcome.dimensions), now),
        )


def _alert(settings: Settings, outcome: Outcome, channels: Sequence | None) -> None:
    from headwater.monitoring.alerts import Alert, default_channels, send_all

    bad = [c for c in outcome.checks if c.status in ("warn", "critical")]
    message = (
        f"quality score {outcome.score:.3f} ({outcome.level}) for {outcome.day}: "
        + ", ".join(f"{c.name} {c.status}" for c in bad[:8])
    )
    alert = Alert(
        kind="quality_score", pipeline_id=PIPELINE_ID, run_id=outcome.run_id, message=message,
        severity="critical" if outcome.level == "critical" else "warning",
        details={"score": outcome.score, "dimensions": outcome.dimensions,
                 "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in bad]},
    )
    own = channels is None
    chans = list(default_channels(settings)) if own else list(channels)
    try:
        send_all(chans, alert)
    finally:
        if own:
            for ch in chans:
                ch.close()


def validate_day(
    settings: Settings,
    store: RunStore,
    day: date,
    run_id: str,
    *,
    extra_checks: Sequence[Check] = (),
    raise_on_failure: bool = True,
    channels: Sequence | None = None,
) -> Outcome:
    """Run the output checks and monitors of ``day``, record them and the score, alert when it is low.

    Raises :class:`DataError` naming the failed output checks (after recording and alerting) unless
    ``raise_on_failure`` is false."""
    checks = [*output_checks(settings, day), *extra_checks, *monitor_checks(settings, store, day)]
    value, dims = score(checks)
    outcome = Outcome(day, run_id, checks, round(value, 4), level_of(value), dims)
    _persist(store, outcome)
    if outcome.level != "ok":
        _alert(settings, outcome, channels)
    failed = outcome.failed_output_checks
    if failed and raise_on_failure:
        raise DataError(
            f"output checks failed for {day}: " + "; ".join(f"{c.name} ({c.detail})" for c in failed),
            partition=day.isoformat(),
            rule=",".join(c.name for c in failed),
        )
    return outcome
