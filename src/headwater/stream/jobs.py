"""The stream's use cases, as functions the CLI and the demo call: load, run, replay, summarise."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headwater.config import Settings
from headwater.errors import ConfigError
from headwater.stream.checkpoint import load_checkpoints, totals
from headwater.stream.config import StreamConfig, log_path, stream_config
from headwater.stream.loader import load_file
from headwater.stream.log import CUSTOMER_ALERTS, CUSTOMER_EVENTS, DEAD_LETTERS, iter_topic
from headwater.stream.processor import Processor, Progress
from headwater.stream.sqlite_log import SqliteLog
from headwater.stream.state import SqliteStateStore

WAL_CHECKPOINT_EVERY_S = 0.1  # WAL checkpoints in a background thread, not inside commits (latency p99)


def open_log(settings: Settings, config: StreamConfig | None = None) -> SqliteLog:
    """The installation's event log (created on first use, standard topics included)."""
    config = config or stream_config(settings)
    log = SqliteLog(log_path(settings), default_partitions=config.partitions,
                    wal_checkpoint_every_s=WAL_CHECKPOINT_EVERY_S)
    log.open()
    return log


def run_processor(log: SqliteLog, config: StreamConfig, *, until_idle: bool = True,
                  should_stop: Callable[[], bool] = lambda: False,
                  on_progress: Callable[[Progress], None] | None = None,
                  on_start: Callable[[Processor], None] | None = None) -> dict[str, int]:
    """Run the live processor on ``log`` and return its cumulative counts."""
    proc = Processor(log, log, SqliteStateStore(log, config.group), config)
    proc.open()
    if on_start:
        on_start(proc)
    return proc.run(until_idle=until_idle, should_stop=should_stop, on_progress=on_progress)


def alert_ids(log: SqliteLog) -> list[str]:
    """Every alert id in ``customer_alerts``, in log order (duplicates kept, so they can be caught)."""
    return [json.loads(r.value)["alert_id"] for r in iter_topic(log, CUSTOMER_ALERTS)]


@dataclass(frozen=True)
class ReplayResult:
    out: Path
    counts: dict[str, int]
    live_counts: dict[str, int]
    replay_alerts: int
    live_alerts: int
    matches: bool
    missing_in_replay: int
    extra_in_replay: int


def replay(settings: Settings, out: Path | None = None, *, config: StreamConfig | None = None,
           force: bool = False) -> ReplayResult:
    """Kappa-style: rebuild state and alerts from the beginning of the log into a fresh file.

    The replay stops where the live processor's checkpoint is, so the two can be compared: the same
    alerts (as a set of ids, with no duplicates on either side) and the same counts.
    """
    config = config or stream_config(settings)
    out = out or settings.home / "stream" / "replay.sqlite"
    if out.resolve() == log_path(settings).resolve():
        raise ConfigError("the replay output must be a different file from the live log")
    if out.exists():
        if not force:
            raise ConfigError(f"replay output {out} exists; pass --force to overwrite it")
        for suffix in ("", "-wal", "-shm"):
            Path(str(out) + suffix).unlink(missing_ok=True)
    live = open_log(settings, config)
    try:
        live_cps = load_checkpoints(live, config.group, CUSTOMER_EVENTS)
        until = {p: cp.offset for p, cp in live_cps.items()}
        sink = SqliteLog(out, default_partitions=config.partitions)
        sink.open()
        for topic in (CUSTOMER_ALERTS, DEAD_LETTERS):
            sink.create_topic(topic, live.partitions(topic))
        proc = Processor(live, sink, SqliteStateStore(sink, config.group), config, until=until)
        proc.open()
        counts = proc.run(until_idle=True)
        replayed, live_ids = alert_ids(sink), alert_ids(live)
        sink.close()
    finally:
        live.close()
    a, b = set(replayed), set(live_ids)
    matches = a == b and len(a) == len(replayed) == len(live_ids)
    return ReplayResult(out, counts, totals(live_cps), len(replayed), len(live_ids), matches, len(b - a), len(a - b))


def summary(log: SqliteLog, config: StreamConfig, *, samples: int = 3) -> dict[str, Any]:
    """Counts, alerts by type, sample alerts and dead-letter reasons of the live processor."""
    counts = totals(load_checkpoints(log, config.group, CUSTOMER_EVENTS))
    by_type: Counter[str] = Counter()
    sample: list[dict[str, Any]] = []
    seen_types: set[str] = set()
    for rec in iter_topic(log, CUSTOMER_ALERTS):
        alert = json.loads(rec.value)
        by_type[alert["alert_type"]] += 1
        if alert["alert_type"] not in seen_types and len(sample) < samples:
            seen_types.add(alert["alert_type"])
            sample.append(alert)
    reasons: Counter[str] = Counter()
    for rec in iter_topic(log, DEAD_LETTERS):
        reason = json.loads(rec.value)["reason"]
        reasons[reason.split(":")[0] if reason.startswith(("malformed JSON", "invalid ")) else reason] += 1
    return {
        "events_in": counts["in"], "processed": counts["processed"],
        "dead_lettered": counts["dead_lettered"], "late": counts["late"], "duplicates": counts["duplicates"],
        "alerts": sum(by_type.values()), "alerts_by_type": dict(sorted(by_type.items())),
        "sample_alerts": sample, "dead_letter_reasons": dict(reasons.most_common(5)),
        "conserved": counts["in"] == counts["processed"] + counts["dead_lettered"] + counts["late"],
        "log": str(log.path),
    }


def demo_run(settings: Settings, events_file: Path | None = None) -> dict[str, Any]:
    """For ``headwater demo``: load the events file into the log, process until idle, summarise.

    Idempotent: a second call appends and processes only what is new in the file.
    """
    config = stream_config(settings)
    log = open_log(settings, config)
    try:
        loaded = load_file(log, Path(events_file or settings.events_file))
        run_processor(log, config, until_idle=True)
        out = summary(log, config)
        out["loaded_now"] = loaded.appended
        return out
    finally:
        log.close()
