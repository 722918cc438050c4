"""The daily batch steps of the customer-analytics pipeline, for one logical date D.

Data interval: ``[D 00:00, D+1 00:00)`` UTC. Each step is a plain function
``step(settings, day, run_id, store) -> StepCounts`` so an orchestrator (ours or Airflow) can run it
as a task; each reads only its declared inputs, replaces its outputs whole, and accounts its rows.

Row accounting: a row-preserving step counts rows in/out/filtered/rejected; an aggregating step
(``compute_order_metrics``) counts the input rows it consumed, since every one of them is folded
into exactly one customer's aggregate.
"""

from __future__ import annotations

import logging
import time as time_mod
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from headwater.batch.engine import DuckDBEngine, ParquetInput
from headwater.config import Settings
from headwater.domain.enums import CANCELLED
from headwater.domain.schemas import RAW_SCHEMAS
from headwater.errors import SourceNotReady
from headwater.orchestration.run_store import RunStore, StepCounts
from headwater.quality.gate import DATASET_RULES, apply_gate, rejected_lines_table
from headwater.quality.ingest import evolve_drop, evolve_orders, known_customers, record_ingest
from headwater.sources.database import extract_orders as read_source_orders
from headwater.sources.landing import drop_files, parse_jsonl
from headwater.storage.lake import Lake
from headwater.storage.warehouse import DuckDBWarehouse

log = logging.getLogger(__name__)

RAW, STAGING, QUARANTINE = "raw", "staging", "quarantine"
ORDER_STATE = "customer_order_state"
TICKET_STATE = "support_ticket_state"
CUSTOMER_METRICS = "customer_metrics"
PIPELINE_ID = "customer_analytics"
MARKETING_LOOKBACK_DAYS = 35  # 30-day window + drops that arrive a few days late

TICKET_STATE_SCHEMA = pa.schema(
    [
        ("ticket_id", pa.string()),
        ("customer_id", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("priority", pa.string()),
        ("resolved_at", pa.timestamp("us", tz="UTC")),
    ]
)

ORDER_STATE_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("total_revenue", pa.decimal128(18, 2)),
        ("order_count", pa.int64()),
        ("first_order_date", pa.date32()),
        ("last_order_date", pa.date32()),
    ]
)


def data_interval(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def window_params(day: date) -> dict[str, object]:
    """The snapshot's time parameters: D, its interval end and the starts of the 30/90-day windows
    (computed here once: interval arithmetic on TIMESTAMPTZ in SQL is per row and slow)."""
    _, end = data_interval(day)
    return {
        "as_of": day,
        "interval_end": end,
        "since_30d": end - timedelta(days=30),
        "since_90d": end - timedelta(days=90),
    }


def run_id_for(day: date, trigger: str = "manual") -> str:
    """Deterministic run id, so a re-run of the same interval overwrites the same records."""
    return f"{trigger}__{day.isoformat()}"


def _write_quarantine(lake: Lake, dataset: str, day: date, run_id: str, table: pa.Table) -> None:
    table = table.append_column("run_id", pa.array([run_id] * table.num_rows, pa.string()))
    lake.write_partition(QUARANTINE, dataset, day, table)


# --- ingest ------------------------------------------------------------------------------------
def extract_orders(settings: Settings, day: date, run_id: str, store: RunStore) -> StepCounts:
    """Source orders of the interval -> raw zone; cancelled ones filtered, bad ones quarantined.

    The source schema is checked against the orders contract first (schema evolution)."""
    started = time_mod.perf_counter()
    start, end = data_interval(day)
    source = evolve_orders(settings.source_db, store, run_id)
    raw = read_source_orders(settings.source_db, start, end, source.present, source.carried)
    cancelled = pc.fill_null(pc.equal(raw["status"], CANCELLED), False)
    kept = raw.filter(pc.invert(cancelled))
    gate = apply_gate("orders", kept, start, end, contract=source.contract, extra_columns=source.carried)
    lake = Lake(settings.lake_dir)
    lake.write_partition(RAW, "orders", day, gate.passed)
    _write_quarantine(lake, "orders", day, run_id, gate.quarantined)
    if gate.passed.num_rows:
        newest = pc.max(gate.passed["order_ts"]).as_py()
        store.advance_watermark("source.orders.order_ts", newest.strftime("%Y-%m-%d %H:%M:%S"))
    record_ingest(store, run_id, day, "orders", kept, gate, seconds=time_mod.perf_counter() - started)
    return StepCounts(
        "extract_orders",
        rows_in=raw.num_rows,
        rows_out=gate.passed.num_rows,
        filtered=raw.num_rows - kept.num_rows,
        rejected=gate.quarantined.num_rows,
    )


def _ingest_drop(dataset: str, settings: Settings, day: date, run_id: str, store: RunStore) -> StepCounts:
    started = time_mod.perf_counter()
    start, end = data_interval(day)
    parsed = parse_jsonl(drop_files(settings.landing_dir, dataset, day), tuple(DATASET_RULES[dataset].typed))
    plan = evolve_drop(dataset, parsed, store, run_id)
    gate = apply_gate(
        dataset,
        parsed.table,
        start,
        end,
        contract=plan.contract,
        extra_columns=plan.carried,
        known_customers=known_customers(settings.source_db, parsed.table["customer_id"]),
    )
    quarantined = pa.concat_tables([rejected_lines_table(parsed.rejected), gate.quarantined])
    lake = Lake(settings.lake_dir)
    lake.write_partition(RAW, dataset, day, gate.passed)
    _write_quarantine(lake, dataset, day, run_id, quarantined)
    rejected = Counter(r.reason for r in parsed.rejected)
    record_ingest(store, run_id, day, dataset, parsed.table, gate, rejected, time_mod.perf_counter() - started)
    return StepCounts(
        f"ingest_{dataset}", rows_in=parsed.lines, rows_out=gate.passed.num_rows, rejected=quarantined.num_rows
    )


def ingest_support_tickets(settings: Settings, day: date, run_id: str, store: RunStore) -> StepCounts:
    """The day's support-ticket drop -> raw zone (waits for its ``_SUCCESS`` flag)."""
    return _ingest_drop("support_tickets", settings, day, run_id, store)


def ingest_marketing_events(settings: Settings, day: date, run_id: str, store: RunStore) -> StepCounts:
    """The day's marketing-event drop -> raw zone (waits for its ``_SUCCESS`` flag)."""
    return _ingest_drop("marketing_events", settings, day, run_id, store)


# --- transform ---------------------------------------------------------------------------------
def _state_is_fresh(lake: Lake, raw_dataset: str, state: str, day: date) -> bool:
    """True when yesterday's state exists and no raw partition up to yesterday was rewritten after it."""
    prev = day - timedelta(days=1)
    written = lake.modified_ns(STAGING, state, prev, prev).get(prev)
    stamps = lake.modified_ns(RAW, raw_dataset, end=prev)
    return written is not None and bool(stamps) and max(stamps.values()) <= written


def _fold_state(
    lake: Lake, raw_dataset: str, state: str, state_schema: pa.Schema, day: date, params: dict[str, object]
) -> tuple[pa.Table, int]:
    """Run the state transform ``state`` for ``day``: yesterday's state + today's raw rows when the
    state is fresh, else every raw partition up to ``day`` over an empty state (one SQL definition for
    both). Writes the state to staging; returns it and the number of raw rows folded in."""
    raw_schema = RAW_SCHEMAS[raw_dataset]
    if _state_is_fresh(lake, raw_dataset, state, day):
        prev = day - timedelta(days=1)
        previous: ParquetInput | pa.Table = ParquetInput(tuple(lake.files(STAGING, state, prev, prev)), state_schema)
        rows = ParquetInput(tuple(lake.files(RAW, raw_dataset, day, day)), raw_schema)
    else:
        previous = pa.Table.from_batches([], state_schema)  # Schema.empty_table() would import pandas
        rows = ParquetInput(tuple(lake.files(RAW, raw_dataset, end=day)), raw_schema)
    engine = DuckDBEngine()
    try:
        table = engine.run(state, {"previous": previous, "rows": rows}, params)
        folded = engine.count("rows")
    finally:
        engine.close()
    table = table.cast(state_schema)
    lake.write_partition(STAGING, state, day, table)
    return table, folded


def compute_order_metrics(settings: Settings, day: date, run_id: str, store: RunStore) -> StepCounts:
    """Per-customer order aggregates as of D: yesterday's state + today's orders, or a full recompute."""
    lake = Lake(settings.lake_dir)
    if day not in lake.modified_ns(RAW, "orders", day, day):
        raise SourceNotReady(f"no raw orders for {day}: run extract_orders first", dataset="orders")
    _, consumed = _fold_state(lake, "orders", ORDER_STATE, ORDER_STATE_SCHEMA, day, {"as_of": day})
    return StepCounts("compute_order_metrics", rows_in=consumed, rows_out=consumed)


def load_warehouse(settings: Settings, day: date, run_id: str, store: RunStore) -> StepCounts:
    """Enrich D's order state with support and marketing activity into D's customer-metrics snapshot,
    and replace D's partitions of ``customer_metrics`` and ``daily_sales`` in one transaction.

    The snapshot is computed inside the warehouse's own DuckDB session and inserted from there: it
    is never serialised between steps (staging it as Parquet and reading it back cost about as much
    as computing and loading it). The ticket state, needed tomorrow, is written to staging."""
    lake = Lake(settings.lake_dir)
    params = window_params(day)
    order_state = ParquetInput(tuple(lake.files(STAGING, ORDER_STATE, day, day)), ORDER_STATE_SCHEMA)
    if not order_state.files:
        raise SourceNotReady(f"no order state for {day}: run compute_order_metrics first")
    ticket_params = {k: params[k] for k in ("interval_end", "since_90d")}
    tickets, _ = _fold_state(lake, "support_tickets", TICKET_STATE, TICKET_STATE_SCHEMA, day, ticket_params)
    marketing = ParquetInput(
        tuple(lake.files(RAW, "marketing_events", day - timedelta(MARKETING_LOOKBACK_DAYS), day)),
        RAW_SCHEMAS["marketing_events"],
    )
    orders = ParquetInput(tuple(lake.files(RAW, "orders", day, day)), RAW_SCHEMAS["orders"])
    warehouse = DuckDBWarehouse(settings.warehouse)
    engine = warehouse.engine()
    try:
        snapshot = engine.relation(
            CUSTOMER_METRICS,
            {"order_state": order_state, "tickets": tickets, "marketing": marketing},
            params,
        )
        sales = engine.relation("daily_sales", {"orders": orders, "order_state": order_state}, {"as_of": day})
        customers_in = engine.count("order_state")
        loaded = warehouse.replace_partitions(day, {"customer_metrics": snapshot, "daily_sales": sales})
    finally:
        engine.close()
        warehouse.close()
    return StepCounts("load_warehouse", rows_in=customers_in, rows_out=loaded["customer_metrics"])


def validate_quality(settings: Settings, day: date, run_id: str, store: RunStore) -> StepCounts:
    """Output checks, batch monitors and the quality score of D (see :mod:`headwater.quality.validate`)."""
    from headwater.quality.validate import validate_day

    outcome = validate_day(settings, store, day, run_id)
    return StepCounts("validate_quality", rows_in=len(outcome.checks), rows_out=len(outcome.checks))


Step = Callable[[Settings, date, str, RunStore], StepCounts]

STEPS: tuple[Step, ...] = (
    extract_orders,
    ingest_support_tickets,
    ingest_marketing_events,
    compute_order_metrics,
    load_warehouse,
    validate_quality,
)


def run_day(settings: Settings, day: date, store: RunStore, run_id: str | None = None) -> list[StepCounts]:
    """Run every step for ``day`` in order (the sequential runner; the scheduler runs them as a DAG)."""
    run_id = run_id or run_id_for(day)
    start, end = data_interval(day)
    store.start_run(run_id, PIPELINE_ID, day.isoformat(), start.isoformat(), end.isoformat())
    results = []
    try:
        for step in STEPS:
            counts = step(settings, day, run_id, store)
            store.record_step(run_id, counts)
            results.append(counts)
    except Exception as exc:
        store.finish_run(run_id, "failed", str(exc))
        raise
    store.finish_run(run_id, "success")
    return results


def run_range(
    settings: Settings,
    start: date,
    end: date,
    store: RunStore,
    on_day_done: Callable[[date, list[StepCounts]], None] | None = None,
) -> dict[date, list[StepCounts]]:
    """Run ``start..end`` inclusive, oldest first (each day's state builds on the one before)."""
    out = {}
    day = start
    while day <= end:
        out[day] = run_day(settings, day, store)
        if on_day_done:
            on_day_done(day, out[day])
        day += timedelta(days=1)
    return out
