"""Keyed state: per customer, only what the rules need, evicted by event time so it stays bounded.

A customer's state holds the tickets of the last 30 days (plus allowed lateness), the orders of the
VIP look-back window, and the event ids seen within the lateness window (to drop producer
duplicates). Anything older than the partition's watermark can no longer matter and is evicted; a
customer whose every item expired is deleted outright. So the state size is bounded by the number of
customers active in the longest window, however long the stream runs.

Values are opaque bytes to the store (the processor encodes them). Writes are *staged in the
log's transaction*: the SQLite store shares the log's connection, so state, outputs and input
offsets commit atomically. The SQLite store is a changelog (one appended row of changes per
checkpoint, compacted by snapshots), as a Kafka changelog topic written in the same producer
transaction would be.
"""

from __future__ import annotations

import heapq
import json
import marshal
import sqlite3
import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from headwater.errors import StorageError
from headwater.stream.sqlite_log import SqliteLog, translate

STATE_FORMAT_LISTS = b"\x01"  # marshal v4 of plain lists/dicts/ints/strs/bools (read only, older files)
STATE_FORMAT_MARSHAL = b"\x02"  # as 1, but the orders as two int64 columns (read only, older files)
# Written: little-endian, the same bytes from this module and from the compiled core (headwater_core):
#   partition i64, flags u8 (1 tail_cond, 2 tail_alerted), last_ms i64,
#   tickets u32 + each (ts i64, flags u8 (1 high, 2 cond, 4 risk, 8 vip), utf-8 event id u32 + bytes),
#   orders u32 + their ts as n i64 + their cents as n i64, seen u32 + each (ts i64, event id u32 + bytes),
#   seen sorted by event id (so the bytes depend only on the state, not on the order events came in).
STATE_FORMAT = b"\x03"
_SWAP = sys.byteorder != "little"
_HEAD = struct.Struct("<qBqI")
_TICKET = struct.Struct("<qBI")
_SEEN = struct.Struct("<qI")
_COUNT = struct.Struct("<I")


def _column(raw: bytes) -> array:
    col = array("q")
    col.frombytes(raw)
    if _SWAP:
        col.byteswap()
    return col


def _le(col: array) -> bytes:
    """The little-endian bytes of an int64 column."""
    if not _SWAP:
        return col.tobytes()
    col = array("q", col)
    col.byteswap()
    return col.tobytes()


# Ticket fields, kept as small lists for cheap (de)serialisation: [ts_ms, event_id, high, cond, risk, vip]
TS, EID, HIGH, COND, RISK, VIP = range(6)


@dataclass(slots=True)
class CustomerState:
    """What the rules remember about one customer (all times are event times in epoch ms).

    ``tickets`` are sorted by (ts, event_id); each carries whether the at-risk condition held at it
    (``cond``), whether it triggered an at-risk alert (``risk``) and a VIP escalation (``vip``).
    ``tail_cond`` / ``tail_alerted`` summarise the episode of the last evicted ticket. The orders, the
    bulk of the state (90 days of them), are two parallel int64 arrays sorted by time: appending is
    cheap and encoding them at a checkpoint is a copy of their bytes, not a walk over objects.
    """

    partition: int
    tickets: list[list] = field(default_factory=list)
    orders_ts: array = field(default_factory=lambda: array("q"))  # order event times (ms), sorted
    orders_cents: array = field(default_factory=lambda: array("q"))  # amount of the order at the same index
    seen: dict[str, int] = field(default_factory=dict)  # event_id -> ts_ms, within lateness
    tail_cond: bool = False
    tail_alerted: bool = False
    last_ms: int = 0  # latest event time of this customer
    # Not stored: a watermark below which eviction has nothing to drop from tickets or orders (a lower
    # bound, so 0 is always safe: the processor calls ``rules.evict`` once the watermark reaches it), and
    # the partition watermark at this customer's latest event (``seen`` is evicted at it before a checkpoint).
    due_ms: int = 0
    wm_ms: int = 0

    def encode(self) -> bytes:
        """Format 3 (see ``STATE_FORMAT``): what the compiled core writes, byte for byte."""
        parts = [STATE_FORMAT, _HEAD.pack(self.partition, self.tail_cond | self.tail_alerted << 1, self.last_ms,
                                          len(self.tickets))]
        for ts, eid, high, cond, risk, vip in self.tickets:
            raw = eid.encode()
            parts += (_TICKET.pack(ts, high | cond << 1 | risk << 2 | vip << 3, len(raw)), raw)
        parts += (_COUNT.pack(len(self.orders_ts)), _le(self.orders_ts), _le(self.orders_cents),
                  _COUNT.pack(len(self.seen)))
        for eid, ts in sorted(self.seen.items()):
            raw = eid.encode()
            parts += (_SEEN.pack(ts, len(raw)), raw)
        return b"".join(parts)

    @classmethod
    def decode(cls, blob: bytes) -> CustomerState:
        fmt = blob[:1]
        if fmt == STATE_FORMAT:
            return cls._decode3(blob)
        if fmt == STATE_FORMAT_MARSHAL:
            p, tickets, ots, ocents, seen, tc, ta, last = marshal.loads(blob[1:])
            return cls(p, tickets, _column(ots), _column(ocents), seen, tc, ta, last)
        if fmt == STATE_FORMAT_LISTS:
            p, tickets, orders, seen, tc, ta, last = marshal.loads(blob[1:])
            return cls(p, tickets, array("q", [o[0] for o in orders]), array("q", [o[1] for o in orders]), seen,
                       tc, ta, last)
        raise StorageError(f"unknown state format {fmt!r}: written by a newer Headwater?")

    @classmethod
    def _decode3(cls, blob: bytes) -> CustomerState:
        try:
            partition, flags, last_ms, n = _HEAD.unpack_from(blob, 1)
            pos = 1 + _HEAD.size
            tickets = []
            for _ in range(n):
                ts, f, size = _TICKET.unpack_from(blob, pos)
                pos += _TICKET.size
                tickets.append([ts, blob[pos:pos + size].decode(), bool(f & 1), bool(f & 2), bool(f & 4),
                                bool(f & 8)])
                pos += size
            (n,) = _COUNT.unpack_from(blob, pos)
            pos += _COUNT.size
            ots, cents = _column(blob[pos:pos + 8 * n]), _column(blob[pos + 8 * n:pos + 16 * n])
            pos += 16 * n
            (n,) = _COUNT.unpack_from(blob, pos)
            pos += _COUNT.size
            seen = {}
            for _ in range(n):
                ts, size = _SEEN.unpack_from(blob, pos)
                pos += _SEEN.size
                seen[blob[pos:pos + size].decode()] = ts
                pos += size
        except (struct.error, UnicodeDecodeError) as exc:
            raise StorageError(f"corrupt state blob: {exc}") from exc
        if pos != len(blob) or len(ots) != len(cents):
            raise StorageError(f"corrupt state blob: {len(blob) - pos} bytes left over or truncated")
        return cls(partition, tickets, ots, cents, seen, bool(flags & 1), bool(flags & 2), last_ms)

    def orders(self) -> list[list[int]]:
        """The orders as ``[ts_ms, cents]`` pairs (readable form)."""
        return [[t, c] for t, c in zip(self.orders_ts, self.orders_cents, strict=True)]

    def to_json(self) -> str:
        """Readable form, for inspection and tests."""
        return json.dumps([self.partition, self.tickets, self.orders(), self.seen, self.tail_cond,
                           self.tail_alerted, self.last_ms], separators=(",", ":"))

    def size(self) -> int:
        """Items held: what 'bounded state' is measured in."""
        return len(self.tickets) + len(self.orders_ts) + len(self.seen)


class StateItem(NamedTuple):
    """A staged change: ``value`` None deletes the key; ``expires_ms`` drives the bulk sweep.

    A NamedTuple: one is built per changed key per checkpoint, and it is the cheapest record.
    """

    key: int
    partition: int
    value: bytes | None
    expires_ms: int = 0


class StateStore(Protocol):
    """Durable keyed state for one processor (``namespace``); writes join the log's transaction."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def get(self, key: int) -> bytes | None: ...

    def put(self, items: Sequence[StateItem]) -> None:
        """Stage writes/deletes inside the current log transaction."""
        ...

    def delete_expired(self, partition: int, watermark_ms: int) -> int:
        """Drop keys of ``partition`` whose every item expired before ``watermark_ms``."""
        ...


_STATE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS stream_state_log (
        seq INTEGER PRIMARY KEY, namespace TEXT NOT NULL, segment INTEGER, changes BLOB NOT NULL)""",
)
SEGMENTS = 16  # the live map is snapshotted one key segment (key % SEGMENTS) at a time
COMPACT_RATIO = 4  # every segment is snapshotted again once the changes reach 4x the live state ...
COMPACT_MIN_BYTES = 4 << 20  # ... and at least 4 MiB

Entry = tuple[int, int, bytes]  # (partition, expires_ms, value)


class SqliteStateStore:
    """:class:`StateStore` in the log's own SQLite file, on the log's connection (atomic commits).

    A changelog, as Kafka Streams keeps state: each :meth:`put` appends *one* row holding every
    change of the checkpoint (``marshal`` of ``(key, partition, expires_ms, value | None)`` tuples),
    instead of rewriting one B-tree row (and its 4 KiB page) per changed key. :meth:`open` restores
    the live map by replaying the rows in order and serves :meth:`get` from memory (the state is
    bounded by eviction, see the module docstring).

    Compaction is rolling, so that no commit stalls on a snapshot of everything: each time the
    changes since the last step reach 1/``SEGMENTS`` of ``COMPACT_RATIO`` times the live bytes, a
    write also appends a snapshot of one key segment (the one snapshotted longest ago; replaying it
    replaces that segment), then deletes the rows older than every segment's latest snapshot, all
    in the same transaction.

    The map runs ahead of the database inside a transaction: after a failed commit, :meth:`open`
    it again (as :meth:`Processor.open` does: the processor's own cache is ahead too). State written
    before the changelog (the ``stream_state`` table, one row per key, formats 1 and 2) is read at
    open and moved into segment snapshots by the first write.
    """

    def __init__(self, log: SqliteLog, namespace: str, *, compact_min_bytes: int = COMPACT_MIN_BYTES) -> None:
        self.log = log
        self.namespace = namespace
        self.compact_min_bytes = compact_min_bytes
        self._live: dict[int, Entry] = {}
        self._expiry: dict[int, list[tuple[int, int]]] = {}  # partition -> heap of (expires_ms, key), lazy
        self._segment_keys: list[set[int]] = [set() for _ in range(SEGMENTS)]  # live keys by key % SEGMENTS
        self._heap_entries = 0
        self._live_bytes = 0
        self._since_step = 0  # change bytes appended since the last segment snapshot
        self._snapshot_seq: dict[int, int] = {}  # segment -> seq of its latest snapshot
        self._legacy = False

    def open(self) -> None:
        self.log.open()
        try:
            for stmt in _STATE_SCHEMA:
                self.log.connection.execute(stmt)
        except sqlite3.Error as exc:
            raise translate(exc, "create state tables", self.log.path) from exc
        self._restore()

    def close(self) -> None:
        """The connection belongs to the log; nothing to release here."""

    # -- reading -----------------------------------------------------------------------------------
    def _rows(self, sql: str, params: tuple, action: str) -> list[tuple]:
        try:
            return self.log.connection.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise translate(exc, action, self.log.path) from exc

    def _restore(self) -> None:
        """Rebuild the live map from disk: replay the changelog in order (or read the legacy table)."""
        ns = self.namespace
        rows = self._rows("SELECT seq, segment, changes FROM stream_state_log WHERE namespace = ? ORDER BY seq",
                          (ns,), "read state")
        live: dict[int, Entry] = {}
        since, snapshot_seq = 0, {}
        for seq, segment, blob in rows:
            if segment is None:
                since += len(blob)
            else:  # a segment snapshot replaces everything known about that segment
                since = 0
                snapshot_seq[segment] = seq
                for key in [k for k in live if k % SEGMENTS == segment]:
                    del live[key]
            for key, partition, expires, value in marshal.loads(blob):
                if value is None:
                    live.pop(key, None)
                else:
                    live[key] = (partition, expires, value)
        self._legacy = not rows and self._has_legacy_table()
        if self._legacy:
            live = {key: (p, e, v) for key, p, e, v in self._rows(
                "SELECT key, partition, expires_ms, value FROM stream_state WHERE namespace = ?", (ns,),
                "read state")}
        self._live = live
        self._live_bytes = sum(len(v) for _, _, v in live.values())
        self._since_step = since
        self._snapshot_seq = snapshot_seq
        self._index()

    def _index(self) -> None:
        """One heap of (expires_ms, key) per partition (stale entries are skipped or re-queued when popped),
        and the live keys of each segment (what a segment snapshot writes)."""
        heaps: dict[int, list[tuple[int, int]]] = {}
        for key, (p, e, _) in self._live.items():
            heaps.setdefault(p, []).append((e, key))
        for heap in heaps.values():
            heapq.heapify(heap)
        self._expiry = heaps
        self._heap_entries = len(self._live)
        segment_keys: list[set[int]] = [set() for _ in range(SEGMENTS)]
        for key in self._live:
            segment_keys[key % SEGMENTS].add(key)
        self._segment_keys = segment_keys

    def _has_legacy_table(self) -> bool:
        return bool(self._rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stream_state'", (),
                               "read state"))

    def get(self, key: int) -> bytes | None:
        entry = self._live.get(key)
        return None if entry is None else entry[2]

    def items(self) -> list[tuple[int, int, int, bytes]]:
        """Every live ``(key, partition, expires_ms, value)`` (for inspection and tests)."""
        return [(k, p, e, v) for k, (p, e, v) in sorted(self._live.items())]

    def stats(self) -> tuple[int, int]:
        """(keys, total bytes of values) as committed: for the bounded-state test and the CLI."""
        committed = SqliteStateStore(self.log, self.namespace)
        committed._restore()
        return len(committed._live), committed._live_bytes

    # -- writing -----------------------------------------------------------------------------------
    def put(self, items: Sequence[StateItem]) -> None:
        changes = []
        live, live_bytes = self._live, self._live_bytes
        expiry, pushed = self._expiry, 0
        segment_keys = self._segment_keys
        for key, partition, value, expires in items:
            old = live.get(key)
            if old is not None:
                live_bytes -= len(old[2])
            if value is None:
                if old is None:
                    continue
                del live[key]
                segment_keys[key % SEGMENTS].discard(key)
            else:
                live[key] = (partition, expires, value)
                live_bytes += len(value)
                if old is None:
                    segment_keys[key % SEGMENTS].add(key)
                # An expiry that only moves later needs no new heap entry: ``delete_expired`` re-queues
                # the key when it pops the old one (one push per key per horizon, not per checkpoint).
                if old is None or old[0] != partition or expires < old[1]:
                    heap = expiry.get(partition)
                    if heap is None:
                        heap = expiry[partition] = []
                    heapq.heappush(heap, (expires, key))
                    pushed += 1
            changes.append((key, partition, expires, value))
        self._heap_entries += pushed
        self._live_bytes = live_bytes
        if self._heap_entries > 4 * len(live) + 4096:  # mostly stale entries: rebuild
            self._index()
        self._append(changes)

    def delete_expired(self, partition: int, watermark_ms: int) -> int:
        heap = self._expiry.get(partition, [])
        live = self._live
        changes = []
        segment_keys = self._segment_keys
        while heap and heap[0][0] < watermark_ms:
            expires, key = heapq.heappop(heap)
            self._heap_entries -= 1
            entry = live.get(key)
            if entry is None or entry[0] != partition or entry[1] < expires:  # a stale heap entry
                continue
            if entry[1] > expires:  # the key's expiry moved later since this entry: queue it again
                heapq.heappush(heap, (entry[1], key))
                self._heap_entries += 1
                continue
            del live[key]
            segment_keys[key % SEGMENTS].discard(key)
            self._live_bytes -= len(entry[2])
            changes.append((key, partition, expires, None))
        self._append(changes)
        return len(changes)

    def _append(self, changes: list[tuple[int, int, int, bytes | None]]) -> None:
        """Stage one change row; then a compaction step if due (or every segment, to migrate)."""
        if not changes and not self._legacy:
            return
        conn = self.log.connection
        try:
            if changes:
                blob = marshal.dumps(changes, 4)
                conn.execute("INSERT INTO stream_state_log (namespace, segment, changes) VALUES (?, NULL, ?)",
                             (self.namespace, blob))
                self._since_step += len(blob)
            if self._legacy:
                for segment in range(SEGMENTS):
                    self._snapshot(conn, segment)
                conn.execute("DELETE FROM stream_state WHERE namespace = ?", (self.namespace,))
                self._legacy = False
            elif self._since_step * SEGMENTS > max(self.compact_min_bytes, COMPACT_RATIO * self._live_bytes):
                self._snapshot(conn, min(range(SEGMENTS), key=lambda s: self._snapshot_seq.get(s, -1)))
        except sqlite3.Error as exc:
            raise translate(exc, "write state", self.log.path) from exc

    def _snapshot(self, conn: sqlite3.Connection, segment: int) -> None:
        """Append a snapshot of one key segment; drop rows that every segment's snapshot supersedes."""
        live = self._live
        entries = [(k, *live[k]) for k in self._segment_keys[segment]]
        cur = conn.execute("INSERT INTO stream_state_log (namespace, segment, changes) VALUES (?, ?, ?)",
                           (self.namespace, segment, marshal.dumps(entries, 4)))
        self._snapshot_seq[segment] = cur.lastrowid
        self._since_step = 0
        if len(self._snapshot_seq) == SEGMENTS:
            conn.execute("DELETE FROM stream_state_log WHERE namespace = ? AND seq < ?",
                         (self.namespace, min(self._snapshot_seq.values())))
