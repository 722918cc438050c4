"""What to generate (``WorldSpec``) and what was generated (``WorldManifest``).

The manifest is the contract between the generator and the tests/pipeline: it records exact row
counts and, for every injected bad record, its dataset, kind, exact count and (capped) ids, so a
quality gate can be checked against ground truth instead of guesses.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from headwater.errors import ConfigError

GENERATOR_VERSION = "1"
DAY_S = 86_400
MAX_LISTED_IDS = 1000  # ids per bad-record kind kept in world.json; the count is always exact


@dataclass(frozen=True)
class WorldSpec:
    """Size and shape of a synthetic world; the same spec always gives byte-identical files."""

    customers: int = 3000
    days: int = 90
    start: date = date(2024, 1, 1)
    seed: int = 42
    bad_records: float = 0.0
    anomalies: dict[str, date] = field(default_factory=dict)  # kind -> day, see synth.anomalies

    def __post_init__(self) -> None:
        if isinstance(self.start, str):  # friendly for CLI / JSON callers
            try:
                object.__setattr__(self, "start", date.fromisoformat(self.start))
            except ValueError as exc:
                raise ConfigError(f"start must be a date YYYY-MM-DD, got {self.start!r}") from exc
        if self.customers < 1:
            raise ConfigError(f"customers must be >= 1, got {self.customers}")
        if self.days < 1:
            raise ConfigError(f"days must be >= 1, got {self.days}")
        if not 0.0 <= self.bad_records <= 0.5:
            raise ConfigError(f"bad_records must be between 0 and 0.5, got {self.bad_records}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        self._check_anomalies()

    def _check_anomalies(self) -> None:
        from headwater.synth.anomalies import ANOMALY_KINDS

        parsed = {}
        for kind, day in dict(self.anomalies).items():
            if kind not in ANOMALY_KINDS:
                raise ConfigError(f"unknown anomaly {kind!r} (one of {', '.join(ANOMALY_KINDS)})")
            try:
                parsed[kind] = date.fromisoformat(day) if isinstance(day, str) else day
            except ValueError as exc:
                raise ConfigError(f"anomaly {kind} needs a date YYYY-MM-DD, got {day!r}") from exc
            if not self.start <= parsed[kind] < self.end:
                raise ConfigError(f"anomaly {kind} day {parsed[kind]} is outside the world's range")
        object.__setattr__(self, "anomalies", parsed)

    @property
    def end(self) -> date:
        """First day after the range (exclusive end)."""
        return self.start + timedelta(days=self.days)

    @property
    def start_s(self) -> int:
        """Range start as Unix seconds (UTC midnight)."""
        return (self.start - date(1970, 1, 1)).days * DAY_S

    @property
    def end_s(self) -> int:
        return self.start_s + self.days * DAY_S

    def to_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "days": self.days,
            "start": self.start.isoformat(),
            "seed": self.seed,
            "bad_records": self.bad_records,
            # only present when asked for, so worlds without anomalies keep their world.json
            **(
                {"anomalies": {k: v.isoformat() for k, v in sorted(self.anomalies.items())}}
                if self.anomalies
                else {}
            ),
        }


def rng_for(spec: WorldSpec, stream: str) -> np.random.Generator:
    """Independent child stream per dataset, keyed by name (what ``SeedSequence.spawn`` does).

    Keying by a stable hash of the name instead of spawn order means adding a stream never shifts
    another one, so adding a dataset leaves the existing ones byte-identical.
    """
    key = zlib.crc32(stream.encode())
    return np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(key,)))


@dataclass(frozen=True)
class BadRecordKind:
    """Exact number of bad records of one kind, with the first ids and where those lines are.

    ``lines`` (same order as ``ids``) is ``date=YYYY-MM-DD/part-0000.jsonl:N`` for landing drops
    (for a duplicate, the copy's line) and the 1-based line number for the event log; empty for
    the orders table, whose ``ids`` are order ids.
    """

    count: int
    ids: list[Any] = field(default_factory=list)
    lines: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class WorldManifest:
    """What a generation produced. ``rows`` counts records before corruption; ``lines`` what was written.

    For the landing datasets ``lines = rows + duplicate copies``; every other bad kind rewrites a row
    in place. Events file ids ``E000000042`` are line 42 (no lines are added to it).
    """

    spec: dict[str, Any]
    generator_version: str
    range_start: str
    range_end_exclusive: str
    rows: dict[str, int]
    lines: dict[str, int]
    stats: dict[str, dict[str, int]]
    bad_records: dict[str, dict[str, BadRecordKind]]
    files: dict[str, str]

    def bad_count(self, dataset: str, kind: str | None = None) -> int:
        kinds = self.bad_records.get(dataset, {})
        if kind is not None:
            return kinds[kind].count if kind in kinds else 0
        return sum(k.count for k in kinds.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldManifest:
        bad = {
            ds: {kind: BadRecordKind(**v) for kind, v in kinds.items()}
            for ds, kinds in data["bad_records"].items()
        }
        return cls(**{**data, "bad_records": bad})

    @classmethod
    def load(cls, path: Path) -> WorldManifest:
        return cls.from_dict(json.loads(Path(path).read_text()))
