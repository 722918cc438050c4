"""Batch monitors: compare a day's metrics with what history says is normal.

Every monitor returns :class:`Check` results (``ok``, ``warn``, ``critical``; ``warmup`` while the
history is too short to judge; ``skipped`` when there is too little data). Nothing here is a
hard-coded range: expected values are learnt from the metric history in the run store.

- **volume** (rows in, per dataset): median and MAD of the last comparable days (the same weekday
  when at least ``MIN_SAME_WEEKDAY`` of them exist in the last ``VOLUME_WEEKS`` weeks, else the last
  ``VOLUME_DAYS`` days). Band half-width = max(k x 1.4826 x MAD, r x median, k x sqrt(median)), with
  (k, r) = (4, 0.25) for a warning and (6, 0.45) for critical. Warm-up: ``VOLUME_WARMUP`` days.
- **null rate** (each non-nullable contract column, before the gate): baseline = median of history
  (0 without any); warn above baseline + 0.02, critical above baseline + 0.05.
- **drift** (order amounts of the day vs the trailing ``PSI_WINDOW_DAYS`` days in the raw zone):
  population stability index over the trailing window's deciles; warn >= 0.10, critical >= 0.25.
  Skipped under ``PSI_MIN_ROWS`` rows on either side.
- **duration** (each ingest step): warn above max(3 x median, median + 5 s), critical above
  max(6 x median, median + 30 s) of the last ``VOLUME_DAYS`` runs. Warm-up: 5 runs.
- **freshness** (each raw dataset): the newest record at the interval end is at most the
  contract's ``freshness`` old (warn otherwise).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb

from headwater.batch.engine import local_duckdb
from headwater.config import Settings
from headwater.errors import StorageError
from headwater.orchestration.run_store import RunStore
from headwater.quality.contracts import CONTRACTS, RAW_DATASETS
from headwater.quality.store import metric_history
from headwater.storage.lake import Lake

VOLUME_DAYS = 28
VOLUME_WEEKS = 8
MIN_SAME_WEEKDAY = 4
VOLUME_WARMUP = 7
VOLUME_WARN = (4.0, 0.25)
VOLUME_CRITICAL = (6.0, 0.45)
NULL_WARN, NULL_CRITICAL = 0.02, 0.05
PSI_WINDOW_DAYS = 14
PSI_WARN, PSI_CRITICAL = 0.10, 0.25
PSI_MIN_ROWS = 200
PSI_BINS = 10
DURATION_WARMUP = 5


@dataclass(frozen=True)
class Check:
    name: str
    dimension: str  # validity | completeness | volume | distribution | timeliness | consistency
    status: str  # ok | warn | critical | warmup | skipped
    observed: float | None = None
    low: float | None = None
    high: float | None = None
    detail: str = ""
    score: float | None = None  # None: derived from status (ok 1, warn 0.5, critical 0, others unscored)

    @property
    def value(self) -> float | None:
        if self.score is not None:
            return self.score
        return {"ok": 1.0, "warn": 0.5, "critical": 0.0}.get(self.status)


def robust_band(values: list[float], k: float, r: float) -> tuple[float, float, float]:
    """(median, low, high): median +- max(k * 1.4826 * MAD, r * median, k * sqrt(median))."""
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    half = max(k * 1.4826 * mad, r * med, k * math.sqrt(max(med, 0.0)))
    return med, max(med - half, 0.0), med + half


def comparable(history: list[tuple[str, float]], day: date) -> list[float]:
    """Same-weekday values of the last weeks when there are enough, else the most recent days."""
    horizon = day - timedelta(weeks=VOLUME_WEEKS)
    same = [v for d, v in history if date.fromisoformat(d).weekday() == day.weekday()
            and date.fromisoformat(d) >= horizon]
    if len(same) >= MIN_SAME_WEEKDAY:
        return same
    return [v for _, v in history[:VOLUME_DAYS]]


def volume_check(store: RunStore, dataset: str, day: date, observed: float | None) -> Check:
    name = f"volume:{dataset}"
    if observed is None:
        return Check(name, "volume", "skipped", detail="no ingest metrics for the day")
    history = metric_history(store, dataset, "rows_in", day.isoformat(), VOLUME_WEEKS * 7)
    if len(history) < VOLUME_WARMUP:
        return Check(name, "volume", "warmup", observed, detail=f"{len(history)}/{VOLUME_WARMUP} days of history")
    values = comparable(history, day)
    med, lo_w, hi_w = robust_band(values, *VOLUME_WARN)
    _, lo_c, hi_c = robust_band(values, *VOLUME_CRITICAL)
    status = "critical" if not lo_c <= observed <= hi_c else "warn" if not lo_w <= observed <= hi_w else "ok"
    return Check(name, "volume", status, observed, lo_w, hi_w, f"expected ~{med:,.0f} from {len(values)} days")


def null_checks(store: RunStore, dataset: str, day: date, metrics: dict[str, float | None]) -> list[Check]:
    out = []
    for col in CONTRACTS[dataset].columns:
        if col.nullable:
            continue
        rate = metrics.get(f"null_rate:{col.name}")
        if rate is None:
            continue
        history = [v for _, v in metric_history(store, dataset, f"null_rate:{col.name}", day.isoformat(), 28)]
        base = statistics.median(history) if history else 0.0
        status = "critical" if rate > base + NULL_CRITICAL else "warn" if rate > base + NULL_WARN else "ok"
        out.append(
            Check(f"null_rate:{dataset}.{col.name}", "completeness", status, rate, 0.0, base + NULL_WARN,
                  f"baseline {base:.4f}")
        )
    return out


def psi(expected: list[float], actual: list[float], eps: float = 1e-4) -> float:
    """Population stability index of two bin-share vectors."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, eps), max(a, eps)
        total += (a - e) * math.log(a / e)
    return total


_PSI_SQL = """
WITH edges AS (
  SELECT quantile_cont(CAST(total_amount AS DOUBLE), $qs) AS q FROM read_parquet($trailing, union_by_name = true)
),
binned AS (
  SELECT 'e' AS side, CAST(total_amount AS DOUBLE) AS x FROM read_parquet($trailing, union_by_name = true)
  UNION ALL
  SELECT 'a', CAST(total_amount AS DOUBLE) FROM read_parquet($today, union_by_name = true)
)
SELECT side, len(list_filter((SELECT q FROM edges), lambda e: e < x)) AS bin, count(*) AS n
FROM binned GROUP BY ALL
"""


def drift_check(settings: Settings, day: date) -> Check:
    """PSI of the day's order amounts against the trailing window (raw zone)."""
    name = "drift:orders.total_amount"
    lake = Lake(settings.lake_dir)
    today = lake.files("raw", "orders", day, day)
    trailing = lake.files("raw", "orders", day - timedelta(days=PSI_WINDOW_DAYS), day - timedelta(days=1))
    if not today or len(trailing) < min(7, PSI_WINDOW_DAYS):
        return Check(name, "distribution", "warmup", detail=f"{len(trailing)} trailing days")
    qs = [k / PSI_BINS for k in range(1, PSI_BINS)]
    try:
        rows = local_duckdb().sql(_PSI_SQL, params={"qs": qs, "trailing": trailing, "today": today}).fetchall()
    except duckdb.Error as exc:
        raise StorageError(f"drift monitor failed: {exc}", dataset="orders") from exc
    counts = {"e": [0] * PSI_BINS, "a": [0] * PSI_BINS}
    for side, b, n in rows:
        if b is not None:  # no trailing rows: no edges
            counts[side][min(b, PSI_BINS - 1)] += n
    n_e, n_a = sum(counts["e"]), sum(counts["a"])
    if n_a < PSI_MIN_ROWS or n_e < PSI_MIN_ROWS:
        return Check(name, "distribution", "skipped", detail=f"{n_a} rows today, {n_e} trailing (< {PSI_MIN_ROWS})")
    value = psi([c / n_e for c in counts["e"]], [c / n_a for c in counts["a"]])
    status = "critical" if value >= PSI_CRITICAL else "warn" if value >= PSI_WARN else "ok"
    return Check(name, "distribution", status, value, 0.0, PSI_WARN, f"{n_a} orders vs {n_e} trailing")


def duration_check(store: RunStore, dataset: str, day: date, seconds: float | None) -> Check:
    name = f"duration:{dataset}"
    if seconds is None:
        return Check(name, "timeliness", "skipped")
    history = [v for _, v in metric_history(store, dataset, "duration_s", day.isoformat(), VOLUME_DAYS)]
    if len(history) < DURATION_WARMUP:
        return Check(name, "timeliness", "warmup", seconds, detail=f"{len(history)}/{DURATION_WARMUP} runs")
    med = statistics.median(history)
    warn, crit = max(3 * med, med + 5), max(6 * med, med + 30)
    status = "critical" if seconds > crit else "warn" if seconds > warn else "ok"
    return Check(name, "timeliness", status, seconds, 0.0, warn, f"baseline {med:.2f} s")


def freshness_checks(settings: Settings, day: date, interval_end: datetime) -> list[Check]:
    """Newest passed record per raw dataset (last 7 partitions) vs the contract's freshness bound."""
    lake = Lake(settings.lake_dir)
    out = []
    for dataset in RAW_DATASETS:
        c = CONTRACTS[dataset]
        if c.freshness is None or c.freshness_column is None:
            continue
        files = lake.files("raw", dataset, day - timedelta(days=7), day)
        newest = None
        if files:
            try:
                newest = local_duckdb().sql(
                    f"SELECT max({c.freshness_column}) FROM read_parquet($files, union_by_name = true)",  # noqa: S608
                    params={"files": files},
                ).fetchall()[0][0]
            except duckdb.Error as exc:
                raise StorageError(f"freshness monitor failed: {exc}", dataset=dataset) from exc
        name = f"freshness:{dataset}"
        if newest is None:  # an empty dataset is the volume monitor's finding, not a freshness one
            out.append(Check(name, "timeliness", "skipped", detail="no records in the last 7 partitions"))
            continue
        age_h = (interval_end - newest).total_seconds() / 3600
        bound = c.freshness.total_seconds() / 3600
        out.append(Check(name, "timeliness", "ok" if age_h <= bound else "warn", age_h, 0.0, bound,
                         f"newest {newest:%Y-%m-%d %H:%M}"))
    return out
