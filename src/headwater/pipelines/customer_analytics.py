"""The flagship pipeline ``customer_analytics``, written with the public orchestration API.

::

    wait_for_orders ──────────── extract_orders ──────── compute_order_metrics ─┐
    wait_for_support_tickets ─── ingest_support_tickets ────────────────────────┼─ load_warehouse
    wait_for_marketing_events ── ingest_marketing_events ───────────────────────┘        │
                          update_feature_store ── validate_output_quality ── notify_downstream

Each batch step is the plain function of :mod:`headwater.pipelines.daily` adapted to a task; the
sensors wait for the interval's data (orders past the interval end in the source database, the
``_SUCCESS`` flags of the landing drops). Runs are one per day, oldest first, and
``compute_order_metrics`` also waits for the previous day's (``depends_on_past``): each day's order
state builds on the one before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from headwater.config import Settings
from headwater.errors import SourceError
from headwater.orchestration import (
    LandingFlagSensor,
    NotifyDownstream,
    Pipeline,
    RunStore,
    SqlSensor,
    StepCounts,
    TaskContext,
    TaskOptions,
)
from headwater.pipelines import daily
from headwater.storage.feature_store import update_feature_store
from headwater.storage.warehouse import DuckDBWarehouse

PIPELINE_ID = "customer_analytics"
SOURCE_COMPLETE_PARAM = "source_complete_until"  # run param: the source is known complete up to here


class OrdersReady(SqlSensor):
    """Ready when the source holds an order at or after the interval end (it has moved past the
    interval), or when the run says the source is complete (a replayed, finished synthetic world)."""

    def poke(self, ctx: TaskContext) -> tuple[bool, str]:
        declared = ctx.params.get(SOURCE_COMPLETE_PARAM)
        if declared is not None and ctx.data_interval_end <= declared:
            return True, f"source declared complete until {declared.isoformat()}"
        return super().poke(ctx)


def batch_step(step: Callable[[Settings, date, str, RunStore], StepCounts]) -> Callable[[TaskContext], StepCounts]:
    """Adapt a ``daily`` step to a task callable: the context provides day, run id and store."""

    def run(ctx: TaskContext) -> StepCounts:
        return step(ctx.settings, ctx.day, ctx.run_id, ctx.store)

    run.__name__ = step.__name__
    run.__doc__ = step.__doc__
    return run


# --- validate output quality: basic reconciliation (the quality layer deepens it) ----------------
@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


def _source_sales(settings: Settings, day: date) -> tuple[int, Decimal]:
    start, end = daily.data_interval(day)
    con = sqlite3.connect(f"{settings.source_db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        n, revenue = con.execute(
            "SELECT count(*), CAST(coalesce(sum(total_amount), 0) AS TEXT) FROM orders "
            "WHERE order_ts >= ? AND order_ts < ? AND (status IS NULL OR status <> 'cancelled')",
            (start.strftime("%Y-%m-%d %H:%M:%S"), end.strftime("%Y-%m-%d %H:%M:%S")),
        ).fetchone()
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read source orders for reconciliation: {exc}") from exc
    finally:
        con.close()
    return int(n), Decimal(revenue).quantize(Decimal("0.01"))


def reconciliation_checks(settings: Settings, day: date, store: RunStore, run_id: str) -> list[CheckResult]:
    """The output checks of ``day``; the quality layer appends its own to this list of results."""
    wh = DuckDBWarehouse(settings.warehouse, read_only=True)
    try:
        m = wh.query(
            "SELECT count(*) AS n, count(DISTINCT customer_id) AS customers, "
            "count(*) FILTER (WHERE total_revenue < 0 OR estimated_clv < 0 OR avg_order_value < 0) AS negative "
            "FROM customer_metrics WHERE snapshot_date = ?",
            [day],
        ).to_pylist()[0]
        sales = wh.query("SELECT order_count, revenue FROM daily_sales WHERE sales_date = ?", [day]).to_pylist()
    finally:
        wh.close()
    steps = {c.step: c for c in store.step_counts(run_id)}
    quarantined = steps["extract_orders"].rejected if "extract_orders" in steps else 0
    src_orders, src_revenue = _source_sales(settings, day)
    checks = [
        CheckResult("one_row_per_customer", m["n"] == m["customers"], f"{m['n']} rows, {m['customers']} customers"),
        CheckResult("non_negative_money", m["negative"] == 0, f"{m['negative']} rows with negative revenue/CLV"),
        CheckResult("daily_sales_present", len(sales) == 1, f"{len(sales)} daily_sales rows for {day}"),
    ]
    if len(sales) == 1:
        loaded = sales[0]["order_count"]
        checks.append(
            CheckResult(
                "orders_reconcile",
                loaded + quarantined == src_orders,
                f"source {src_orders} non-cancelled orders = {loaded} loaded + {quarantined} quarantined",
            )
        )
        if quarantined == 0:  # quarantined rows may lack a valid amount: compare revenue when none were
            checks.append(
                CheckResult(
                    "revenue_reconciles",
                    Decimal(sales[0]["revenue"]) == src_revenue,
                    f"source revenue {src_revenue} vs daily_sales {sales[0]['revenue']}",
                )
            )
    return checks


def validate_output_quality(ctx: TaskContext) -> dict[str, Any]:
    """The quality layer's output checks, monitors and score (:func:`headwater.quality.validate.validate_day`):
    warehouse contracts, exact revenue/order reconciliation with the source (counting only the
    quarantined rows of the interval, so it also holds on dirty sources, where the basic
    ``reconciliation_checks`` above over-count rows attributed by ``updated_at``), consistency with
    the previous snapshot. A failed output check fails the run (permanently); monitors alert only."""
    from headwater.quality.validate import validate_day

    outcome = validate_day(ctx.settings, ctx.store, ctx.day, ctx.run_id)
    return {"checks_passed": len(outcome.checks), "quality_score": outcome.score, "quality_level": outcome.level}


def feature_store_task(ctx: TaskContext) -> StepCounts:
    """Refresh the offline feature table from the day's customer_metrics snapshot."""
    return update_feature_store(ctx.settings, ctx.day)


# --- the DAG ---------------------------------------------------------------------------------------
def build_pipeline(
    *,
    start_date: date = date(2024, 1, 1),
    sensor_timeout: timedelta = timedelta(hours=6),
    poke_interval: timedelta = timedelta(minutes=5),
    notify_url: str | None = None,
) -> Pipeline:
    """The flagship DAG (a function, so tests and demos can build variants)."""
    p = Pipeline(
        PIPELINE_ID,
        schedule="@daily",
        start_date=start_date,
        catchup=True,
        max_active_runs=1,  # 2 overlaps days but gained nothing measurable on 2 cores
        default_options=TaskOptions(
            retries=3, retry_delay=timedelta(seconds=30), max_retry_delay=timedelta(minutes=10), jitter=0.1,
            execution_timeout=timedelta(hours=1),
        ),
        tags=("flagship", "batch"),
        sla=timedelta(hours=6),
        description="Daily customer metrics, CLV and churn risk -> warehouse + feature store.",
    )
    sensing = {"poke_interval": poke_interval, "timeout": sensor_timeout}
    wait_orders = p.add(
        OrdersReady(
            "wait_for_orders",
            db=lambda s: s.source_db,
            sql="SELECT EXISTS (SELECT 1 FROM orders WHERE order_ts >= ?)",
            params=lambda ctx: [ctx.data_interval_end.strftime("%Y-%m-%d %H:%M:%S")],
            inputs=["source.orders"],
            **sensing,
        )
    )
    wait_tickets = p.add(LandingFlagSensor("wait_for_support_tickets", dataset="support_tickets", **sensing))
    wait_marketing = p.add(LandingFlagSensor("wait_for_marketing_events", dataset="marketing_events", **sensing))

    def task(step: Callable[..., StepCounts], inputs: list[str], outputs: list[str]) -> Any:
        return p.task(batch_step(step), inputs=inputs, outputs=outputs)

    extract = task(daily.extract_orders, ["source.orders"], ["raw.orders", "quarantine.orders"])
    tickets = task(
        daily.ingest_support_tickets, ["landing.support_tickets"], ["raw.support_tickets", "quarantine.support_tickets"]
    )
    marketing = task(
        daily.ingest_marketing_events,
        ["landing.marketing_events"],
        ["raw.marketing_events", "quarantine.marketing_events"],
    )
    # the order state of D folds D's orders into D-1's state: it needs the previous run's to be done
    metrics = p.task(
        batch_step(daily.compute_order_metrics), inputs=["raw.orders", "staging.customer_order_state"],
        outputs=["staging.customer_order_state"], depends_on_past=True,
    )
    # enrich the order state with support and marketing activity, and load D's partitions
    load = task(
        daily.load_warehouse,
        ["staging.customer_order_state", "staging.support_ticket_state", "raw.support_tickets",
         "raw.marketing_events", "raw.orders"],
        ["staging.support_ticket_state", "warehouse.customer_metrics", "warehouse.daily_sales"],
    )
    features = p.task(
        feature_store_task, task_id="update_feature_store", inputs=["warehouse.customer_metrics"],
        outputs=["features.customer_features"],
    )
    validate = p.task(
        validate_output_quality, inputs=["warehouse.customer_metrics", "warehouse.daily_sales", "source.orders"],
        retries=0,
    )
    notify = p.add(NotifyDownstream("notify_downstream", url=notify_url))

    wait_orders >> extract >> metrics
    wait_tickets >> tickets
    wait_marketing >> marketing
    [metrics, tickets, marketing] >> load >> features >> validate >> notify
    return p


customer_analytics = build_pipeline()


def scheduler_runner(
    settings: Settings, start: date, end: date, on_day: Callable[[date], None]
) -> list[list[StepCounts]]:
    """The demo's range runner: the flagship through the scheduler with catchup (see ``headwater demo``).

    The synthetic world is complete, so runs say so (no waiting for orders after the last day)."""
    from datetime import UTC, datetime

    from headwater.orchestration.backfill import run_pipeline_range

    store = RunStore(settings.run_store)
    try:
        complete = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        report = run_pipeline_range(
            settings, customer_analytics, start, end, store=store,
            params={SOURCE_COMPLETE_PARAM: complete},
            rerun=True,  # the demo regenerates its world: earlier runs of these dates are obsolete
            progress=lambda r: on_day(r.logical_date.date()),
        )
        if report.failed:
            from headwater.errors import HeadwaterError

            first = store.query("SELECT run_id, error FROM runs WHERE run_id = ?", (report.failed[0],))[0]
            raise HeadwaterError(f"run {first['run_id']} failed: {first['error']} (see `headwater run-show`)")
        return [store.step_counts(rid) for rid in sorted(report.finished)]
    finally:
        store.close()
