"""Stream benchmark: throughput with checkpoints, cost per event as history grows, and latency.

    .venv/bin/python benchmarks/stream/bench_stream.py [--events 1000000] [--customers 5000]
        [--rate 5000] [--seconds 20] [--engines native,python] [--out results.json]

1. Throughput: N seeded events are loaded into a fresh SQLite log, then the real processor (validation,
   rules, keyed state, one transaction per checkpoint of 5000 / 1000 events) consumes them, once per
   engine back to back: the compiled core (``native/``, the default) and its Python reference (msgspec
   fast path, Pydantic for the rest: the processor as it was before the core); the time of every 10%
   slice gives the cost per event as the history grows.
2. Naive reference, same events, same run: JSON parse + the same validation, then an in-memory list
   of *all* tickets per customer rescanned on every event, no state store, no checkpoints.
3. Latency: a producer *process* appends at a steady offered rate (batches every 10 ms) while the
   processor runs with small checkpoints; latency = checkpoint commit time - append time of each
   event (its effects, alerts included, become visible at the commit), reported p50/p95/p99.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from headwater.stream.config import StreamConfig
from headwater.stream.events import InvalidEvent, parse_event
from headwater.stream.loader import load_file
from headwater.stream.native import ENGINE_ENV
from headwater.stream.processor import CommittedBatch, sqlite_processor
from headwater.stream.sqlite_log import SqliteLog
from headwater.stream.synthetic import generate_events, write_jsonl

SLICES = 10
DAY_MS = 86_400_000


def use_engine(engine: str) -> None:
    """``native`` (the compiled core, the default when installed) or ``python`` (its reference)."""
    os.environ[ENGINE_ENV] = engine


def throughput(path: Path, events: int, config: StreamConfig, wal_every_s: float | None = None,
               engine: str = "native") -> dict:
    log = SqliteLog(path, wal_checkpoint_every_s=wal_every_s)
    log.open()
    use_engine(engine)
    proc = sqlite_processor(log, config)
    proc.open()
    if (proc._core is not None) != (engine == "native"):
        raise SystemExit(f"engine {engine} asked for, but the processor runs the other one")
    per_slice, cpu_slice = [], []
    step = events // SLICES
    t_all, c_all = time.perf_counter(), time.process_time()
    for _ in range(SLICES):
        t, c = time.perf_counter(), time.process_time()
        proc.run(until_idle=True, max_events=step)
        per_slice.append((time.perf_counter() - t) / step * 1e6)
        cpu_slice.append((time.process_time() - c) / step * 1e6)
    elapsed, cpu = time.perf_counter() - t_all, time.process_time() - c_all
    counts = proc.counts()
    state_items = proc.cached_state_items()
    log.close()
    return {"engine": engine, "events": counts["in"], "seconds": elapsed, "events_per_s": counts["in"] / elapsed,
            "cpu_seconds": cpu, "events_per_cpu_s": counts["in"] / cpu, "us_per_event_by_slice": per_slice,
            "cpu_us_per_event_by_slice": cpu_slice, "counts": counts, "checkpoints": proc.commits,
            "state_items_in_memory_at_end": state_items, "loadavg_at_end": os.getloadavg()}


def naive(lines: list[str]) -> dict:
    """The case's processor done naively: every ticket ever seen, rescanned on every event."""
    tickets: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    alerted: dict[int, bool] = {}
    alerts = 0
    per_slice, cpu_slice = [], []
    step = len(lines) // SLICES
    t_all, c_all = time.perf_counter(), time.process_time()
    for s in range(SLICES):
        t, c = time.perf_counter(), time.process_time()
        for line in lines[s * step:(s + 1) * step]:
            try:
                ev = parse_event(line)
            except InvalidEvent:
                continue
            ts = int(ev.timestamp.timestamp() * 1000)
            hist = tickets[ev.customer_id]
            if ev.event_type == "ticket_created":
                hist.append((ts, ev.payload.priority == "high"))  # type: ignore[union-attr]
            elif ev.event_type == "refund_issued" and ev.payload.amount > 500:  # type: ignore[union-attr]
                alerts += 1
            recent = [h for t_, h in hist if ts - 30 * DAY_MS < t_ <= ts]  # the rescan
            at_risk = len(recent) >= 3 or sum(recent) >= 2
            if at_risk and not alerted.get(ev.customer_id):
                alerts += 1
            alerted[ev.customer_id] = at_risk
        per_slice.append((time.perf_counter() - t) / step * 1e6)
        cpu_slice.append((time.process_time() - c) / step * 1e6)
    elapsed, cpu = time.perf_counter() - t_all, time.process_time() - c_all
    return {"events": len(lines), "seconds": elapsed, "events_per_s": len(lines) / elapsed,
            "cpu_seconds": cpu, "events_per_cpu_s": len(lines) / cpu, "us_per_event_by_slice": per_slice,
            "cpu_us_per_event_by_slice": cpu_slice, "alerts": alerts,
            "tickets_held_at_end": sum(len(v) for v in tickets.values())}


PRODUCER = r"""
import sys, time, json
from headwater.stream.sqlite_log import SqliteLog
from headwater.stream.loader import to_record
path, rate, seconds, lines_file = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
lines = open(lines_file).read().splitlines()
log = SqliteLog(path); log.open()
tick = 0.01; per_tick = rate * tick; sent = 0; start = time.monotonic(); i = 0
while time.monotonic() - start < seconds:
    due = int((time.monotonic() - start) * rate)
    n = due - sent
    if n > 0:
        with log.transaction() as tx:
            tx.append("customer_events", [to_record(l) for l in lines[i:i + n]])
        i += n; sent += n
    time.sleep(tick)
print(sent)
"""


def latency(tmp: Path, lines: list[str], rate: float, seconds: float, interval_s: float,
            wal_every_s: float | None = None, engine: str = "native") -> dict:
    use_engine(engine)
    path = tmp / f"latency-{engine}.sqlite"
    load_at_start = os.getloadavg()
    lines_file = write_jsonl(tmp / "latency.jsonl", lines[: int(rate * seconds * 1.2)])
    log = SqliteLog(path, wal_checkpoint_every_s=wal_every_s)
    log.open()
    log.partitions("customer_events")
    config = StreamConfig(batch_size=1000, checkpoint_interval_s=interval_s)
    lat: list[float] = []
    alert_lat: list[float] = []

    def on_commit(b: CommittedBatch) -> None:  # runs after the commit time was taken: not in the figures
        now_ms = b.committed_at * 1000
        appended = {(p, r.offset): r.appended_ms for p, (first, end) in b.consumed.items()
                    for r in log.read("customer_events", p, first, end - first)}
        lat.extend(now_ms - ms for ms in appended.values())
        alert_lat.extend(now_ms - appended[(p, offset)] for _, p, offset in b.alerts)

    proc = sqlite_processor(log, config, on_commit=on_commit)
    proc.open()
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER, str(path), str(rate), str(seconds),
                                 str(lines_file)], stdout=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    proc.run(until_idle=False, should_stop=lambda: producer.poll() is not None and proc.lag() == 0,
             poll_interval_s=0.002)
    elapsed = time.monotonic() - t0
    sent = int(producer.communicate()[0].strip() or 0)
    log.close()
    warm = [x for x in lat[int(len(lat) * 0.05):]]  # skip the first 5% (start-up)
    return {"engine": engine, "offered_rate": rate, "checkpoint_interval_s": interval_s,
            "wal_checkpoint_every_s": wal_every_s,
            "sent": sent, "processed": len(lat),
            "seconds": elapsed,
            "p50_ms": float(np.percentile(warm, 50)), "p95_ms": float(np.percentile(warm, 95)),
            "p99_ms": float(np.percentile(warm, 99)), "max_ms": float(np.max(warm)),
            "alerts": len(alert_lat), "loadavg_at_start": load_at_start, "loadavg_at_end": os.getloadavg(),
            "alert_p50_ms": float(np.percentile(alert_lat, 50)) if alert_lat else None,
            "alert_p99_ms": float(np.percentile(alert_lat, 99)) if alert_lat else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--checkpoint-interval", type=float, default=0.025, help="Latency run: seconds per commit.")
    ap.add_argument("--wal-checkpoint-every", type=float, default=0.1,
                    help="Seconds between background WAL checkpoints (SqliteLog wal_checkpoint_every_s); "
                         "0: SQLite's auto-checkpoint inside commits (the behaviour before 2026-11-25 afternoon).")
    ap.add_argument("--batch-sizes", default="5000,1000", help="Checkpoint batch sizes to measure.")
    ap.add_argument("--engines", default="native,python",
                    help="Processor engines, measured back to back per batch size: the compiled core and its "
                         "Python reference (the processor of before the core).")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--label", default="", help="Free text stored in the results (e.g. the commit measured).")
    ap.add_argument("--skip", choices=["naive", "latency", "throughput"], action="append", default=[])
    args = ap.parse_args()
    wal_every = args.wal_checkpoint_every or None
    tmp = Path(tempfile.mkdtemp(prefix="hw-stream-bench-"))
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()}
    result: dict = {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()}}
    t = time.perf_counter()
    lines = generate_events(args.events, seed=42, customers=args.customers, bad_rate=0.01,
                            out_of_order_rate=0.01, late_rate=0.001, lateness_s=3600)
    result["generate_s"] = time.perf_counter() - t
    if "throughput" not in args.skip:
        path = tmp / "log.sqlite"
        log = SqliteLog(path)
        log.open()
        t = time.perf_counter()
        load_file(log, write_jsonl(tmp / "events.jsonl", lines), chunk=20_000)
        result["load_events_per_s"] = args.events / (time.perf_counter() - t)
        log.close()
        engines = args.engines.split(",")
        for engine in engines:  # "processor" is the compiled core's, "processor_python" the reference's
            result["processor" if engine == "native" else f"processor_{engine}"] = {}
        for size in [int(x) for x in args.batch_sizes.split(",")]:
            for engine in engines:
                copy = tmp / f"log-{size}-{engine}.sqlite"
                shutil.copy(path, copy)
                name = "processor" if engine == "native" else f"processor_{engine}"
                result[name][size] = throughput(copy, args.events, StreamConfig(batch_size=size), wal_every, engine)
                print(name, size, json.dumps(result[name][size]), flush=True)
                copy.unlink()
    if "naive" not in args.skip:
        result["naive"] = naive(lines)
        print("naive", json.dumps(result["naive"]), flush=True)
    if "latency" not in args.skip:
        for engine in args.engines.split(","):
            name = "latency" if engine == "native" else f"latency_{engine}"
            result[name] = latency(tmp, lines, args.rate, args.seconds, args.checkpoint_interval, wal_every, engine)
            print(name, json.dumps(result[name]), flush=True)
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
