"""``headwater demo``: generate a small world, run the pipeline over it, and show what came out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from headwater.config import Settings
from headwater.orchestration.run_store import RunStore, StepCounts
from headwater.pipelines.customer_analytics import scheduler_runner
from headwater.pipelines.daily import run_range
from headwater.storage.warehouse import DuckDBWarehouse
from headwater.stream import demo_run
from headwater.synth import WorldManifest, WorldSpec, generate_world


@dataclass
class DemoResult:
    manifest: WorldManifest
    start: date
    end: date
    totals: dict[str, StepCounts] = field(default_factory=dict)
    stream: dict = field(default_factory=dict)  # headwater.stream.demo_run's summary


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def sum_counts(per_day: list[list[StepCounts]]) -> dict[str, StepCounts]:
    """Totals per step over a range of days (the invariant holds for sums too)."""
    totals: dict[str, list[int]] = {}
    for counts in per_day:
        for c in counts:
            t = totals.setdefault(c.step, [0, 0, 0, 0])
            for i, v in enumerate((c.rows_in, c.rows_out, c.filtered, c.rejected)):
                t[i] += v
    return {step: StepCounts(step, *vals) for step, vals in totals.items()}


RangeRunner = Callable[[Settings, date, date, Callable[[date], None]], list[list[StepCounts]]]


def sequential_runner(settings: Settings, start: date, end: date, on_day: Callable[[date], None]):
    store = RunStore(settings.run_store)
    try:
        results = run_range(settings, start, end, store, on_day_done=lambda d, _c: on_day(d))
    finally:
        store.close()
    return list(results.values())


def run_demo(
    settings: Settings,
    spec: WorldSpec,
    console: Console,
    runner: RangeRunner = scheduler_runner,  # the flagship DAG through the scheduler, with catchup
) -> DemoResult:
    with _progress(console) as progress:
        gen = progress.add_task("generating the world", total=100)
        manifest = generate_world(
            settings, spec, progress=lambda _stage, frac: progress.update(gen, completed=round(frac * 100))
        )
        progress.update(gen, completed=100)
        start, end = spec.start, spec.start + timedelta(days=spec.days - 1)
        days = progress.add_task("running customer_analytics", total=spec.days)
        per_day = runner(settings, start, end, lambda _d: progress.advance(days))
        events = progress.add_task("streaming customer events", total=1)
        stream = demo_run(settings, settings.events_file)
        progress.update(events, completed=1)
    return DemoResult(manifest, start, end, sum_counts(per_day), stream)


def steps_table(totals: dict[str, StepCounts], title: str = "Rows per step") -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("step", "in", "out", "filtered", "rejected"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for c in totals.values():
        table.add_row(c.step, f"{c.rows_in:,}", f"{c.rows_out:,}", f"{c.filtered:,}", f"{c.rejected:,}")
    return table


def _customers_table(title: str, rows: list[dict]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("customer", "orders", "revenue", "CLV", "last order", "churn risk"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(
            str(r["customer_id"]),
            str(r["order_count"]),
            f"{r['total_revenue']:,.2f}",
            f"{r['estimated_clv']:,.2f}",
            f"{r['last_order_date']} ({r['days_since_last_order']}d)",
            f"{r['churn_risk']:.2f} {r['churn_risk_level']}",
        )
    return table


def render_summary(settings: Settings, result: DemoResult, console: Console) -> None:
    m = result.manifest
    world = Table.grid(padding=(0, 2))
    world.add_row("customers", f"{m.rows.get('customers', 0):,}")
    for key in ("orders", "support_tickets", "marketing_events", "customer_events"):
        if key in m.rows:
            world.add_row(key.replace("_", " "), f"{m.rows[key]:,}")
    world.add_row("days", f"{result.start} .. {result.end}")
    console.print(Panel(world, title="The demo world", expand=False))
    console.print(steps_table(result.totals, "Rows per step (whole range; in = out + filtered + rejected)"))

    wh = DuckDBWarehouse(settings.warehouse, read_only=True)
    try:
        cols = (
            "customer_id, order_count, total_revenue, estimated_clv, last_order_date, days_since_last_order, "
            "churn_risk, churn_risk_level, tickets_30d"
        )
        top = wh.query(
            f"SELECT {cols} FROM customer_metrics WHERE snapshot_date = ? "  # noqa: S608 (fixed column list)
            "ORDER BY estimated_clv DESC, customer_id LIMIT 5",
            [result.end],
        ).to_pylist()
        lapsed = wh.query(
            f"SELECT {cols} FROM customer_metrics WHERE snapshot_date = ? "  # noqa: S608
            "ORDER BY days_since_last_order DESC, estimated_clv DESC, customer_id LIMIT 5",
            [result.end],
        ).to_pylist()
        levels = wh.query(
            "SELECT churn_risk_level, count(*) AS n FROM customer_metrics WHERE snapshot_date = ? "
            "GROUP BY ALL ORDER BY n DESC",
            [result.end],
        ).to_pylist()
        sales = wh.query(
            "SELECT sum(revenue) AS revenue, sum(order_count) AS orders FROM daily_sales "
            "WHERE sales_date BETWEEN ? AND ?",
            [result.start, result.end],
        ).to_pylist()[0]
    finally:
        wh.close()
    console.print(_customers_table(f"Top customers by estimated CLV as of {result.end}", top))
    console.print(_customers_table("Longest since their last order", lapsed))
    risk = ", ".join(f"{r['churn_risk_level']}: {r['n']:,}" for r in levels)
    console.print(f"Churn risk as of {result.end}: {risk}")
    console.print(f"Revenue over the range: {sales['revenue'] or 0:,.2f} from {sales['orders'] or 0:,} orders")

    if result.stream:
        render_stream(result.stream, console)

    where = Table.grid(padding=(0, 2))
    for label, path in (
        ("OLTP source (SQLite)", settings.source_db),
        ("landing drops", settings.landing_dir),
        ("customer events", settings.events_file),
        ("lake: raw / staging / quarantine", settings.lake_dir),
        ("warehouse (DuckDB)", settings.warehouse),
        ("run store (SQLite)", settings.run_store),
        ("event log, alerts, DLQ (SQLite)", result.stream.get("log", "")),
    ):
        where.add_row(label, str(path))
    console.print(Panel(where, title="Where everything lives", expand=False))
    nxt = Table.grid(padding=(0, 2))
    nxt.add_row(f"headwater run --date {result.end}", "re-run one day (idempotent: same rows, same files)")
    nxt.add_row(
        f"headwater run --start {result.end - timedelta(days=6)} --end {result.end}", "re-run a week as a backfill"
    )
    nxt.add_row("headwater runs --last 5", "the scheduler's runs, with states and row counts")
    nxt.add_row("headwater events tail customer_alerts --from-beginning", "every real-time alert")
    nxt.add_row("headwater quality report --last 30", "quality scores, monitors and an HTML report")
    nxt.add_row("headwater generate --customers 20000 --days 365 --bad-records 0.01", "a bigger, dirtier world")
    console.print(Panel(Group(nxt), title="Try next", expand=False))


def render_stream(stream: dict, console: Console) -> None:
    """The speed layer's part of the summary: what went through the processor and what it raised."""
    counts = (
        f"{stream['events_in']:,} events in = {stream['processed']:,} processed + "
        f"{stream['dead_lettered']:,} dead-lettered + {stream['late']:,} late"
        + (" (conserved)" if stream["conserved"] else " [bold red](NOT conserved)[/]")
    )
    by_type = ", ".join(f"{k}: {v:,}" for k, v in stream["alerts_by_type"].items()) or "none"
    table = Table(title=f"Real-time alerts: {stream['alerts']:,} ({by_type})", title_justify="left")
    for col in ("alert", "customer", "event time", "reason"):
        table.add_column(col, overflow="fold")
    for alert in stream["sample_alerts"]:
        table.add_row(alert["alert_type"], str(alert["customer_id"]), alert["event_timestamp"], alert["reason"])
    console.print(counts)
    console.print(table)
    if stream["dead_letter_reasons"]:
        reasons = ", ".join(f"{k} ({v})" for k, v in stream["dead_letter_reasons"].items())
        console.print(f"Dead-letter reasons: {reasons}")
