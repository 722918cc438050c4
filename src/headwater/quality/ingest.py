"""What the ingest steps call: schema evolution per source, and the per-dataset metrics of each ingest.

The metrics (volume, null rate per contract column, quarantine count per rule, duration) go to the
metric history in the run store, where the batch monitors learn what normal looks like.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa

from headwater.errors import SourceError
from headwater.orchestration.run_store import RunStore
from headwater.quality.contracts import CONTRACTS, Contract
from headwater.quality.evolution import EvolutionPlan, evolve, json_wire_types, sqlite_wire_type
from headwater.quality.gate import GateResult
from headwater.quality.store import record_metrics
from headwater.sources.database import connect_readonly, source_schema
from headwater.sources.landing import ParsedDrop


@dataclass(frozen=True)
class SourcePlan:
    plan: EvolutionPlan
    present: tuple[str, ...]  # contract columns the source still has

    @property
    def contract(self) -> Contract:
        return self.plan.contract

    @property
    def carried(self) -> tuple[str, ...]:
        return self.plan.carried


def evolve_orders(source_db: Path, store: RunStore, run_id: str | None) -> SourcePlan:
    """Compare the source ``orders`` table with the orders contract (raises on a change awaiting a decision)."""
    observed = {name: sqlite_wire_type(declared) for name, declared in source_schema(source_db).items()}
    if "order_ts" not in observed:
        raise SourceError("the source orders table has no order_ts: the extract cannot select an interval")
    plan = evolve(store, CONTRACTS["orders"], observed, run_id)
    return SourcePlan(plan, tuple(c for c in CONTRACTS["orders"].names if c in observed))


def evolve_drop(dataset: str, parsed: ParsedDrop, store: RunStore, run_id: str | None) -> EvolutionPlan:
    """Compare the keys of a parsed drop with the contract (an empty drop says nothing about its schema)."""
    observed = json_wire_types(parsed.key_types) if parsed.table.num_rows else None
    return evolve(store, CONTRACTS[dataset], observed, run_id)


def known_customers(source_db: Path, candidates: pa.Array) -> pa.Array:
    """Which of ``candidates`` (raw customer ids of a drop) exist in the source's customers.

    Only the drop's distinct ids are looked up (through a temp table and the primary key), so the
    cost follows the drop's size, not the customer base's (reading all 362k ids of a 10M-order world
    cost 0.35 s per drop)."""
    digits = (str(v) for v in candidates.to_pylist() if v is not None)
    wanted = {n for n in (int(d) for d in digits if d.lstrip("-").isdigit()) if -(2**63) <= n < 2**63}
    con = connect_readonly(source_db)
    try:
        con.execute("CREATE TEMP TABLE wanted (customer_id INTEGER PRIMARY KEY)")
        con.executemany("INSERT INTO wanted VALUES (?)", [(v,) for v in wanted])
        ids = [r[0] for r in con.execute("SELECT customer_id FROM wanted JOIN customers USING (customer_id)")]
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read customers from {source_db}: {exc}", dataset="customers") from exc
    finally:
        con.close()
    return pa.array(ids, pa.int64())


def ingest_metrics(
    dataset: str, raw_in: pa.Table, gate: GateResult, rejected: dict[str, int], seconds: float
) -> dict[str, float | None]:
    """Volume, null rate per contract column (before the gate), quarantine per rule, duration."""
    n = raw_in.num_rows + sum(rejected.values())
    metrics: dict[str, float | None] = {
        "rows_in": float(n),
        "rows_passed": float(gate.passed.num_rows),
        "rows_quarantined": float(gate.quarantined.num_rows + sum(rejected.values())),
        "quarantined_share": (gate.quarantined.num_rows + sum(rejected.values())) / n if n else None,
        "duration_s": round(seconds, 4),
    }
    for col in CONTRACTS[dataset].names:
        if col in raw_in.column_names:
            metrics[f"null_rate:{col}"] = raw_in[col].null_count / raw_in.num_rows if raw_in.num_rows else None
    for rule, count in {**gate.by_rule, **rejected}.items():
        metrics[f"rule:{rule}"] = float(count)
    return metrics


def record_ingest(
    store: RunStore, run_id: str, day: date, dataset: str, raw_in: pa.Table, gate: GateResult,
    rejected: dict[str, int] | None = None, seconds: float = 0.0,
) -> None:
    metrics = ingest_metrics(dataset, raw_in, gate, rejected or {}, seconds)
    record_metrics(store, run_id, day.isoformat(), dataset, metrics)
