"""Vectorised text rendering: timestamps, money, ids and JSON lines built with Arrow string kernels.

Python-level ``json.dumps`` per record costs ~1 µs each and dominates at 10M rows; these helpers
build the same text (``json.dumps`` separators ``", "`` and ``": "``) column by column instead.
Only ids, enums, numbers and timestamps are rendered, none of which need JSON escaping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.synth.spec import DAY_S

_join = pc.binary_join_element_wise


@cache
def _time_of_day_table() -> pa.Array:
    return pa.array([f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)])


def _day_table(first_day: int, last_day: int) -> pa.Array:
    days = np.arange(first_day, last_day + 1).astype("datetime64[D]")
    return pa.array(np.datetime_as_string(days, unit="D").tolist())


def dates(seconds: np.ndarray) -> pa.Array:
    """``YYYY-MM-DD`` of each Unix-seconds value (leap days come from numpy's calendar)."""
    if len(seconds) == 0:
        return pa.array([], pa.string())
    day = np.floor_divide(seconds, DAY_S)
    first = int(day.min())
    return _day_table(first, int(day.max())).take(pa.array(day - first))


def timestamps(seconds: np.ndarray, sep: str = " ", suffix: str = "") -> pa.Array:
    """``YYYY-MM-DD HH:MM:SS`` (or ISO ``T`` ... ``Z`` with sep/suffix) via two lookup tables."""
    if len(seconds) == 0:
        return pa.array([], pa.string())
    day = np.floor_divide(seconds, DAY_S)
    tod = pa.array(seconds - day * DAY_S)
    return _join(dates(seconds), sep, _time_of_day_table().take(tod), suffix, "")


def iso(seconds: np.ndarray) -> pa.Array:
    """UTC ISO-8601 with ``Z``, the landing and event-log timestamp format."""
    return timestamps(seconds, sep="T", suffix="Z")


def ints(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values, pa.int64()), pa.string())


def padded_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``T00000042``-style ids; wider numbers simply grow instead of wrapping."""
    return _join(prefix, pc.utf8_lpad(ints(numbers), width, "0"), "")


def money(cents: np.ndarray) -> pa.Array:
    """Exact two-decimal text from integer cents (``-4500`` -> ``-45.00``), never via floats."""
    cents = np.asarray(cents, dtype=np.int64)
    absolute = np.abs(cents)
    sign = pc.if_else(pa.array(cents < 0), "-", "")
    return _join(sign, ints(absolute // 100), ".", pc.utf8_lpad(ints(absolute % 100), 2, "0"), "")


def quoted(values: pa.Array) -> pa.Array:
    return _join('"', values, '"', "")


def nullable(json_values: pa.Array, null_mask: np.ndarray | None) -> pa.Array:
    """Replace JSON values by ``null`` where ``null_mask`` is set."""
    if null_mask is None or not null_mask.any():
        return json_values
    return pc.if_else(pa.array(null_mask), "null", json_values)


@dataclass(frozen=True)
class Quoted:
    """A string column rendered as a JSON string; the quotes are added in the same pass as the line."""

    values: pa.Array


def json_objects(
    fields: Sequence[tuple[str, pa.Array | Quoted]], omit: dict[str, np.ndarray] | None = None
) -> pa.Array:
    """One JSON object per row from JSON-encoded (or ``Quoted``) columns; ``omit`` drops a key on masked rows.

    The whole line is one ``binary_join_element_wise`` call over literals and columns, which is what
    keeps rendering at tens of millions of lines per minute. The first key can not be omitted.
    """
    omit = omit or {}
    parts: list[pa.Array | str] = []
    pending = "{"  # literal text waiting to be glued in front of the next part
    for position, (key, column) in enumerate(fields):
        prefix = ("" if position == 0 else ", ") + f'"{key}": '
        quote = '"' if isinstance(column, Quoted) else ""
        values = column.values if isinstance(column, Quoted) else column
        mask = omit.get(key)
        if mask is not None and mask.any():
            if position == 0:
                raise ValueError("the first key of a JSON line can not be omitted")
            parts += [pending, pc.if_else(pa.array(mask), "", _join(prefix + quote, values, quote, ""))]
            pending = ""
        else:
            parts += [pending + prefix + quote, values]
            pending = quote
    parts.append(pending + "}")
    return _join(*parts, "")


def as_lines(values: pa.Array) -> pa.Array:
    """Newline-terminated ``large_binary`` so any byte (even invalid UTF-8) and > 2 GiB fit."""
    newline, nothing = pa.scalar(b"\n", pa.large_binary()), pa.scalar(b"", pa.large_binary())
    joined = _join(pc.cast(values, pa.large_binary()), newline, nothing)
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    return joined


def contiguous_bytes(lines: pa.Array, start: int, stop: int) -> memoryview:
    """Bytes of ``lines[start:stop]`` as one zero-copy slice of the Arrow data buffer."""
    if stop <= start:
        return memoryview(b"")
    _, offsets_buf, data = lines.buffers()[:3]
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(data)[int(offsets[start]) : int(offsets[stop])]
