"""Schema evolution on ingest: compare what a source delivers with the dataset's contract.

=====================  =========================================================================
change                 what happens
=====================  =========================================================================
added column           allowed: recorded in the schema history, carried into the raw zone as text
removed column         requires approval: the ingest fails with :class:`SchemaChangeError` naming
                       the change until ``headwater schema approve DATASET CHANGE_ID`` records who,
                       when and why; afterwards the column is treated as absent (all-null, nullable)
safe type widening     allowed and recorded (see :data:`~headwater.quality.contracts.SAFE_WIDENINGS`:
                       int32->int64, int32->float64, float32->float64, date->timestamp, decimal
                       (p,s)->(p2,s2) with s2>=s and p2-s2>=p-s, int->decimal wide enough); the
                       raw zone keeps the contract's type, a value that does not fit is quarantined
other type change      blocked: the ingest fails with :class:`SchemaChangeError`; it cannot be
                       approved (fix the source, or change the contract in code)
=====================  =========================================================================

A type is judged on the *wire*: a JSON key whose non-null values are all of a type the contract
does not accept is a type change; a few odd values among good ones are row problems (the gate's
``type:`` rule quarantines them), not a schema change.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from headwater.errors import SchemaChangeError
from headwater.orchestration.run_store import RunStore
from headwater.quality.contracts import IDENTIFIER, Contract, conforms, is_safe_widening
from headwater.quality.store import SchemaChange, record_change


@dataclass(frozen=True)
class EvolutionPlan:
    """What an ingest does with the incoming schema: the effective contract and the carried columns."""

    contract: Contract
    carried: tuple[str, ...]
    changes: tuple[SchemaChange, ...]


# --- observing an incoming schema --------------------------------------------------------------------
_JSON_TYPES = {bool: "bool", int: "int64", float: "float64", str: "string", dict: "json", list: "json"}


def json_wire_types(key_types: dict[str, set[type]]) -> dict[str, str]:
    """Wire type per JSON key from the Python types of its values (``null`` when only nulls were seen;
    a mix lists the types joined by ``|``)."""
    out = {}
    for key, types in key_types.items():
        names = sorted({_JSON_TYPES.get(t, "json") for t in types if t is not type(None)})
        if names == ["float64", "int64"]:
            names = ["float64"]
        out[key] = "|".join(names) if names else "null"
    return out


_SQLITE_INT32 = {"INT2", "INT4", "INT32", "SMALLINT", "TINYINT", "MEDIUMINT"}


def sqlite_wire_type(declared: str) -> str:
    """Logical wire type of a SQLite declared column type (affinity rules, plus sized decimals)."""
    d = declared.upper().strip()
    m = re.match(r"^(DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$", d)
    if m:
        return f"decimal({m.group(2)},{m.group(3)})"
    if d in ("NUMERIC", "DECIMAL"):
        return "decimal"
    if "INT" in d:
        return "int32" if d in _SQLITE_INT32 else "int64"
    if any(x in d for x in ("CHAR", "CLOB", "TEXT")) or d in ("DATE", "DATETIME", "TIMESTAMP"):
        return "string"
    if d == "FLOAT4":
        return "float32"
    if any(x in d for x in ("REAL", "FLOA", "DOUB")):
        return "float64"
    if "BOOL" in d:
        return "bool"
    return "blob"


def sqlite_columns(con: sqlite3.Connection, table: str) -> dict[str, str]:
    """Column -> wire type of a SQLite table (``table`` is a code constant)."""
    rows = con.execute("SELECT name, type FROM pragma_table_info(?)", (table,)).fetchall()
    return {name: sqlite_wire_type(declared or "") for name, declared in rows}


# --- comparing -----------------------------------------------------------------------------------------
def _slug(type_: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", type_.lower()).strip("_")


def detect_changes(contract: Contract, observed: dict[str, str]) -> list[SchemaChange]:
    """The differences between ``observed`` (column -> wire type) and the contract, unrecorded."""
    ds = contract.dataset
    changes = []
    for name, wire in observed.items():
        if name in contract.names or name in contract.source_only or name.startswith("_"):
            continue
        changes.append(SchemaChange(ds, f"add.{name}", "add_column", name, None, wire, "recorded"))
    for col in contract.columns:
        if col.name not in observed:
            changes.append(SchemaChange(ds, f"remove.{col.name}", "remove_column", col.name, col.wire, None, "pending"))
            continue
        wire = observed[col.name]
        if any(conforms(col.wire, t) for t in wire.split("|")):
            continue
        if "|" not in wire and is_safe_widening(col.wire, wire):
            cid = f"widen.{col.name}.{_slug(wire)}"
            changes.append(SchemaChange(ds, cid, "widen_type", col.name, col.wire, wire, "recorded"))
        else:
            cid = f"type.{col.name}.{_slug(wire)}"
            changes.append(SchemaChange(ds, cid, "change_type", col.name, col.wire, wire, "blocked"))
    return changes


def evolve(store: RunStore, contract: Contract, observed: dict[str, str] | None, run_id: str | None) -> EvolutionPlan:
    """Record the changes between ``observed`` and the contract and decide what the ingest may do.

    ``observed=None`` (nothing to judge, e.g. an empty drop) keeps the contract. Raises
    :class:`SchemaChangeError` when a removal awaits approval or a type change is blocked."""
    if observed is None:
        return EvolutionPlan(contract, (), ())
    recorded = tuple(record_change(store, ch, run_id) for ch in detect_changes(contract, observed))
    waiting = [c for c in recorded if c.status in ("pending", "blocked", "rejected")]
    if waiting:
        first = waiting[0]
        lines = []
        for c in waiting:
            if c.status == "blocked":
                lines.append(f"{c.describe()} is blocked (change {c.change_id}: not a safe widening)")
            elif c.status == "rejected":
                lines.append(f"{c.describe()} was rejected (change {c.change_id})")
            else:
                lines.append(f"{c.describe()} requires approval (change {c.change_id})")
        hint = (
            f"; approve with `headwater schema approve {contract.dataset} {first.change_id} --by NAME --reason WHY`"
            if first.status == "pending"
            else "; fix the source or change the contract"
        )
        raise SchemaChangeError(
            f"{contract.dataset}: schema change " + "; ".join(lines) + hint,
            dataset=contract.dataset,
            change_id=first.change_id,
            change_ids=[c.change_id for c in waiting],
            kind=first.kind,
            column=first.column,
        )
    absent = tuple(c.column for c in recorded if c.kind == "remove_column" and c.status == "approved")
    carried = tuple(c.column for c in recorded if c.kind == "add_column" and IDENTIFIER.match(c.column))
    return EvolutionPlan(contract.with_absent(absent), carried, recorded)


def approve_change(store: RunStore, dataset: str, change_id: str, by: str, reason: str) -> SchemaChange:
    """Record the approval of a pending change (who, when, why); the next ingest proceeds."""
    from headwater.errors import ConfigError
    from headwater.quality.store import decide_change, get_change

    change = get_change(store, dataset, change_id)
    if change is None:
        raise ConfigError(f"no schema change {change_id!r} for {dataset} (see `headwater schema history {dataset}`)")
    if change.status == "blocked":
        raise ConfigError(
            f"{dataset} {change_id}: {change.describe()} is not a safe widening and cannot be approved; "
            "fix the source or change the contract"
        )
    if change.status != "pending":
        raise ConfigError(f"{dataset} {change_id} is {change.status}, not awaiting approval")
    if not reason.strip():
        raise ConfigError("an approval needs a reason (--reason)")
    decide_change(store, dataset, change_id, "approved", by, reason)
    return get_change(store, dataset, change_id)  # type: ignore[return-value]
