"""The row gate: type raw rows, evaluate row rules as SQL predicates, split passed from quarantined.

The rules are *derived from the dataset's contract* (:mod:`headwater.quality.contracts`): not-null
for every non-nullable column, a type check for every typed column, enum and range checks, the
primary key's uniqueness (the first occurrence passes, later copies are quarantined), and the
contract's contextual rules (referential, interval, column order). They run as SQL in DuckDB
(columnar, so it scales and can move to Spark): a pre-pass finds the duplicate keys (a hash
aggregate), then one projection evaluates every rule; a row that fails any rule goes to
quarantine carrying its original record and the name of *every* rule it failed.
``rows_in == passed + quarantined`` always holds.

Columns added by the source (schema evolution) are carried through as text; columns whose removal
was approved are all-null.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.batch.engine import local_duckdb
from headwater.errors import StorageError
from headwater.quality.contracts import CONTRACTS, IDENTIFIER, Contract, Rule, column_rules, sql_type

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("record", pa.string()),
        pa.field("failed_rules", pa.list_(pa.string())),
    ]
)

_ARROW_TYPES = {
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def arrow_type(type_: str) -> pa.DataType:
    from headwater.quality.contracts import decimal_parts

    dec = decimal_parts(type_)
    return pa.decimal128(*dec) if dec else _ARROW_TYPES[type_]


def arrow_schema(c: Contract, extra: tuple[str, ...] = ()) -> pa.Schema:
    """The typed (raw-zone) schema of a contract, plus carried added columns as text."""
    fields = [pa.field(col.name, arrow_type(col.type), nullable=col.nullable) for col in c.columns]
    fields += [pa.field(name, pa.string()) for name in extra]
    return pa.schema(fields)


@dataclass(frozen=True)
class DatasetRules:
    """The gate's view of a contract (kept for callers that only need the typed columns)."""

    dataset: str
    typed: dict[str, str]  # column -> SQL expression over raw text columns
    required: tuple[str, ...]
    key: tuple[str, ...]
    rules: tuple[Rule, ...]
    params: dict[str, object]


def typing_expr(col_name: str, type_: str, parse: str | None) -> str:
    if parse:
        return parse
    if type_ == "string":
        return col_name
    return f"TRY_CAST({col_name} AS {sql_type(type_)})"


def rules_for(c: Contract) -> DatasetRules:
    derived, params = column_rules(c)
    return DatasetRules(
        dataset=c.dataset,
        typed={col.name: typing_expr(col.name, col.type, col.parse) for col in c.columns},
        required=tuple(col.name for col in c.columns if not col.nullable),
        key=c.key,
        rules=(*derived, *c.rules),
        params=params,
    )


DATASET_RULES: dict[str, DatasetRules] = {name: rules_for(c) for name, c in CONTRACTS.items() if c.kind == "raw"}


@dataclass
class GateResult:
    passed: pa.Table  # typed to the contract's schema (+ carried columns)
    quarantined: pa.Table  # QUARANTINE_SCHEMA
    by_rule: dict[str, int]

    @property
    def rows_in(self) -> int:
        return self.passed.num_rows + self.quarantined.num_rows


def quote(identifier: str) -> str:
    """Quote an identifier checked against :data:`IDENTIFIER` (carried column names come from a source)."""
    if not IDENTIFIER.match(identifier):
        raise StorageError(f"refusing identifier {identifier!r}")
    return '"' + identifier + '"'


def _gate_sql(rules: DatasetRules, extra: tuple[str, ...], with_known: bool, has_known_col: bool) -> str:
    """Build the gate statement from the contract (code constants + checked carried names); values are
    parameters."""
    cols = list(rules.typed)
    typed = ",\n  ".join(f"{expr} AS {col}" for col, expr in rules.typed.items())
    raws = ",\n  ".join(f"{c} AS raw_{c}" for c in cols)
    carried = "".join(f",\n  {quote(c)}" for c in extra)
    if with_known:
        known = "(TRY_CAST(customer_id AS BIGINT) IN (SELECT customer_id FROM known)) AS _customer_known"
    elif has_known_col:
        known = "_customer_known"
    else:
        known = "true AS _customer_known"
    conds = [(f"raw_{c} IS NULL", f"not_null:{c}") for c in rules.required]
    conds += [(f"raw_{c} IS NOT NULL AND {c} IS NULL", f"type:{c}") for c in cols if rules.typed[c] != c]
    conds += [(f"coalesce({r.violated}, false)", r.name) for r in rules.rules]
    conds.append(("_dup", f"unique:{'+'.join(rules.key)}"))
    checks = ", ".join(f"CASE WHEN {cond} THEN '{name}' END" for cond, name in conds)
    any_failed = " OR ".join(f"({cond})" for cond, _ in conds)
    record = ", ".join([f"{c} := raw_{c}" for c in cols] + [f"{quote(c)} := {quote(c)}" for c in extra])
    out_cols = ", ".join(cols + [quote(c) for c in extra])
    # Identifiers come from the contract (and checked carried names); every value is a bound parameter.
    # Performance: a pure projection (no join, no window, no ORDER BY: DuckDB keeps the input order);
    # duplicates are found beforehand (:func:`_duplicate_rows`); the list of failed rules and the
    # JSON record are only built for rows that failed something.
    return f"""
WITH t AS (
  SELECT
  {typed},
  {raws}{carried},
  {known},
  _source, _line, _row, _dup
  FROM raw
),
checked AS (
  SELECT *,
    CASE WHEN {any_failed}
         THEN list_filter([{checks}], lambda x: x IS NOT NULL)
         ELSE []::VARCHAR[] END AS failed_rules
  FROM t
)
SELECT {out_cols}, _source AS source, _line AS line,
       CASE WHEN len(failed_rules) > 0 THEN to_json(struct_pack({record}))::VARCHAR END AS record, failed_rules,
       _row
FROM checked
"""  # noqa: S608


def _duplicate_rows(con, rules: DatasetRules) -> pa.Array:
    """``_row`` of every later occurrence of a key (typed as the gate types it): a hash aggregate over
    the keys, joined back only to the duplicated ones (usually none)."""
    keys = ", ".join(rules.key)
    typed_keys = ", ".join(f"{rules.typed[k]} AS {k}" for k in rules.key)
    present = " AND ".join(f"{k} IS NOT NULL" for k in rules.key)
    on = " AND ".join(f"d.{k} = k.{k}" for k in rules.key)
    sql = f"""
WITH k AS (SELECT {typed_keys}, _row FROM raw),
d AS (SELECT {keys}, min(_row) AS _first FROM k WHERE {present} GROUP BY {keys} HAVING count(*) > 1)
SELECT k._row FROM k JOIN d ON {on} WHERE k._row > d._first
"""  # noqa: S608 (identifiers from the contract)
    return con.sql(sql).to_arrow_table()["_row"].combine_chunks()


def apply_gate(
    dataset: str,
    raw: pa.Table,
    interval_start: datetime,
    interval_end: datetime,
    *,
    contract: Contract | None = None,
    extra_columns: tuple[str, ...] = (),
    known_customers: pa.Array | None = None,
) -> GateResult:
    """Type and check ``raw`` (text columns as read from the source) for one data interval.

    ``contract`` defaults to the dataset's (pass the evolved one: approved removals are absent);
    ``extra_columns`` are added source columns carried through as text; ``known_customers`` (ids)
    drives the referential rule when the input has no ``_customer_known`` column."""
    c = contract or CONTRACTS[dataset]
    rules = rules_for(c)
    n = raw.num_rows
    if "_source" not in raw.column_names:
        raw = raw.append_column("_source", pa.repeat(pa.scalar(dataset, pa.string()), n))
    if "_line" not in raw.column_names:
        raw = raw.append_column("_line", pa.nulls(n, pa.int64()))
    raw = raw.append_column("_row", pa.array(np.arange(n, dtype=np.int64)))
    for col in (*rules.typed, *extra_columns):  # a column missing from the input is all-null
        if col not in raw.column_names:
            raw = raw.append_column(col, pa.nulls(n, pa.string()))
    with_known = known_customers is not None and "_customer_known" not in raw.column_names
    sql = _gate_sql(rules, tuple(extra_columns), with_known, "_customer_known" in raw.column_names)
    params = {**rules.params, "interval_start": interval_start, "interval_end": interval_end}
    used = {k: v for k, v in params.items() if f"${k}" in sql}
    con = local_duckdb()
    try:
        con.register("raw", raw)
        dups = _duplicate_rows(con, rules)
        con.unregister("raw")
        raw = raw.append_column(
            "_dup", pc.is_in(raw["_row"], value_set=dups) if len(dups) else pa.repeat(pa.scalar(False), n)
        )
        con.register("raw", raw)
        if with_known:
            con.register("known", pa.table({"customer_id": pa.array(known_customers, pa.int64())}))
        out = con.sql(sql, params=used).to_arrow_table()
    except duckdb.Error as exc:
        raise StorageError(f"quality gate failed on {dataset}: {exc}", dataset=dataset) from exc
    finally:
        con.unregister("raw")
        if with_known:
            con.unregister("known")
    out = _in_input_order(out)
    bad_mask = pc.greater(pc.list_value_length(out["failed_rules"]), 0)
    schema = arrow_schema(c, tuple(extra_columns))
    passed = out.filter(pc.invert(bad_mask)).select(schema.names).cast(schema)
    quarantined = out.filter(bad_mask).select(QUARANTINE_SCHEMA.names).cast(QUARANTINE_SCHEMA)
    flat = pc.list_flatten(quarantined["failed_rules"])
    by_rule = Counter({vc["values"]: vc["counts"] for vc in pc.value_counts(flat).to_pylist()})
    return GateResult(passed, quarantined, dict(sorted(by_rule.items())))


def _in_input_order(out: pa.Table) -> pa.Table:
    """Rows in input order (deterministic output files): a linear check, a sort only when needed."""
    rows = out["_row"]
    if len(rows) > 1 and not pc.all(pc.greater(rows.slice(1), rows.slice(0, len(rows) - 1))).as_py():
        out = out.sort_by("_row")
    return out.drop_columns(["_row"])


def rejected_lines_table(rejected: list) -> pa.Table:
    """Lines the parser could not read (bad UTF-8, not JSON) in the quarantine layout."""
    return pa.table(
        {
            "source": [r.source for r in rejected],
            "line": [r.line for r in rejected],
            "record": [r.record for r in rejected],
            "failed_rules": [[r.reason] for r in rejected],
        },
        schema=QUARANTINE_SCHEMA,
    )
