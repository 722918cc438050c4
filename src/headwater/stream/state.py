"""Keyed state: per customer, only what the rules need, evicted by event time so it stays bounded.

A customer's state holds the tickets of the last 30 days (plus allowed lateness), the orders of the
VIP look-back window, and the event ids seen within the lateness window (to drop producer
duplicates). Anything older than the partition's watermark can no longer matter and is evicted; a
customer whose every item expired is deleted outright. So the state size is bounded by the number of
customers active in the longest window, however long the stream runs.

Values are opaque bytes to the store (the processor encodes them). Writes are *staged in the
log's transaction*: the SQLite store shares the log's connection, so state, outputs and input
offsets commit atomically (Kafka: a changelog topic written in the same producer transaction).
"""

from __future__ import annotations

import json
import marshal
import sqlite3
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from headwater.errors import StorageError
from headwater.stream.sqlite_log import SqliteLog, translate

STATE_FORMAT_LISTS = b"\x01"  # marshal v4 of plain lists/dicts/ints/strs/bools (read only, older files)
STATE_FORMAT = b"\x02"  # as 1, but the orders are two little-endian int64 columns (ts_ms, cents) as bytes
_SWAP = sys.byteorder != "little"


def _column(raw: bytes) -> array:
    col = array("q")
    col.frombytes(raw)
    if _SWAP:
        col.byteswap()
    return col


def _raw(col: array) -> bytes:
    if _SWAP:
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

    def encode(self) -> bytes:
        """Versioned binary encoding (marshal of plain lists + raw int64 columns: fast on the hot path)."""
        return STATE_FORMAT + marshal.dumps((self.partition, self.tickets, _raw(self.orders_ts),
                                             _raw(self.orders_cents), self.seen, self.tail_cond, self.tail_alerted,
                                             self.last_ms), 4)

    @classmethod
    def decode(cls, blob: bytes) -> CustomerState:
        fmt = blob[:1]
        if fmt == STATE_FORMAT:
            p, tickets, ots, ocents, seen, tc, ta, last = marshal.loads(blob[1:])
            return cls(p, tickets, _column(ots), _column(ocents), seen, tc, ta, last)
        if fmt == STATE_FORMAT_LISTS:
            p, tickets, orders, seen, tc, ta, last = marshal.loads(blob[1:])
            return cls(p, tickets, array("q", [o[0] for o in orders]), array("q", [o[1] for o in orders]), seen,
                       tc, ta, last)
        raise StorageError(f"unknown state format {fmt!r}: written by a newer Headwater?")

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


@dataclass(frozen=True, slots=True)
class StateItem:
    """A staged change: ``value`` None deletes the key; ``expires_ms`` drives the bulk sweep."""

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
    """CREATE TABLE IF NOT EXISTS stream_state (
        namespace TEXT NOT NULL, key INTEGER NOT NULL, partition INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL, value BLOB NOT NULL,
        PRIMARY KEY (namespace, key)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS stream_state_expiry ON stream_state (namespace, partition, expires_ms)",
)


class SqliteStateStore:
    """:class:`StateStore` in the log's own SQLite file, on the log's connection (atomic commits)."""

    def __init__(self, log: SqliteLog, namespace: str) -> None:
        self.log = log
        self.namespace = namespace

    def open(self) -> None:
        self.log.open()
        try:
            for stmt in _STATE_SCHEMA:
                self.log.connection.execute(stmt)
        except sqlite3.Error as exc:
            raise translate(exc, "create state tables", self.log.path) from exc

    def close(self) -> None:
        """The connection belongs to the log; nothing to release here."""

    def get(self, key: int) -> bytes | None:
        try:
            row = self.log.connection.execute(
                "SELECT value FROM stream_state WHERE namespace = ? AND key = ?", (self.namespace, key)).fetchone()
        except sqlite3.Error as exc:
            raise translate(exc, "read state", self.log.path) from exc
        return None if row is None else row[0]

    def put(self, items: Sequence[StateItem]) -> None:
        ns = self.namespace
        upserts = [(ns, i.key, i.partition, i.expires_ms, i.value) for i in items if i.value is not None]
        deletes = [(ns, i.key) for i in items if i.value is None]
        try:
            conn = self.log.connection
            if upserts:
                conn.executemany(
                    "INSERT INTO stream_state (namespace, key, partition, expires_ms, value) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (namespace, key) DO UPDATE SET partition = excluded.partition, "
                    "expires_ms = excluded.expires_ms, value = excluded.value", upserts)
            if deletes:
                conn.executemany("DELETE FROM stream_state WHERE namespace = ? AND key = ?", deletes)
        except sqlite3.Error as exc:
            raise translate(exc, "write state", self.log.path) from exc

    def delete_expired(self, partition: int, watermark_ms: int) -> int:
        try:
            cur = self.log.connection.execute(
                "DELETE FROM stream_state WHERE namespace = ? AND partition = ? AND expires_ms < ?",
                (self.namespace, partition, watermark_ms))
        except sqlite3.Error as exc:
            raise translate(exc, "expire state", self.log.path) from exc
        return cur.rowcount

    def stats(self) -> tuple[int, int]:
        """(keys, total bytes of values): for the bounded-state test and the CLI."""
        try:
            row = self.log.connection.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM stream_state WHERE namespace = ?",
                (self.namespace,)).fetchone()
        except sqlite3.Error as exc:
            raise translate(exc, "read state", self.log.path) from exc
        return row[0], row[1]
