"""Batch monitors: compare a day's metrics with what history says is normal.

Every monitor returns :class:`Check` results (``ok``, ``warn``, ``critical``; ``warmup`` while the
history is too short to judge; ``skipped`` when there is too little data). Nothing here is a
hard-coded range: expected values are learnt from the metric history in the run store.

- **volume** (rows in, per dataset): a robust trend over the last ``VOLUME_DAYS`` days (Theil-Sen:
  the median of pairwise slopes, so a growing business is not a drop), predicted for the day, with
  sigma = 1.4826 x MAD of the residuals. Band = prediction +- max(k x sigma, r x prediction,
  k x sqrt(prediction)) with (k, r) = (4, 0.30) for a warning and (6, 0.50) for critical (the sqrt
  term is Poisson noise: small datasets get wide bands). Rises get twice the relative margin r
  (growth and campaigns are common; drops are what break downstream). A level already seen in the
  window is not an anomaly (the upper bound is at least (1 + r) x the window's max), and a *bursty* series
  (median < half the mean: campaign days) is judged on its lower side only. Warm-up:
  ``VOLUME_WARMUP`` days of history.
- **null rate** (each non-nullable contract column, before the gate): baseline = median of history
  (0 without any); warn above baseline + 0.02, critical above baseline + 0.05, each plus a sampling
  allowance of 4 binomial standard errors; not judged under ``SHARE_MIN_ROWS`` rows.
- **gate** (quarantined share per dataset): the same rule against the share's own history, and a
  warning above 10% whatever the history.
- **drift** (order amounts of the day vs the trailing ``PSI_WINDOW_DAYS`` days in the raw zone):
  population stability index over the trailing window's deciles; warn >= max(0.10, noise),
  critical >= max(0.25, 2 x noise), where noise = 27.88 x (1/n_day + 1/n_trailing) is the 99.9%
  quantile of the PSI of two samples of the same distribution (chi-square, 9 degrees of freedom),
  so small days do not alarm on sampling noise. Skipped under ``PSI_MIN_ROWS`` rows on either side.
- **duration** (each ingest step): warn above max(3 x median, median + 10 s), critical above
  max(6 x median, median + 60 s) of the last ``VOLUME_DAYS`` runs. Warm-up: 5 runs.
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

VOLUME_DAYS = 14
VOLUME_WARMUP = 7
VOLUME_WARN = (4.0, 0.30)
VOLUME_CRITICAL = (6.0, 0.50)
NULL_WARN, NULL_CRITICAL = 0.02, 0.05
GATE_MAX_SHARE = 0.10
SHARE_MIN_ROWS = 20  # fewer rows than this: a share (null rate, quarantined share) is not judged
PSI_WINDOW_DAYS = 14
PSI_WARN, PSI_CRITICAL = 0.10, 0.25
PSI_MIN_ROWS = 200
PSI_BINS = 10
PSI_NOISE_CHI2 = 27.88  # chi-square 99.9% quantile, PSI_BINS - 1 = 9 degrees of freedom
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


def theil_sen(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(intercept, slope) of the Theil-Sen line: robust to up to ~29% outliers."""
    slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs))
              if xs[j] != xs[i]]
    slope = statistics.median(slopes) if slopes else 0.0
    return statistics.median(y - slope * x for x, y in zip(xs, ys, strict=True)), slope


def volume_band(history: list[tuple[str, float]], day: date) -> tuple[float, tuple[float, float], tuple[float, float]]:
    """(prediction, warn band, critical band) for ``day`` from (date, value) history, newest first."""
    recent = history[:VOLUME_DAYS]
    xs = [float((date.fromisoformat(d) - day).days) for d, _ in recent]
    ys = [v for _, v in recent]
    intercept, slope = theil_sen(xs, ys)
    pred = max(intercept, 0.0)  # x = 0 is the day itself
    sigma = 1.4826 * statistics.median(abs(y - (intercept + slope * x)) for x, y in zip(xs, ys, strict=True))
    bursty = statistics.median(ys) <= 0.5 * statistics.mean(ys)  # also a silent window (all zero)
    bands = []
    for k, r in (VOLUME_WARN, VOLUME_CRITICAL):
        half = max(k * sigma, r * pred, k * math.sqrt(pred))
        half_up = max(k * sigma, 2 * r * pred, k * math.sqrt(pred))
        high = math.inf if bursty else max(pred + half_up, max(ys) * (1 + r))
        bands.append((max(pred - half, 0.0), high))
    return pred, bands[0], bands[1]


def volume_check(store: RunStore, dataset: str, day: date, observed: float | None) -> Check:
    name = f"volume:{dataset}"
    if observed is None:
        return Check(name, "volume", "skipped", detail="no ingest metrics for the day")
    history = metric_history(store, dataset, "rows_in", day.isoformat(), VOLUME_DAYS)
    if len(history) < VOLUME_WARMUP:
        return Check(name, "volume", "warmup", observed, detail=f"{len(history)}/{VOLUME_WARMUP} days of history")
    pred, (lo_w, hi_w), (lo_c, hi_c) = volume_band(history, day)
    status = "critical" if not lo_c <= observed <= hi_c else "warn" if not lo_w <= observed <= hi_w else "ok"
    high = None if math.isinf(hi_w) else hi_w
    return Check(name, "volume", status, observed, lo_w, high, f"expected ~{pred:,.0f} from {len(history)} days")


def share_noise(base: float, n: float, floor: float) -> float:
    """Sampling allowance for a share over ``n`` rows: 4 binomial standard errors at max(base, floor)."""
    p = max(base, floor)
    return 4 * math.sqrt(p * (1 - p) / max(n, 1))


def gate_check(store: RunStore, dataset: str, day: date, metrics: dict[str, float | None]) -> Check | None:
    """Quarantined share vs its history: warn above baseline + 0.02, critical above baseline + 0.05 (plus
    the sampling allowance), and warn whatever the history above ``GATE_MAX_SHARE``."""
    rows_in, passed = metrics.get("rows_in"), metrics.get("rows_passed")
    if not rows_in:
        return None
    share = 1 - (passed or 0) / rows_in
    if rows_in < SHARE_MIN_ROWS:
        return Check(f"gate:{dataset}", "validity", "skipped", 1 - share,
                     detail=f"{passed:,.0f} of {rows_in:,.0f} rows passed (too few rows to judge a share)")
    history = [v for _, v in metric_history(store, dataset, "quarantined_share", day.isoformat(), 28)]
    base = statistics.median(history) if history else 0.0
    noise = share_noise(base, rows_in, NULL_WARN)
    status = ("critical" if share > base + NULL_CRITICAL + noise
              else "warn" if share > base + NULL_WARN + noise or share > GATE_MAX_SHARE + noise else "ok")
    return Check(f"gate:{dataset}", "validity", status, 1 - share, max(0.0, 1 - base - NULL_WARN - noise), 1.0,
                 f"{passed:,.0f} of {rows_in:,.0f} rows passed (usual quarantine share {base:.4f})")


def null_checks(store: RunStore, dataset: str, day: date, metrics: dict[str, float | None]) -> list[Check]:
    out: list[Check] = []
    n = metrics.get("rows_in") or 0
    if n < SHARE_MIN_ROWS:
        return out
    for col in CONTRACTS[dataset].columns:
        if col.nullable:
            continue
        rate = metrics.get(f"null_rate:{col.name}")
        if rate is None:
            continue
        history = [v for _, v in metric_history(store, dataset, f"null_rate:{col.name}", day.isoformat(), 28)]
        base = statistics.median(history) if history else 0.0
        noise = share_noise(base, n, NULL_WARN)
        status = ("critical" if rate > base + NULL_CRITICAL + noise
                  else "warn" if rate > base + NULL_WARN + noise else "ok")
        out.append(
            Check(f"null_rate:{dataset}.{col.name}", "completeness", status, rate, 0.0, base + NULL_WARN + noise,
                  f"baseline {base:.4f}, {n:,.0f} rows")
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
    noise = PSI_NOISE_CHI2 * (1 / n_a + 1 / n_e)
    warn, crit = max(PSI_WARN, noise), max(PSI_CRITICAL, 2 * noise)
    status = "critical" if value >= crit else "warn" if value >= warn else "ok"
    return Check(name, "distribution", status, value, 0.0, warn, f"{n_a} orders vs {n_e} trailing")


def duration_check(store: RunStore, dataset: str, day: date, seconds: float | None) -> Check:
    name = f"duration:{dataset}"
    if seconds is None:
        return Check(name, "timeliness", "skipped")
    history = [v for _, v in metric_history(store, dataset, "duration_s", day.isoformat(), VOLUME_DAYS)]
    if len(history) < DURATION_WARMUP:
        return Check(name, "timeliness", "warmup", seconds, detail=f"{len(history)}/{DURATION_WARMUP} runs")
    med = statistics.median(history)
    warn, crit = max(3 * med, med + 10), max(6 * med, med + 60)
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
