"""The processor runtime: read events, validate, apply the rules, checkpoint effects atomically.

For each input record, exactly one of four things happens, and the counts say so
(``in = processed + dead_lettered + late``):

* it is not a valid event (malformed JSON, missing/wrong envelope fields, unknown type, bad
  payload) -> dead-lettered at once with the reason, the original text, attempts=1;
* its event time is older than the partition watermark minus the allowed lateness -> sent to the
  late-events topic with the reason (never silently dropped);
* its handler fails: a retryable error is retried with exponential backoff up to a limit, then
  dead-lettered; a permanent one is dead-lettered at once (every failed attempt is also written to
  ``processing_errors``);
* otherwise it is processed (a repeated event id within the lateness window is processed as a
  no-op and counted as a duplicate).

Outputs (alerts, dead letters, late events, errors), changed state and input offsets are committed
in one log transaction per batch, so a crash at any point resumes from the last checkpoint and the
outputs are exactly those of an uninterrupted run. Results depend only on each partition's own
sequence, never on batch boundaries or on how partitions interleave, as long as each customer's
events are on one partition: records keyed by customer id, as ``events load`` and ``POST /events``
append them. (A customer spread over partitions shares one state across them, so the order in which
the partitions are read, and where checkpoints fall between them, can show in the results.)
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from headwater.resilience.dlq import DeadLetter
from headwater.resilience.retry import ExponentialBackoff, Retrier, RetriesExhausted
from headwater.stream import native
from headwater.stream.checkpoint import CheckpointPolicy, PartitionCheckpoint, load_checkpoints, totals
from headwater.stream.config import StreamConfig
from headwater.stream.events import Event, InvalidEvent, RefundPayload, TicketPayload, decode_event
from headwater.stream.log import (
    CUSTOMER_ALERTS,
    CUSTOMER_EVENTS,
    DEAD_LETTERS,
    LATE_EVENTS,
    PROCESSING_ERRORS,
    EventLog,
    LogRecord,
    Record,
)
from headwater.stream.rules import (
    DEFAULT_HANDLERS,
    AlertRecord,
    Handler,
    due_after,
    encode_alert,
    evict,
    expiry_horizon_ms,
    forget_seen,
    large_refund,
)
from headwater.stream.sqlite_log import SqliteLog
from headwater.stream.state import STATE_FORMAT, CustomerState, SqliteStateStore, StateItem, StateStore

Row = tuple[int, "str | None", str]  # (offset, key, value) of an input record: EventLog.read_values
INT64 = 2**63
SWEEP_EVERY_MS = 86_400_000  # expire whole customers once per day of event time per partition


@dataclass
class CommittedBatch:
    """What one checkpoint made durable (handed to ``on_commit``, e.g. to measure latency)."""

    events: int
    alerts: list[tuple[AlertRecord, int, int]]  # (alert, input partition, input offset of its trigger)
    committed_at: float
    consumed: dict[int, tuple[int, int]]  # partition -> (first, next) input offset of the batch


@dataclass
class Progress:
    """Live figures for the CLI: totals so far, throughput since start and lag behind the log end."""

    counts: dict[str, int]
    events_per_s: float
    lag: int
    checkpoints: int


def _event_id_of(raw: str) -> str | None:
    try:
        value = json.loads(raw).get("event_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Batch:
    alerts: list[tuple[AlertRecord, int, int]] = field(default_factory=list)
    dead: list[Record] = field(default_factory=list)
    late: list[Record] = field(default_factory=list)
    errors: list[Record] = field(default_factory=list)
    consumed: dict[int, tuple[int, int]] = field(default_factory=dict)
    events: int = 0


class Processor:
    """A checkpointed stream job over ``input_topic``; ``sink`` receives outputs, offsets and state.

    ``source`` and ``sink`` are the same log in live mode; a replay reads the live log and writes a
    fresh one. ``state`` must commit within ``sink``'s transactions (see :mod:`.state`).
    """

    def __init__(self, source: EventLog, sink: EventLog, state: StateStore, config: StreamConfig,
                 *, handlers: Mapping[str, Handler] | None = None, retrier: Retrier | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 input_topic: str = CUSTOMER_EVENTS, until: Mapping[int, int] | None = None,
                 on_commit: Callable[[CommittedBatch], None] | None = None) -> None:
        self.source, self.sink, self.state, self.config = source, sink, state, config
        self.rules = config.rules
        self._lateness_ms = config.rules.lateness_ms
        self._horizon_ms = expiry_horizon_ms(config.rules)
        self._due_after_ms = due_after(config.rules)
        self.handlers = dict(DEFAULT_HANDLERS if handlers is None else handlers)
        # the compiled core runs the default rules only (custom handlers are Python's)
        self._native = native.load() if self.handlers == DEFAULT_HANDLERS else None
        self._core: Any = None
        self.retrier = retrier or ExponentialBackoff(max_attempts=config.max_attempts,
                                                     base_delay_s=config.retry_base_delay_s)
        self.clock, self.monotonic = clock, monotonic
        self.input_topic = input_topic
        self.on_commit = on_commit
        self.until = dict(until) if until is not None else None  # stop offsets per partition (replay)
        self.policy = CheckpointPolicy(config.batch_size, config.checkpoint_interval_s)
        self.checkpoints: dict[int, PartitionCheckpoint] = {}
        self._cache: dict[int, CustomerState] = {}
        self._dirty: set[int] = set()
        self._swept_wm: dict[int, int] = {}
        self._keys: dict[int, set[int]] = {}  # cached keys by partition, for the expiry sweep
        self._batch = _Batch()
        self._last_commit = 0.0
        self.commits = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self) -> None:
        self.source.open()
        self.sink.open()
        self.state.open()
        self.checkpoints = load_checkpoints(self.sink, self.config.group, self.input_topic)
        n = self.source.partitions(self.input_topic)
        for p in range(n):
            self.checkpoints.setdefault(p, PartitionCheckpoint())
        self._swept_wm = {p: cp.watermark_ms for p, cp in self.checkpoints.items()}
        self._cache.clear()
        self._keys.clear()
        self._dirty.clear()
        self._core = native.new_core(self._native, self.rules) if self._native is not None else None
        self._batch = _Batch()
        self._last_commit = self.monotonic()

    def close(self) -> None:
        self.state.close()
        self.sink.close()
        if self.source is not self.sink:
            self.source.close()

    def __enter__(self) -> Processor:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running ---------------------------------------------------------------------------------
    def run(self, *, until_idle: bool = True, max_events: int | None = None,
            should_stop: Callable[[], bool] = lambda: False, poll_interval_s: float = 0.05,
            sleep: Callable[[float], None] = time.sleep,
            on_progress: Callable[[Progress], None] | None = None, progress_every_s: float = 1.0) -> dict[str, int]:
        """Process until idle (or forever / ``should_stop``); always ends with a checkpoint.

        While it runs, Python's collector uses ``config.gc_thresholds`` (restored afterwards).
        """
        previous = gc.get_threshold()
        if self.config.gc_thresholds is not None:
            gc.set_threshold(*self.config.gc_thresholds)
        try:
            return self._run(until_idle, max_events, should_stop, poll_interval_s, sleep, on_progress,
                             progress_every_s)
        finally:
            gc.set_threshold(*previous)

    def _run(self, until_idle: bool, max_events: int | None, should_stop: Callable[[], bool], poll_interval_s: float,
             sleep: Callable[[float], None], on_progress: Callable[[Progress], None] | None,
             progress_every_s: float) -> dict[str, int]:
        started, done = self.monotonic(), 0
        last_progress = started
        while not should_stop():
            limit = None if max_events is None else max_events - done
            if limit is not None and limit <= 0:
                break
            got = self.poll(limit)
            done += got
            now = self.monotonic()
            if on_progress and now - last_progress >= progress_every_s:
                last_progress = now
                on_progress(self.progress(done / max(now - started, 1e-9)))
            if got == 0:
                self.checkpoint()
                if until_idle:
                    break
                sleep(poll_interval_s)
        self.checkpoint()
        return self.counts()

    def poll(self, limit: int | None = None) -> int:
        """One round over the partitions, checkpointing whenever due; returns events consumed."""
        total = 0
        size = self.config.batch_size
        for p, cp in self.checkpoints.items():
            want = size if limit is None else min(size, limit - total)
            if want <= 0:
                break
            if self.until is not None:
                want = min(want, self.until.get(p, 0) - cp.offset)
                if want <= 0:
                    continue
            rows = self.source.read_values(self.input_topic, p, cp.offset, want)
            if rows:
                self._process_records(rows, p, cp)
                self._consumed(p, cp, rows)
                total += len(rows)
                if self.policy.due(self._batch.events, self.monotonic() - self._last_commit):
                    self.checkpoint()
        if self.policy.due(self._batch.events, self.monotonic() - self._last_commit):
            self.checkpoint()
        return total

    def process_one(self, record: LogRecord) -> None:
        """Process a single record (for tests of one event at a time); call :meth:`checkpoint` after."""
        p = record.partition
        cp = self.checkpoints[p]
        rows = [(record.offset, record.key, record.value)]
        self._process_records(rows, p, cp)
        self._consumed(p, cp, rows)

    def _consumed(self, partition: int, cp: PartitionCheckpoint, rows: Sequence[Row]) -> None:
        """Move the partition's position past ``rows`` (processed) and count them into the pending batch."""
        batch = self._batch
        batch.consumed[partition] = (batch.consumed.get(partition, (rows[0][0],))[0], rows[-1][0] + 1)
        batch.events += len(rows)
        cp.offset = rows[-1][0] + 1

    # -- records ---------------------------------------------------------------------------------
    def _process_records(self, rows: Sequence[Row], partition: int, cp: PartitionCheckpoint) -> None:
        """The per-event hot path, one partition's records in order (loop invariants and counters in
        locals; decoding and eviction are the one definition in ``events`` and ``rules``).

        Tickets and orders are evicted only once the watermark reaches the customer's ``due_ms``; event
        ids before a checkpoint (``rules.forget_seen``). An id in ``seen`` counts as a duplicate only
        while it is within the lateness window, so an entry not forgotten yet changes nothing.
        """
        if self._core is not None:
            self._process_native(rows, partition, cp)
            return
        counts = cp.counts
        cache, handlers, rules, dirty_add = self._cache, self.handlers, self.rules, self._dirty.add
        batch_alerts = self._batch.alerts
        lateness, due_after_ms = self._lateness_ms, self._due_after_ms
        n_in = processed = duplicates = n_alerts = 0
        try:
            for row in rows:
                n_in += 1
                try:
                    event = decode_event(row[2])
                except InvalidEvent as exc:
                    self._dead_letter(partition, row, cp, exc.message, "InvalidEvent", 1, False)
                    continue
                event_id, event_type, key, ts_ms, _ = event
                wm = cp.watermark_ms
                if ts_ms < wm - lateness:
                    self._late(partition, row, cp, event_id, ts_ms)
                    continue
                if ts_ms > wm:
                    cp.watermark_ms = wm = ts_ms
                if not -INT64 <= key < INT64:  # would not fit the state store's key: a poison pill otherwise
                    self._dead_letter(partition, row, cp, f"customer_id {key} is out of the 64-bit range",
                                      "InvalidEvent", 1, False, event_id)
                    continue
                st = cache.get(key)
                if st is None:
                    st = self._state(key, partition)
                if wm >= st.due_ms:
                    evict(st, wm, rules)
                seen = st.seen
                seen_ms = seen.get(event_id)
                if seen_ms is not None and seen_ms >= wm - lateness:
                    duplicates += 1
                    processed += 1
                    continue
                handler = handlers.get(event_type)
                if handler is None:
                    self._dead_letter(partition, row, cp, f"no handler for event_type {event_type!r}", "ConfigError",
                                      1, False, event_id)
                    continue
                try:
                    alerts = handler(event, st, rules)  # fast path: no retry machinery unless it fails
                except Exception as first:
                    result = self._retry(partition, row, cp, handler, event, st, first)
                    if result is None:
                        continue
                    alerts = result
                seen[event_id] = ts_ms
                st.wm_ms = wm
                if ts_ms > st.last_ms:
                    st.last_ms = ts_ms
                if ts_ms + due_after_ms < st.due_ms:  # the handler may have added an item due earlier
                    st.due_ms = ts_ms + due_after_ms
                dirty_add(key)
                processed += 1
                if alerts:
                    n_alerts += len(alerts)
                    offset = row[0]
                    batch_alerts.extend([(a, partition, offset) for a in alerts])
        finally:
            counts["in"] += n_in
            counts["processed"] += processed
            counts["duplicates"] += duplicates
            counts["alerts"] += n_alerts

    def _process_native(self, rows: Sequence[Row], partition: int, cp: PartitionCheckpoint) -> None:
        """The same as the Python loop above, by the compiled core; records it cannot decide (anything
        outside the canonical subset, late events) come back here one at a time."""
        core, counts, rules = self._core, cp.counts, self.rules
        batch_alerts = self._batch.alerts
        rows = rows if isinstance(rows, list) else list(rows)
        i, n = 0, len(rows)
        while i < n:
            i, status, cp.watermark_ms, n_in, processed, duplicates, facts, late = core.run(
                rows, i, partition, cp.watermark_ms, self._load)
            counts["in"] += n_in
            counts["processed"] += processed
            counts["duplicates"] += duplicates
            if facts:
                counts["alerts"] += len(facts)
                batch_alerts.extend([(native.alert_record(f, rules), partition, f[0]) for f in facts])
            if status == native.DONE:
                break
            counts["in"] += 1
            if status == native.LATE:
                self._late(partition, rows[i], cp, *late)
            else:
                self._apply_native(rows[i], partition, cp)
            i += 1

    def _apply_native(self, row: Row, partition: int, cp: PartitionCheckpoint) -> None:
        """One record outside the core's canonical subset: Pydantic decides, the core applies."""
        try:
            event = decode_event(row[2])
        except InvalidEvent as exc:
            self._dead_letter(partition, row, cp, exc.message, "InvalidEvent", 1, False)
            return
        event_id, _, key, ts_ms, p = event
        if not -INT64 <= key < INT64:  # the loop's order: late first, then the watermark, then the key
            if ts_ms < cp.watermark_ms - self._lateness_ms:
                self._late(partition, row, cp, event_id, ts_ms)
                return
            cp.watermark_ms = max(cp.watermark_ms, ts_ms)
            self._dead_letter(partition, row, cp, f"customer_id {key} is out of the 64-bit range",
                              "InvalidEvent", 1, False, event_id)
            return
        # a refund's alert depends on nothing the core holds: the rule words it here, from the decoded
        # payload (its order id may exceed 64 bits), and the core does the bookkeeping
        kind, number = ((native.TICKET, p.priority == "high") if isinstance(p, TicketPayload)
                        else (native.REFUND, 0) if isinstance(p, RefundPayload) else (native.ORDER, p.cents))
        status, cp.watermark_ms, facts = self._core.apply(partition, cp.watermark_ms, row[0], event_id, key, ts_ms,
                                                          kind, number, self._load)
        if status == native.LATE:
            self._late(partition, row, cp, event_id, ts_ms)
            return
        cp.counts["processed"] += 1
        cp.counts["duplicates"] += status == native.DUPLICATE
        alerts = [(native.alert_record(f, self.rules), partition, f[0]) for f in facts]
        if kind == native.REFUND and status == native.PROCESSED:
            alerts += [(a, partition, row[0]) for a in large_refund(event, self.rules)]
        cp.counts["alerts"] += len(alerts)
        self._batch.alerts.extend(alerts)

    def _load(self, key: int) -> bytes | None:
        """A customer's stored state for the core, in the format it reads (older formats converted)."""
        raw = self.state.get(key)
        if raw is not None and raw[:1] != STATE_FORMAT:
            raw = CustomerState.decode(raw).encode()
        return raw

    def _retry(self, partition: int, row: Row, cp: PartitionCheckpoint, handler: Handler, event: Event,
               st: CustomerState, first: Exception) -> list[AlertRecord] | None:
        """After a first failure: retry per the policy; dead-letter (returning None) when it gives up."""
        failures: list[Exception] = [first]
        already = [first]  # attempt 1 has happened: hand its outcome to the policy first

        def attempt() -> list[AlertRecord]:
            if already:
                raise already.pop()
            try:
                return handler(event, st, self.rules)
            except Exception as exc:
                failures.append(exc)
                raise

        try:
            alerts, _ = self.retrier.call(attempt)
        except Exception as exc:
            final = exc.__cause__ if isinstance(exc, RetriesExhausted) and exc.__cause__ else exc
            self._errors(partition, row, event.event_id, failures, dead=True)
            self._dead_letter(partition, row, cp, f"{type(final).__name__}: {final}", type(final).__name__,
                              len(failures), isinstance(exc, RetriesExhausted), event.event_id)
            return None
        self._errors(partition, row, event.event_id, failures, dead=False)
        return alerts

    def _state(self, key: int, partition: int) -> CustomerState:
        st = self._cache.get(key)
        if st is None:
            raw = self.state.get(key)
            st = CustomerState.decode(raw) if raw is not None else CustomerState(partition)
            self._cache[key] = st
            self._keys.setdefault(st.partition, set()).add(key)
        return st

    def _dead_letter(self, partition: int, row: Row, cp: PartitionCheckpoint, reason: str, error_type: str,
                     attempts: int, retryable: bool, event_id: str | None = None) -> None:
        cp.counts["dead_lettered"] += 1
        offset, key, value = row
        letter = DeadLetter(
            letter_id=f"{self.input_topic}:{partition}:{offset}", source=self.input_topic, reason=reason,
            error_type=error_type, payload=value, attempts=attempts,
            failed_at=_iso(int(self.clock() * 1000)), retryable=retryable, key=key,
            event_id=event_id or _event_id_of(value))
        self._batch.dead.append(Record(key, letter.to_json()))

    def _late(self, partition: int, row: Row, cp: PartitionCheckpoint, event_id: str, ts_ms: int) -> None:
        cp.counts["late"] += 1
        lateness = self.rules.allowed_lateness_s
        offset, key, payload = row
        value = {
            "event_id": event_id, "source": f"{self.input_topic}:{partition}:{offset}",
            "reason": f"event time {_iso(ts_ms)} is more than {lateness}s behind the partition watermark "
                      f"{_iso(cp.watermark_ms)}",
            "event_timestamp": _iso(ts_ms), "watermark": _iso(cp.watermark_ms), "allowed_lateness_s": lateness,
            "payload": payload,
        }
        self._batch.late.append(Record(key, json.dumps(value, separators=(",", ":"))))

    def _errors(self, partition: int, row: Row, event_id: str, failures: list[Exception], *, dead: bool) -> None:
        offset, key, _ = row
        for i, exc in enumerate(failures, start=1):
            outcome = "dead_lettered" if dead and i == len(failures) else "retried"
            value = {"event_id": event_id, "source": f"{self.input_topic}:{partition}:{offset}", "attempt": i,
                     "error_type": type(exc).__name__, "message": str(exc),
                     "retryable": bool(getattr(exc, "retryable", False)), "outcome": outcome,
                     "at": _iso(int(self.clock() * 1000))}
            self._batch.errors.append(Record(key, json.dumps(value, separators=(",", ":"))))

    # -- checkpoint ------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Commit outputs, dirty state, expirations and input positions in one transaction."""
        batch = self._batch
        if batch.events == 0 and not self._dirty:
            self._last_commit = self.monotonic()
            return
        cache, horizon, rules = self._cache, self._horizon_ms, self.rules
        items: list[StateItem] = []
        if self._core is not None:
            items = self._core.changes(horizon)  # (key, partition, value, expires_ms) tuples
        for key in self._dirty:
            st = cache[key]
            forget_seen(st, st.wm_ms, rules)
            items.append(StateItem(key, st.partition, st.encode(), st.last_ms + horizon))
        sweep = [p for p, cp in self.checkpoints.items()
                 if cp.watermark_ms - self._swept_wm.get(p, cp.watermark_ms) >= SWEEP_EVERY_MS]
        with self.sink.transaction() as tx:
            if batch.alerts:
                tx.append(CUSTOMER_ALERTS, [Record(str(a.customer_id), encode_alert(a).decode())
                                            for a, _, _ in batch.alerts])
            if batch.dead:
                tx.append(DEAD_LETTERS, batch.dead)
            if batch.late:
                tx.append(LATE_EVENTS, batch.late)
            if batch.errors:
                tx.append(PROCESSING_ERRORS, batch.errors)
            self.state.put(items)
            for p in sweep:
                self.state.delete_expired(p, self.checkpoints[p].watermark_ms)
            tx.commit_offsets(self.config.group, self.input_topic,
                              {p: cp.to_committed() for p, cp in self.checkpoints.items()})
        self._dirty.clear()
        if self._core is not None:
            self._core.committed()
        if sweep:
            self._forget_expired(sweep)
        self.commits += 1
        self._last_commit = self.monotonic()
        self._batch = _Batch()
        if self.on_commit:
            self.on_commit(CommittedBatch(batch.events, batch.alerts, self.clock(), batch.consumed))

    def _forget_expired(self, partitions: list[int]) -> None:
        """Drop cached customers whose whole state expired (the store dropped them in the same commit)."""
        for p in partitions:
            wm = self.checkpoints[p].watermark_ms
            if self._core is not None:
                self._core.forget_expired(p, wm - self._horizon_ms)
                self._swept_wm[p] = wm
                continue
            keys = self._keys.get(p, set())
            cache, last_before = self._cache, wm - self._horizon_ms
            gone = [k for k in keys if cache[k].last_ms < last_before]
            for k in gone:
                del self._cache[k]
            keys.difference_update(gone)
            self._swept_wm[p] = wm

    # -- figures ---------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return totals(self.checkpoints)

    def lag(self) -> int:
        ends = getattr(self.source, "end_offsets", None)
        if ends is None:
            return 0
        end = ends(self.input_topic)
        return sum(max(0, end[p][1] - cp.offset) for p, cp in self.checkpoints.items() if p in end)

    def progress(self, events_per_s: float) -> Progress:
        return Progress(self.counts(), events_per_s, self.lag(), self.commits)

    @property
    def engine(self) -> str:
        """``native`` (the compiled core runs the per-event work) or ``python`` (its reference)."""
        return "python" if self._native is None else "native"

    def cached_state_items(self) -> int:
        """Items held in memory: the bounded-state figure."""
        if self._core is not None:
            return self._core.state_items()
        return sum(st.size() for st in self._cache.values())


def sqlite_processor(log: SqliteLog, config: StreamConfig, **kwargs: Any) -> Processor:
    """The embedded wiring: one SQLite file holds input, outputs, offsets and state."""
    return Processor(log, log, SqliteStateStore(log, config.group), config, **kwargs)
