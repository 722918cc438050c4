"""The event-log seam: what the processor needs from a log, so Kafka can replace SQLite later.

The model is Kafka's: a *topic* has a fixed number of *partitions*; a record is routed to a
partition by a stable hash of its key, so all events of one customer stay in order in one
partition; each partition is an append-only sequence numbered by *offset*; a *consumer group*
remembers, per partition, the next offset to read (plus a small metadata string, as Kafka does).

Exactly-once effects come from :meth:`EventLog.transaction`: output records and the group's
offsets are committed together, or not at all (Kafka: a transactional producer with
``send_offsets_to_transaction``; SQLite: one database transaction).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from headwater.errors import ConfigError

CUSTOMER_EVENTS = "customer_events"
CUSTOMER_ALERTS = "customer_alerts"
PROCESSING_ERRORS = "processing_errors"
DEAD_LETTERS = "customer_events_dlq"
LATE_EVENTS = "customer_events_late"
STANDARD_TOPICS = (CUSTOMER_EVENTS, CUSTOMER_ALERTS, PROCESSING_ERRORS, DEAD_LETTERS, LATE_EVENTS)


@dataclass(frozen=True, slots=True)
class Record:
    """A record to append: ``key`` picks the partition (None: partition 0); ``value`` is opaque text."""

    key: str | None
    value: str


class LogRecord(NamedTuple):
    """A stored record with its position and the wall-clock time (ms) it was appended.

    A NamedTuple rather than a dataclass: the processor builds one per event, and this is cheaper.
    """

    topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    appended_ms: int


@dataclass(frozen=True, slots=True)
class Committed:
    """A consumer group's position in one partition: the next offset to read, plus metadata."""

    offset: int
    metadata: str = ""


def partition_for(key: str | None, partitions: int) -> int:
    """Stable key -> partition routing (CRC32, identical in every process and on every run)."""
    if key is None or partitions == 1:
        return 0
    return zlib.crc32(key.encode()) % partitions


def validate_topic_name(topic: str) -> str:
    """Topic names follow Kafka's rule (letters, digits, ``._-``), so a topic can move to Kafka."""
    if not topic or len(topic) > 249 or not all(c.isalnum() or c in "._-" for c in topic):
        raise ConfigError(f"invalid topic name {topic!r}: use letters, digits, '.', '_' or '-'")
    return topic


class LogTransaction(Protocol):
    """Writes that become visible together when the transaction commits."""

    def append(self, topic: str, records: Sequence[Record]) -> list[tuple[int, int]]:
        """Stage records; returns their (partition, offset)."""
        ...

    def commit_offsets(self, group: str, topic: str, positions: Mapping[int, Committed]) -> None:
        """Stage the group's next offsets for ``topic`` (partition -> position)."""
        ...


@runtime_checkable
class EventLog(Protocol):
    """A partitioned, durable, append-only log with consumer groups (SQLite now, Kafka later)."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def partitions(self, topic: str) -> int:
        """Number of partitions of ``topic`` (created on first use with the log's default)."""
        ...

    def read(self, topic: str, partition: int, offset: int, limit: int) -> list[LogRecord]:
        """Up to ``limit`` records of one partition from ``offset`` on, in offset order."""
        ...

    def read_values(self, topic: str, partition: int, offset: int, limit: int) -> list[tuple[int, str | None, str]]:
        """``(offset, key, value)`` of the same records as :meth:`read`: the processor's hot path, which
        knows topic and partition and needs no append time (a third less reading per event on SQLite)."""
        ...

    def committed(self, group: str, topic: str) -> dict[int, Committed]:
        """The group's committed positions for ``topic`` (partitions never committed are absent)."""
        ...

    def transaction(self) -> AbstractContextManager[LogTransaction]:
        """Appends and offset commits that commit atomically on normal exit, roll back on error."""
        ...


def append(log: EventLog, topic: str, records: Sequence[Record]) -> list[tuple[int, int]]:
    """Append ``records`` to ``topic`` in one transaction (a plain producer send)."""
    with log.transaction() as tx:
        return tx.append(topic, records)


def iter_topic(log: EventLog, topic: str, *, start: Mapping[int, int] | None = None,
               batch: int = 1000) -> Iterator[LogRecord]:
    """Every record of ``topic`` from ``start`` (default: the beginning), partition by partition."""
    for partition in range(log.partitions(topic)):
        offset = (start or {}).get(partition, 0)
        while True:
            chunk = log.read(topic, partition, offset, batch)
            if not chunk:
                break
            yield from chunk
            offset = chunk[-1].offset + 1
