"""Dead letters: a record we could not process, kept aside with why, so nothing is lost silently.

A :class:`DeadLetter` carries the original payload untouched (so it can be replayed after a fix),
the reason, the error class, how many attempts were made and when it failed. Any backend that can
store them implements :class:`DeadLetterQueue`; the stream keeps them in a log topic
(:mod:`headwater.stream.dlq`), written in the same transaction as the offsets that consumed them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One failed record. ``letter_id`` is derived from the source position, so it is stable."""

    letter_id: str
    source: str
    reason: str
    error_type: str
    payload: str
    attempts: int
    failed_at: str
    retryable: bool = False
    key: str | None = None
    event_id: str | None = None

    def to_json(self) -> str:
        # Every field is a str/int/bool/None: a flat dict equals asdict() without its deep copy.
        return json.dumps({f: getattr(self, f) for f in _FIELDS}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DeadLetter:
        return cls(**json.loads(text))


_FIELDS = tuple(f.name for f in fields(DeadLetter))


class DeadLetterQueue(Protocol):
    """Where dead letters go and how they are looked at again."""

    def put(self, letters: Sequence[DeadLetter]) -> None: ...

    def list(self, limit: int = 100) -> list[DeadLetter]: ...

    def get(self, letter_id: str) -> DeadLetter | None: ...
