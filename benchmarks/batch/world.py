"""Benchmark worlds: generate a synthetic world of about N orders and fill its raw zone once.

Both are cached under ``benchmarks/.data/`` (keyed by orders, days, start and seed) with their
timings in ``prep.json``, so a re-run of the benchmark measures the contenders, not the set-up.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from headwater.config import Settings
from headwater.orchestration.run_store import RunStore
from headwater.pipelines import daily
from headwater.synth import WorldSpec, estimate_orders, generate_world

PREP_FILE = "prep.json"
INGEST_STEPS = (daily.extract_orders, daily.ingest_support_tickets, daily.ingest_marketing_events)


@dataclass(frozen=True)
class BenchWorld:
    home: Path
    spec: WorldSpec
    prep: dict

    @property
    def settings(self) -> Settings:
        return Settings(home=self.home)

    @property
    def last_day(self) -> date:
        return self.spec.end - timedelta(days=1)


def customers_for(orders: int, days: int, start: date, seed: int) -> int:
    """Customers whose expected order count is closest to ``orders`` (two secant steps)."""
    customers = max(1, orders // 25)
    for _ in range(3):
        expected = estimate_orders(WorldSpec(customers=customers, days=days, start=start, seed=seed))
        customers = max(1, round(customers * orders / max(expected, 1)))
    return customers


def fill_raw_zone(settings: Settings, spec: WorldSpec) -> dict[str, int]:
    """Run the three ingest steps for every day of the world (sources -> raw zone Parquet)."""
    store = RunStore(settings.run_store)
    totals = {step.__name__: 0 for step in INGEST_STEPS}
    try:
        day = spec.start
        while day < spec.end:
            run_id = daily.run_id_for(day, "benchprep")
            for step in INGEST_STEPS:
                totals[step.__name__] += step(settings, day, run_id, store).rows_out
            day += timedelta(days=1)
    finally:
        store.close()
    return totals


def prepare(data_dir: Path, orders: int, days: int, start: date, seed: int, log=print) -> BenchWorld:
    """The cached world for these parameters, generating it and filling its raw zone if needed."""
    home = data_dir / f"world-{orders}-d{days}-{start.isoformat()}-s{seed}"
    prep_file = home / PREP_FILE
    if prep_file.is_file():
        prep = json.loads(prep_file.read_text())
        spec = WorldSpec(**{**prep["spec"], "start": date.fromisoformat(prep["spec"]["start"])})
        log(f"world {home.name}: cached ({prep['manifest_rows']['orders']:,} orders generated)")
        return BenchWorld(home, spec, prep)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    t0 = time.perf_counter()
    customers = customers_for(orders, days, start, seed)
    spec = WorldSpec(customers=customers, days=days, start=start, seed=seed)
    t_size = time.perf_counter() - t0
    log(f"world {home.name}: {customers:,} customers, generating ...")
    settings = Settings(home=home)
    t0 = time.perf_counter()
    manifest = generate_world(settings, spec)
    t_gen = time.perf_counter() - t0
    log(f"  generated {manifest.rows['orders']:,} orders in {t_gen:.1f} s; filling the raw zone ...")
    t0 = time.perf_counter()
    raw_rows = fill_raw_zone(settings, spec)
    t_fill = time.perf_counter() - t0
    log(f"  raw zone filled in {t_fill:.1f} s: {raw_rows}")
    prep = {
        "spec": spec.to_dict(),
        "sizing_seconds": round(t_size, 2),
        "generate_seconds": round(t_gen, 2),
        "fill_raw_seconds": round(t_fill, 2),
        "manifest_rows": manifest.rows,
        "raw_rows": raw_rows,
    }
    prep_file.write_text(json.dumps(prep, indent=2))
    return BenchWorld(home, spec, prep)
