"""Bad-record injection: choose disjoint victim rows per kind and keep an exact ledger of them.

Every kind is applied to distinct rows (a row is never bad twice), so each kind's count in
``world.json`` is exactly what a reader finds in the files. Most kinds rewrite a row in place;
duplicates add a copy of an earlier line, which is what a re-delivered file would do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.synth.spec import MAX_LISTED_IDS, BadRecordKind

INVALID_UTF8 = b"\xff"


class BadRecordLog:
    """Per dataset and kind: exact count plus the first ``MAX_LISTED_IDS`` ids."""

    def __init__(self) -> None:
        self._kinds: dict[str, dict[str, BadRecordKind]] = {}

    def record(
        self,
        dataset: str,
        kind: str,
        count: int,
        ids: pa.Array | np.ndarray | Sequence[Any],
        lines: Sequence[Any] = (),
    ) -> None:
        listed = ids[:MAX_LISTED_IDS]
        listed = listed.to_pylist() if isinstance(listed, pa.Array) else np.asarray(listed).tolist()
        self._kinds.setdefault(dataset, {})[kind] = BadRecordKind(
            count=int(count), ids=listed, lines=list(lines[:MAX_LISTED_IDS])
        )

    def as_dict(self) -> dict[str, dict[str, BadRecordKind]]:
        return {ds: dict(sorted(kinds.items())) for ds, kinds in sorted(self._kinds.items())}


def allocate(
    rng: np.random.Generator,
    n_rows: int,
    rate: float,
    kinds: Sequence[str],
    eligible: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Disjoint, sorted row indices per kind: ``round(rate * n_rows)`` in all, split evenly.

    A kind with an ``eligible`` mask (e.g. only refunds can get a negative refund amount) draws
    from that subset and may get fewer rows if it is small (later kinds make up the gap); list such
    kinds first.
    """
    remaining = int(round(rate * n_rows))
    used = np.zeros(n_rows, dtype=bool)
    out: dict[str, np.ndarray] = {}
    for position, kind in enumerate(kinds):
        want = -(-remaining // (len(kinds) - position))  # even split; a short kind's gap goes to later ones
        pool_mask = ~used
        if eligible is not None and kind in eligible:
            pool_mask &= eligible[kind]
        pool = np.flatnonzero(pool_mask)
        take = min(want, len(pool))
        chosen = np.sort(rng.choice(pool, size=take, replace=False)) if take else np.empty(0, np.int64)
        used[chosen] = True
        remaining -= take
        out[kind] = chosen.astype(np.int64)
    return out


def mask_of(n_rows: int, rows: np.ndarray) -> np.ndarray:
    mask = np.zeros(n_rows, dtype=bool)
    mask[rows] = True
    return mask


def replace_rows(values: pa.Array, rows: np.ndarray, new_values: pa.Array) -> pa.Array:
    """``values`` with ``values[rows[k]] = new_values[k]``; ``rows`` sorted ascending."""
    if len(rows) == 0:
        return values
    new_values = new_values.cast(values.type)
    return pc.replace_with_mask(values, pa.array(mask_of(len(values), rows)), new_values)


def truncate(lines: pa.Array, rows: np.ndarray, keep_chars: int = 40) -> pa.Array:
    """Cut lines short (an interrupted write): an object prefix without its closing brace."""
    if len(rows) == 0:
        return lines
    return replace_rows(lines, rows, pc.utf8_slice_codeunits(lines.take(pa.array(rows)), 0, keep_chars))


def corrupt_utf8(lines: pa.Array, rows: np.ndarray, at: int) -> pa.Array:
    """Binary lines with a stray 0xFF byte at byte ``at`` (inside the leading id string) of ``rows``."""
    lines = pc.cast(lines, pa.large_binary())
    if len(rows) == 0:
        return lines
    chosen = lines.take(pa.array(rows))
    broken = pc.binary_join_element_wise(
        pc.binary_slice(chosen, 0, at),
        pa.scalar(INVALID_UTF8, pa.large_binary()),
        pc.binary_slice(chosen, at, 1 << 40),
        pa.scalar(b"", pa.large_binary()),
    )
    return replace_rows(lines, rows, broken)


def insert_copies(
    rng: np.random.Generator, lines: pa.Array, day: np.ndarray, rows: np.ndarray
) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    """Add a copy of each line in ``rows`` a little later in the same day's file.

    Returns the new lines and their days, plus the final position of every original line and of
    every copy, so the ledger can say where each bad line ended up.
    """
    n = len(lines)
    day_last = np.searchsorted(day, day[rows], side="right") - 1
    target = np.minimum(rows + rng.integers(1, 50, len(rows)), day_last)
    source = np.concatenate([np.arange(n), rows])
    key = np.concatenate([np.arange(n) * 2, target * 2 + 1])
    perm = np.argsort(key, kind="stable")
    position = np.empty_like(perm)
    position[perm] = np.arange(len(perm))
    order = source[perm]
    if len(rows):
        lines = lines.take(pa.array(order))
    return lines, day[order], position[:n], position[n:]
