"""``headwater events|stream|dlq ...``: thin commands, each calling one function of the stream package."""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from headwater.config import load_settings
from headwater.errors import ConfigError
from headwater.stream.config import log_path, stream_config
from headwater.stream.dlq import LogDeadLetterQueue
from headwater.stream.jobs import open_log, replay, run_processor, summary
from headwater.stream.loader import load_file, to_record
from headwater.stream.log import STANDARD_TOPICS, LogRecord, append, validate_topic_name
from headwater.stream.processor import Processor, Progress

events_app = typer.Typer(help="The event log: produce, tail, load, topics, serve.", no_args_is_help=True)
stream_app = typer.Typer(help="The stream processor: run, replay, status.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters of the stream: list, show, replay.", no_args_is_help=True)
console = Console(soft_wrap=True, highlight=False)
HOME = typer.Option(None, "--home", help="Headwater home (default: $HEADWATER_HOME or ./.headwater).")


def _record_json(rec: LogRecord) -> str:
    try:
        value: object = json.loads(rec.value)
    except ValueError:
        value = rec.value
    when = datetime.fromtimestamp(rec.appended_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"topic": rec.topic, "partition": rec.partition, "offset": rec.offset, "key": rec.key,
                       "appended_at": when, "value": value}, separators=(",", ":"))


# -- events ----------------------------------------------------------------------------------------
@events_app.command("produce")
def produce(topic: str = typer.Argument(..., help="Topic to append to (created if absent)."),
            file: Path | None = typer.Option(None, "--file", "-f", help="Read lines from a file, not stdin."),
        home: Path | None = HOME) -> None:
    """Append one record per input line (keyed by its customer_id when it has one)."""
    validate_topic_name(topic)
    if file is not None and not file.is_file():
        raise ConfigError(f"input file {file} does not exist")
    text = file.read_text(encoding="utf-8") if file else sys.stdin.read()
    records = [to_record(line.strip()) for line in text.splitlines() if line.strip()]
    log = open_log(load_settings(home=home))
    try:
        append(log, topic, records)
    finally:
        log.close()
    console.print(f"appended {len(records)} record(s) to {topic}")


@events_app.command("tail")
def tail(topic: str = typer.Argument(...),
         from_beginning: bool = typer.Option(False, "--from-beginning", help="Print every retained record."),
         as_json: bool = typer.Option(False, "--json", help="One JSON record per line."),
         lines: int = typer.Option(10, "--lines", "-n", help="Without --from-beginning: the last N per partition."),
         follow: bool = typer.Option(False, "--follow", help="Keep printing new records until Ctrl-C."),
        home: Path | None = HOME) -> None:
    """Print a topic's records (partition by partition, in offset order)."""
    validate_topic_name(topic)
    log = open_log(load_settings(home=home))
    try:
        known = {t.topic for t in log.topics()} | set(STANDARD_TOPICS)
        if topic not in known:
            raise ConfigError(f"unknown topic {topic!r}; topics: {', '.join(sorted(known))}")
        ends = log.end_offsets(topic)
        pos = {p: start if from_beginning else max(start, end - lines) for p, (start, end) in ends.items()}
        while True:
            for p in sorted(pos):
                while chunk := log.read(topic, p, pos[p], 1000):
                    for rec in chunk:
                        sys.stdout.write((_record_json(rec) if as_json else
                                          f"{rec.partition}:{rec.offset} key={rec.key} {rec.value}") + "\n")
                    pos[p] = chunk[-1].offset + 1
            sys.stdout.flush()
            if not follow:
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        log.close()


@events_app.command("load")
def load(file: Path | None = typer.Argument(None, help="JSONL events file (default: the generator's)."),
        home: Path | None = HOME) -> None:
    """Append an events file to customer_events; lines already loaded are skipped (idempotent)."""
    settings = load_settings(home=home)
    log = open_log(settings)
    try:
        result = load_file(log, file or settings.events_file)
    finally:
        log.close()
    console.print(f"loaded {result.appended} new event(s) from {result.path} "
                  f"({result.already_loaded} line(s) were already loaded)")


@events_app.command("topics")
def topics(home: Path | None = HOME) -> None:
    """List topics with partitions and retained offsets."""
    log = open_log(load_settings(home=home))
    try:
        for topic in STANDARD_TOPICS:
            log.partitions(topic)
        for info in log.topics():
            ends = log.end_offsets(info.topic)
            retained = sum(n - s for s, n in ends.values())
            console.print(f"{info.topic:24} partitions={info.partitions} records={retained} "
                          f"next_offsets={[ends[p][1] for p in sorted(ends)]}")
    finally:
        log.close()


@events_app.command("retention")
def retention(topic: str = typer.Argument(..., help="Topic whose retention to set."),
              max_age_hours: float | None = typer.Option(None, help="Delete records appended longer ago."),
              max_records: int | None = typer.Option(None, help="Keep at most this many per partition."),
              home: Path | None = HOME) -> None:
    """Set a topic's retention (age and/or size) and enforce every topic's retention now."""
    validate_topic_name(topic)
    if max_age_hours is None and max_records is None:
        raise ConfigError("give --max-age-hours and/or --max-records")
    if (max_age_hours is not None and max_age_hours <= 0) or (max_records is not None and max_records < 1):
        raise ConfigError("retention limits must be positive")
    log = open_log(load_settings(home=home))
    try:
        log.create_topic(topic, retention_ms=None if max_age_hours is None else int(max_age_hours * 3_600_000),
                         retention_records=max_records)
        deleted = log.enforce_retention()
    finally:
        log.close()
    console.print(f"retention of {topic} set; {deleted} record(s) deleted")


@events_app.command("serve")
def serve(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000),
        home: Path | None = HOME) -> None:
    """Run the push-ingestion endpoint (POST /events) on HOST:PORT."""
    try:
        import uvicorn
    except ImportError as exc:
        raise ConfigError("the ingest endpoint needs the 'serve' extra: pip install 'headwater[serve]'") from exc
    from headwater.serving.ingest import create_app

    uvicorn.run(create_app(log_path(load_settings(home=home))), host=host, port=port, log_level="warning")


# -- stream ----------------------------------------------------------------------------------------
@stream_app.command("run")
def run(until_idle: bool = typer.Option(False, "--until-idle", help="Stop once the log is consumed."),
        batch_size: int | None = typer.Option(None, help="Events per checkpoint (default 5000)."),
        checkpoint_interval: float | None = typer.Option(None, help="Seconds between checkpoints (default 1)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No live status line."),
        home: Path | None = HOME) -> None:
    """Run the processor: live events/s and lag; Ctrl-C/SIGTERM stop after a final checkpoint."""
    settings = load_settings(home=home)
    overrides = {k: v for k, v in {"batch_size": batch_size, "checkpoint_interval_s": checkpoint_interval}.items()
                 if v is not None}
    config = stream_config(settings, **overrides)
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def started(proc: Processor) -> None:
        c = proc.counts()
        print(f"started: group {config.group} at {c['in']} event(s) consumed, lag {proc.lag()}, "
              f"engine {proc.engine}", flush=True)

    def progress(p: Progress) -> None:
        if not quiet:
            c = p.counts
            print(f"{p.events_per_s:9.0f} ev/s  lag {p.lag:8d}  processed {c['processed']}  "
                  f"dead-lettered {c['dead_lettered']}  late {c['late']}  alerts {c['alerts']}", flush=True)

    log = open_log(settings, config)
    try:
        counts = run_processor(log, config, until_idle=until_idle, should_stop=lambda: stop["now"],
                               on_progress=progress, on_start=started)
    finally:
        log.close()
    print("stopped: " + "  ".join(f"{k} {v}" for k, v in counts.items()), flush=True)


@stream_app.command("replay")
def replay_cmd(from_beginning: bool = typer.Option(False, "--from-beginning", help="Required: rebuild from offset 0."),
               out: Path | None = typer.Option(None, help="Fresh output file (default HOME/stream/replay.sqlite)."),
               force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
        home: Path | None = HOME) -> None:
    """Rebuild state and alerts from the log into a fresh file and compare with the live result."""
    if not from_beginning:
        raise ConfigError("replay rebuilds from the start of the log: pass --from-beginning")
    result = replay(load_settings(home=home), out, force=force)
    console.print(f"replayed {result.counts['in']} event(s) into {result.out}: {result.replay_alerts} alert(s) "
                  f"(live: {result.live_alerts}); counts {result.counts}")
    if result.matches and result.counts == result.live_counts:
        console.print("replay matches live: same alerts, same counts")
    else:
        raise typer.Exit(_mismatch(result.missing_in_replay, result.extra_in_replay))


def _mismatch(missing: int, extra: int) -> int:
    console.print(f"[red]replay differs from live[/]: {missing} alert(s) missing, {extra} extra")
    return 1


@stream_app.command("status")
def status(as_json: bool = typer.Option(False, "--json"),
        home: Path | None = HOME) -> None:
    """Counts so far, alerts by type, dead-letter reasons, lag."""
    settings = load_settings(home=home)
    config = stream_config(settings)
    log = open_log(settings, config)
    try:
        out = summary(log, config)
    finally:
        log.close()
    if as_json:
        print(json.dumps(out, default=str))
        return
    console.print(f"in {out['events_in']}  processed {out['processed']}  dead-lettered {out['dead_lettered']}  "
                  f"late {out['late']}  (conserved: {out['conserved']})")
    console.print(f"alerts {out['alerts']}: {out['alerts_by_type']}")
    if out["dead_letter_reasons"]:
        console.print(f"top dead-letter reasons: {out['dead_letter_reasons']}")


# -- dlq -------------------------------------------------------------------------------------------
@dlq_app.command("list")
def dlq_list(limit: int = typer.Option(50, "--limit", "-n"), as_json: bool = typer.Option(False, "--json"),
        home: Path | None = HOME) -> None:
    """Dead letters, oldest first: id, reason, attempts."""
    log = open_log(load_settings(home=home))
    try:
        letters = LogDeadLetterQueue(log).list(limit)
    finally:
        log.close()
    for letter in letters:
        if as_json:
            print(letter.to_json())
        else:
            print(f"{letter.letter_id:28} attempts={letter.attempts} {letter.reason}")


@dlq_app.command("show")
def dlq_show(letter_id: str = typer.Argument(..., help="An id from `headwater dlq list`."),
        home: Path | None = HOME) -> None:
    """One dead letter in full, with its original payload."""
    log = open_log(load_settings(home=home))
    try:
        letter = LogDeadLetterQueue(log).get(letter_id)
    finally:
        log.close()
    if letter is None:
        raise ConfigError(f"no dead letter with id {letter_id!r} (see `headwater dlq list`)")
    print(json.dumps(asdict(letter), indent=2))


@dlq_app.command("replay")
def dlq_replay(ids: list[str] = typer.Option([], "--id", help="Replay only these letters (repeatable)."),
        home: Path | None = HOME) -> None:
    """Re-append dead letters' original events to customer_events (all not yet replayed, or --id ones)."""
    log = open_log(load_settings(home=home))
    try:
        n = LogDeadLetterQueue(log).replay(ids)
    finally:
        log.close()
    console.print(f"re-appended {n} event(s) to customer_events; run `headwater stream run --until-idle`")
