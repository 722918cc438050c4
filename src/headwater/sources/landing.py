"""Landing-zone drops: ``<landing>/<dataset>/date=YYYY-MM-DD/*.jsonl`` completed by a ``_SUCCESS`` flag.

A drop is read only once its flag exists (the producer writes it last). Lines that are not valid
UTF-8 or not a JSON object are returned as rejects with their reason, never raised: one bad line
must not stop a day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa

from headwater.errors import SourceError, SourceNotReady

SUCCESS_FLAG = "_SUCCESS"


@dataclass(frozen=True)
class RejectedLine:
    source: str
    line: int
    record: str
    reason: str


@dataclass
class ParsedDrop:
    """Parsed objects as string columns (``_source``/``_line`` locate each), rejected lines, unknown keys.

    Keys outside the contract are kept as extra text columns of ``table`` (schema evolution decides
    whether they are carried); ``key_types`` lists the JSON value types seen per key."""

    table: pa.Table
    rejected: list[RejectedLine]
    extra_columns: list[str] = field(default_factory=list)
    key_types: dict[str, set[type]] = field(default_factory=dict)

    @property
    def lines(self) -> int:
        return self.table.num_rows + len(self.rejected)


def drop_dir(landing: Path, dataset: str, day: date) -> Path:
    return Path(landing) / dataset / f"date={day.isoformat()}"


def drop_files(landing: Path, dataset: str, day: date) -> list[Path]:
    """The data files of a complete drop; raises SourceNotReady until the ``_SUCCESS`` flag exists."""
    folder = drop_dir(landing, dataset, day)
    if not folder.is_dir():
        raise SourceNotReady(
            f"{dataset} drop for {day} has not landed (no folder {folder})", dataset=dataset, partition=str(day)
        )
    if not (folder / SUCCESS_FLAG).exists():
        raise SourceNotReady(
            f"{dataset} drop for {day} is incomplete (no {SUCCESS_FLAG} flag in {folder})",
            dataset=dataset,
            partition=str(day),
        )
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".jsonl", ".json"))


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def parse_jsonl(files: list[Path], columns: tuple[str, ...]) -> ParsedDrop:
    """Parse JSON lines into string columns: the contract's, then any other key found (as extra columns)."""
    values: dict[str, list[str | None]] = {c: [] for c in columns}
    sources: list[str] = []
    line_numbers: list[int] = []
    rejected: list[RejectedLine] = []
    extra: dict[str, list[str | None]] = {}
    seen: set[tuple[str, type]] = set()
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read drop file {path}: {exc}") from exc
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                record = raw.decode("utf-8", "backslashreplace")
                rejected.append(RejectedLine(str(path), number, record, "invalid_utf8"))
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError:
                obj = None
            if not isinstance(obj, dict):
                rejected.append(RejectedLine(str(path), number, text, "malformed_json"))
                continue
            for column, col_values in values.items():
                col_values.append(_as_text(obj.get(column)))
            seen.update(zip(obj, map(type, obj.values()), strict=True))
            if len(obj) > len(columns) or any(k not in values for k in obj):
                for k in obj:
                    if k not in values and k not in extra:
                        extra[k] = [None] * len(sources)
            for k, col_values in extra.items():
                col_values.append(_as_text(obj.get(k)))
            sources.append(str(path))
            line_numbers.append(number)
    arrays = {k: pa.array(v, pa.string()) for k, v in values.items()}
    arrays.update({k: pa.array(v, pa.string()) for k, v in sorted(extra.items()) if not k.startswith("_")})
    arrays["_source"] = pa.array(sources, pa.string())
    arrays["_line"] = pa.array(line_numbers, pa.int64())
    key_types: dict[str, set[type]] = {}
    for k, t in seen:
        key_types.setdefault(k, set()).add(t)
    return ParsedDrop(pa.table(arrays), rejected, sorted(extra), key_types)
