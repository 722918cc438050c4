"""The row gate: type raw rows, evaluate row rules as SQL predicates, split passed from quarantined.

Each dataset declares how to type its raw text columns and which rules a row must pass. All rules
run in one DuckDB statement (columnar, so it scales and can move to Spark); a row that fails any
rule goes to quarantine carrying its original record and the name of *every* rule it failed.
``rows_in == passed + quarantined`` always holds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from headwater.batch.engine import local_duckdb
from headwater.domain import enums
from headwater.domain.schemas import RAW_SCHEMAS
from headwater.errors import StorageError

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("record", pa.string()),
        pa.field("failed_rules", pa.list_(pa.string())),
    ]
)


@dataclass(frozen=True)
class Rule:
    """``violated`` is a SQL boolean over the typed columns (and raw ones as ``raw_<name>``)."""

    name: str
    violated: str


@dataclass(frozen=True)
class DatasetRules:
    dataset: str
    typed: dict[str, str]  # column -> SQL expression over raw text columns
    required: tuple[str, ...]
    key: str
    rules: tuple[Rule, ...]


def _ts_iso(col: str) -> str:
    return f"TRY_CAST({col} AS TIMESTAMPTZ)"


DATASET_RULES: dict[str, DatasetRules] = {
    "orders": DatasetRules(
        dataset="orders",
        typed={
            "order_id": "TRY_CAST(order_id AS BIGINT)",
            "customer_id": "TRY_CAST(customer_id AS BIGINT)",
            "order_ts": "CAST(TRY_STRPTIME(order_ts, '%Y-%m-%d %H:%M:%S') AS TIMESTAMPTZ)",
            "total_amount": "TRY_CAST(total_amount AS DECIMAL(12, 2))",
            "status": "status",
        },
        required=("order_id", "customer_id", "order_ts", "total_amount", "status"),
        key="order_id",
        rules=(
            Rule("range:total_amount", "total_amount < 0"),
            Rule("enum:status", "NOT list_contains($order_statuses, status)"),
            Rule("reference:customer_id", "customer_id IS NOT NULL AND NOT _customer_known"),
            Rule("range:order_ts", "order_ts < $interval_start OR order_ts >= $interval_end"),
        ),
    ),
    "support_tickets": DatasetRules(
        dataset="support_tickets",
        typed={
            "ticket_id": "ticket_id",
            "customer_id": "TRY_CAST(customer_id AS BIGINT)",
            "created_at": _ts_iso("created_at"),
            "category": "category",
            "priority": "priority",
            "resolved_at": _ts_iso("resolved_at"),
        },
        required=("ticket_id", "customer_id", "created_at", "category", "priority"),
        key="ticket_id",
        rules=(
            Rule("enum:priority", "NOT list_contains($ticket_priorities, priority)"),
            Rule("enum:category", "NOT list_contains($ticket_categories, category)"),
            Rule("order:resolved_at", "resolved_at < created_at"),
            Rule("range:created_at", "created_at >= $interval_end"),
        ),
    ),
    "marketing_events": DatasetRules(
        dataset="marketing_events",
        typed={
            "event_id": "event_id",
            "customer_id": "TRY_CAST(customer_id AS BIGINT)",
            "event_type": "event_type",
            "event_ts": _ts_iso("event_ts"),
            "campaign_id": "campaign_id",
        },
        required=("event_id", "customer_id", "event_type", "event_ts", "campaign_id"),
        key="event_id",
        rules=(
            Rule("enum:event_type", "NOT list_contains($marketing_event_types, event_type)"),
            Rule("range:event_ts", "event_ts >= $interval_end"),
        ),
    ),
}

_PARAMS = {
    "order_statuses": list(enums.ORDER_STATUSES),
    "ticket_priorities": list(enums.TICKET_PRIORITIES),
    "ticket_categories": list(enums.TICKET_CATEGORIES),
    "marketing_event_types": list(enums.MARKETING_EVENT_TYPES),
}


@dataclass
class GateResult:
    passed: pa.Table  # typed to RAW_SCHEMAS[dataset]
    quarantined: pa.Table  # QUARANTINE_SCHEMA
    by_rule: dict[str, int]

    @property
    def rows_in(self) -> int:
        return self.passed.num_rows + self.quarantined.num_rows


_META_COLUMNS = ("_row", "_source", "_line", "_customer_known")


def _gate_sql(rules: DatasetRules, raw_columns: list[str]) -> str:
    """Build the gate statement from the rule *definitions* (code constants); values are parameters."""
    raw_cols = list(rules.typed)  # identifiers come from the rule definitions, never from the input
    meta_cols = ", ".join(c for c in _META_COLUMNS if c in raw_columns)
    typed = ",\n  ".join(f"{expr} AS {col}" for col, expr in rules.typed.items())
    raws = ",\n  ".join(f"{c} AS raw_{c}" for c in raw_cols)
    checks = [f"CASE WHEN raw_{c} IS NULL THEN 'not_null:{c}' END" for c in rules.required]
    checks += [
        f"CASE WHEN raw_{c} IS NOT NULL AND {c} IS NULL THEN 'type:{c}' END" for c in rules.typed if rules.typed[c] != c
    ]
    checks += [f"CASE WHEN coalesce({r.violated}, false) THEN '{r.name}' END" for r in rules.rules]
    checks.append(
        f"CASE WHEN {rules.key} IS NOT NULL AND row_number() OVER (PARTITION BY {rules.key} ORDER BY _row) > 1 "
        f"THEN 'unique:{rules.key}' END"
    )
    record = ", ".join(f"{c} := raw_{c}" for c in raw_cols)
    out_cols = ", ".join(rules.typed)
    # Identifiers come from DATASET_RULES; every value is a bound parameter.
    return f"""
WITH t AS (
  SELECT
  {typed},
  {raws},
  {meta_cols}
  FROM raw
),
checked AS (
  SELECT *, list_filter([{", ".join(checks)}], lambda x: x IS NOT NULL) AS failed_rules FROM t
)
SELECT {out_cols}, _source AS source, _line AS line,
       to_json(struct_pack({record}))::VARCHAR AS record, failed_rules
FROM checked
ORDER BY _row
"""  # noqa: S608


def apply_gate(dataset: str, raw: pa.Table, interval_start: datetime, interval_end: datetime) -> GateResult:
    """Type and check ``raw`` (text columns as read from the source) for one data interval."""
    rules = DATASET_RULES[dataset]
    n = raw.num_rows
    if "_source" not in raw.column_names:
        raw = raw.append_column("_source", pa.array([dataset] * n, pa.string()))
    if "_line" not in raw.column_names:
        raw = raw.append_column("_line", pa.nulls(n, pa.int64()))
    raw = raw.append_column("_row", pa.array(range(n), pa.int64()))
    for col in rules.typed:  # a column missing from the input is all-null, caught as not_null
        if col not in raw.column_names:
            raw = raw.append_column(col, pa.nulls(n, pa.string()))
    sql = _gate_sql(rules, raw.column_names)
    params = {**_PARAMS, "interval_start": interval_start, "interval_end": interval_end}
    used = {k: v for k, v in params.items() if f"${k}" in sql}
    con = local_duckdb()
    try:
        con.register("raw", raw)
        out = con.sql(sql, params=used).to_arrow_table()
    except duckdb.Error as exc:
        raise StorageError(f"quality gate failed on {dataset}: {exc}", dataset=dataset) from exc
    finally:
        con.unregister("raw")
    bad_mask = pa.compute.greater(pa.compute.list_value_length(out["failed_rules"]), 0)
    schema = RAW_SCHEMAS[dataset]
    passed = out.filter(pa.compute.invert(bad_mask)).select(schema.names).cast(schema)
    quarantined = out.filter(bad_mask).select(QUARANTINE_SCHEMA.names).cast(QUARANTINE_SCHEMA)
    by_rule = Counter(r for rules_ in quarantined["failed_rules"].to_pylist() for r in rules_)
    return GateResult(passed, quarantined, dict(sorted(by_rule.items())))


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
