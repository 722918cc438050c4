"""Pull ingestion: append a JSONL events file to ``customer_events``, exactly once, resumably.

Every line goes in as is (a malformed one too: the processor dead-letters it with the reason, so the
counts conserve). How far the file was loaded is stored as a consumer-group position of the log
(group ``loader:<absolute path>``) in the same transaction as the appended lines, so loading the
same file again appends only lines added since, and a crash mid-load neither loses nor repeats one.
Blank lines are skipped; a last line without a newline is loaded as is (the file is taken as final).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from headwater.errors import DataError, SourceError
from headwater.stream.log import CUSTOMER_EVENTS, Committed, EventLog, Record


@dataclass(frozen=True)
class LoadResult:
    path: Path
    appended: int
    already_loaded: int


def customer_key(value: object) -> str | None:
    """The partition key of a customer id, normalised as validation will read it (``42``, ``"42"``,
    ``42.0`` -> ``"42"``), so every event of a customer lands in the same partition."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return str(int(value))
    return None


def key_of(line: str) -> str | None:
    """The partition key (customer id) if the line has one; lines without go to partition 0."""
    try:
        return customer_key(json.loads(line).get("customer_id"))
    except (ValueError, AttributeError):
        return None


def to_record(line: str) -> Record:
    return Record(key_of(line), line)


def load_file(log: EventLog, path: Path, *, topic: str = CUSTOMER_EVENTS, chunk: int = 5000) -> LoadResult:
    """Append the lines of ``path`` not loaded before; returns how many went in now and before."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"events file {path} does not exist (generate it first, or pass a path)",
                          path=str(path))
    group = f"loader:{path.resolve()}"
    prior = log.committed(group, topic).get(0, Committed(0, "0"))
    lines_before, byte_pos = prior.offset, int(prior.metadata or 0)
    size = path.stat().st_size
    if size < byte_pos:
        raise DataError(f"events file {path} shrank below what was already loaded ({size} < {byte_pos} bytes);"
                        " load a new file instead", path=str(path))
    appended = 0
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot read events file {path}: {exc}", path=str(path)) from exc
    with fh:
        fh.seek(byte_pos)
        batch: list[Record] = []
        for raw in fh:
            byte_pos += len(raw)
            lines_before += 1
            text = raw.decode("utf-8", errors="replace").strip()
            if text:
                batch.append(to_record(text))
            if len(batch) >= chunk:
                appended += _commit(log, topic, group, batch, lines_before, byte_pos)
                batch = []
        appended += _commit(log, topic, group, batch, lines_before, byte_pos)
    return LoadResult(path, appended, prior.offset)


def _commit(log: EventLog, topic: str, group: str, batch: list[Record], lines: int, byte_pos: int) -> int:
    with log.transaction() as tx:
        if batch:
            tx.append(topic, batch)
        tx.commit_offsets(group, topic, {0: Committed(lines, str(byte_pos))})
    return len(batch)
