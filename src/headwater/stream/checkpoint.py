"""Checkpoints: where the processor is, per input partition, stored *as* the consumer group's offsets.

Each partition's committed position carries, in its metadata string, the partition's event-time
watermark and cumulative counts. Because offsets, outputs and state are committed in one
transaction, a restart from this checkpoint sees exactly the state that produced the outputs so far.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from headwater.errors import StorageError
from headwater.stream.log import Committed, EventLog

COUNT_NAMES = ("in", "processed", "dead_lettered", "late", "duplicates", "alerts")
NO_WATERMARK = -(2**62)


@dataclass
class PartitionCheckpoint:
    """Next offset to read, the event-time watermark (max accepted timestamp, ms) and counts so far."""

    offset: int = 0
    watermark_ms: int = NO_WATERMARK
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_NAMES, 0))

    def to_committed(self) -> Committed:
        return Committed(self.offset, json.dumps({"wm": self.watermark_ms, "counts": self.counts},
                                                 separators=(",", ":")))

    @classmethod
    def from_committed(cls, c: Committed) -> PartitionCheckpoint:
        try:
            meta = json.loads(c.metadata) if c.metadata else {}
        except json.JSONDecodeError as exc:
            raise StorageError(f"corrupt checkpoint metadata at offset {c.offset}: {exc}") from exc
        counts = dict.fromkeys(COUNT_NAMES, 0) | meta.get("counts", {})
        return cls(c.offset, meta.get("wm", NO_WATERMARK), counts)


def load_checkpoints(log: EventLog, group: str, topic: str) -> dict[int, PartitionCheckpoint]:
    """The group's checkpoint for every partition of ``topic`` (fresh ones where none committed)."""
    committed = log.committed(group, topic)
    return {p: PartitionCheckpoint.from_committed(committed[p]) if p in committed else PartitionCheckpoint()
            for p in range(log.partitions(topic))}


def totals(checkpoints: Mapping[int, PartitionCheckpoint]) -> dict[str, int]:
    """Counts summed over partitions."""
    out = dict.fromkeys(COUNT_NAMES, 0)
    for cp in checkpoints.values():
        for k, v in cp.counts.items():
            out[k] = out.get(k, 0) + v
    return out


@dataclass
class CheckpointPolicy:
    """Commit after ``batch_size`` events or ``interval_s`` seconds with pending work, whichever first."""

    batch_size: int
    interval_s: float

    def due(self, pending: int, seconds_since_last: float) -> bool:
        return pending >= self.batch_size or (pending > 0 and seconds_since_last >= self.interval_s)
