"""Generator benchmark: wall time and peak memory of ``generate_world`` for about N orders.

    .venv/bin/python benchmarks/synth/run.py --orders 1000000
    .venv/bin/python benchmarks/synth/run.py --orders 10000000 --keep /tmp/world10m

Each size runs in a fresh subprocess so its peak RSS is its own; the world goes to a temporary
folder (deleted afterwards unless ``--keep``). Stage times come from the progress callback.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def customers_for(orders: int, days: int, start: date, seed: int) -> int:
    """Customers whose expected order count is closest to ``orders``."""
    from headwater.synth import WorldSpec, estimate_orders

    customers = max(1, orders // 25)
    for _ in range(3):
        expected = estimate_orders(WorldSpec(customers=customers, days=days, start=start, seed=seed))
        customers = max(1, round(customers * orders / max(expected, 1)))
    return customers


def worker(orders: int, days: int, seed: int, home: Path) -> dict:
    from headwater.config import Settings
    from headwater.synth import WorldSpec, generate_world

    start = date(2024, 1, 1)
    spec = WorldSpec(customers=customers_for(orders, days, start, seed), days=days, start=start, seed=seed)
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    manifest = generate_world(
        Settings(home=home), spec, lambda stage, _f: stages.__setitem__(stage, time.perf_counter() - t0)
    )
    return {
        "spec": spec.to_dict(),
        "rows": manifest.rows,
        "seconds": round(time.perf_counter() - t0, 1),
        "stage_done_at_s": {k: round(v, 1) for k, v in stages.items()},
        "cpu_s": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 1),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it (one size only)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.orders[0], args.days, args.seed, args.keep)))
        return
    for orders in args.orders:
        home = args.keep or Path(tempfile.mkdtemp(prefix="hw-synth-bench-"))
        try:
            cmd = [sys.executable, __file__, "--worker", "--orders", str(orders), "--days", str(args.days)]
            cmd += ["--seed", str(args.seed), "--keep", str(home)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            print(out.strip().splitlines()[-1], flush=True)
        finally:
            if args.keep is None:
                shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
