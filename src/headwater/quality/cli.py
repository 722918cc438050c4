"""CLI of the quality layer: ``schema``, ``quarantine`` and ``quality`` sub-apps (mounted by :func:`register`)."""

from __future__ import annotations

import getpass
import json
from datetime import date, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from headwater.config import Settings, load_settings
from headwater.dates import parse_day
from headwater.errors import ConfigError
from headwater.orchestration.run_store import RunStore

console = Console()
_HOME = typer.Option(None, "--home", help="Headwater home (default: $HEADWATER_HOME or ./.headwater).")

schema_app = typer.Typer(help="Data contracts and schema evolution.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Quarantined rows: list, show, release.", no_args_is_help=True)
quality_app = typer.Typer(help="Quality checks, scores and the report.", no_args_is_help=True)

_STATUS_STYLE = {
    "recorded": "green",
    "approved": "green",
    "pending": "yellow",
    "blocked": "red",
    "ok": "green",
    "warn": "yellow",
    "critical": "red",
    "skipped": "dim",
    "warmup": "dim",
}


def _styled(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def _settings(home: Path | None) -> Settings:
    return load_settings(home=home)


# --- schema -------------------------------------------------------------------------------------
@schema_app.command("show")
def schema_show(dataset: str = typer.Argument(..., help="Dataset name, e.g. orders.")) -> None:
    """Print a dataset's contract: columns, types, nullability, enums, ranges, key, rules, freshness."""
    from headwater.quality.contracts import contract

    c = contract(dataset)
    table = Table(title=f"{c.dataset} ({c.kind}) v{c.version}: {c.doc}", title_justify="left")
    for col in ("column", "type", "nullable", "enum / range", "doc"):
        table.add_column(col)
    for col in c.columns:
        dom = ", ".join(col.enum) if col.enum else ""
        if col.min is not None or col.max is not None:
            dom = f"[{'' if col.min is None else col.min}, {'' if col.max is None else col.max}]"
        table.add_row(col.name, col.type, "yes" if col.nullable else "no", dom, col.doc)
    console.print(table)
    console.print(f"key: {', '.join(c.key)}   freshness: {c.freshness} on {c.freshness_column}")
    for r in c.rules:
        console.print(f"rule [bold]{r.name}[/]: violated when {r.violated}")


@schema_app.command("history")
def schema_history_cmd(
    dataset: str = typer.Argument(..., help="Dataset name, e.g. orders."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    home: Path | None = _HOME,
) -> None:
    """Every schema change seen on ingest, with its status and decision."""
    from headwater.quality.contracts import contract
    from headwater.quality.store import schema_history

    contract(dataset)
    store = RunStore(_settings(home).run_store)
    try:
        changes = schema_history(store, dataset)
    finally:
        store.close()
    if as_json:
        console.print_json(json.dumps([c.__dict__ for c in changes]))
        return
    if not changes:
        console.print(f"no schema changes recorded for {dataset}")
        return
    table = Table(title=f"schema history of {dataset}", title_justify="left")
    for col in ("first seen", "change id", "change", "status", "decided by", "decided at", "reason"):
        table.add_column(col)
    for c in changes:
        table.add_row(
            (c.first_seen_at or "")[:19],
            c.change_id,
            c.describe(),
            _styled(c.status),
            c.decided_by or "",
            (c.decided_at or "")[:19],
            c.reason or "",
        )
    console.print(table)


@schema_app.command("approve")
def schema_approve(
    dataset: str = typer.Argument(..., help="Dataset name."),
    change_id: str = typer.Argument(..., help="The change id named by the error (see `schema history`)."),
    reason: str = typer.Option(..., "--reason", help="Why the change is accepted (kept in the history)."),
    by: str | None = typer.Option(None, "--by", help="Who approves (default: the current user)."),
    home: Path | None = _HOME,
) -> None:
    """Approve a pending schema change (e.g. a removed column); the next run proceeds."""
    from headwater.quality.evolution import approve_change

    store = RunStore(_settings(home).run_store)
    try:
        change = approve_change(store, dataset, change_id, by or getpass.getuser(), reason)
    finally:
        store.close()
    console.print(
        f"[green]approved[/] {dataset} {change.change_id}: {change.describe()} "
        f"(by {change.decided_by} at {change.decided_at}: {change.reason})"
    )


# --- quarantine ---------------------------------------------------------------------------------
@quarantine_app.command("list")
def quarantine_list(
    dataset: str | None = typer.Option(None, "--dataset", help="Only this dataset."),
    start: str | None = typer.Option(None, "--start", help="First date (inclusive)."),
    end: str | None = typer.Option(None, "--end", help="Last date (inclusive)."),
    home: Path | None = _HOME,
) -> None:
    """Quarantined rows per dataset and date, with the count per failed rule."""
    from headwater.quality.quarantine import quarantine_summary

    rows = quarantine_summary(
        _settings(home),
        dataset,
        parse_day(start, "--start") if start else None,
        parse_day(end, "--end") if end else None,
    )
    rows = [r for r in rows if r["rows"]]
    if not rows:
        console.print("the quarantine is empty")
        return
    table = Table(title="quarantine", title_justify="left")
    for col in ("date", "dataset", "rows", "failed rules"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for r in rows:
        rules = ", ".join(f"{k} {v}" for k, v in r["by_rule"].items())
        table.add_row(str(r["date"]), r["dataset"], f"{r['rows']:,}", rules)
    console.print(table)
    console.print(f"total: {sum(r['rows'] for r in rows):,} rows")


@quarantine_app.command("show")
def quarantine_show(
    dataset: str = typer.Argument(..., help="Dataset name."),
    day: str = typer.Option(..., "--date", help="The partition's date."),
    rule: str | None = typer.Option(None, "--rule", help="Only rows that failed this rule."),
    limit: int = typer.Option(20, "--limit", min=1),
    home: Path | None = _HOME,
) -> None:
    """The quarantined rows of one dataset and date: location, failed rules, original record."""
    from headwater.quality.quarantine import quarantine_rows

    rows = quarantine_rows(_settings(home), dataset, parse_day(day, "--date"), rule, limit)
    if not rows:
        console.print(f"no quarantined {dataset} rows on {day}" + (f" failing {rule}" if rule else ""))
        return
    table = Table(title=f"quarantined {dataset} on {day}", title_justify="left", show_lines=True)
    for col in ("where", "failed rules", "record", "run"):
        table.add_column(col, overflow="fold")
    for r in rows:
        where = f"{Path(r['source']).name}:{r['line']}" if r["line"] is not None else r["source"]
        record = r["record"] if isinstance(r["record"], str) else json.dumps(r["record"])
        table.add_row(where, "\n".join(r["failed_rules"]), record, r["run_id"] or "")
    console.print(table)


@quarantine_app.command("release")
def quarantine_release(
    dataset: str = typer.Argument(..., help="Dataset name."),
    day: str = typer.Option(..., "--date", help="The partition to re-ingest."),
    by: str | None = typer.Option(None, "--by", help="Who releases (default: the current user)."),
    home: Path | None = _HOME,
) -> None:
    """Re-ingest a day after its source was fixed: rows that now pass leave the quarantine."""
    from headwater.quality.quarantine import release

    settings = _settings(home)
    d = parse_day(day, "--date")
    store = RunStore(settings.run_store)
    try:
        r = release(settings, store, dataset, d, by or getpass.getuser())
    finally:
        store.close()
    console.print(
        f"{dataset} {d}: re-ingested, {r.released:,} row(s) released "
        f"(quarantined {r.quarantined_before:,} -> {r.quarantined_after:,}; {r.passed_after:,} in the raw zone)"
    )
    console.print(
        f"downstream: re-run `headwater run --start {d} --end <last day>` so snapshots from {d} on include them"
    )


# --- quality --------------------------------------------------------------------------------------
def _window(day: str | None, last: int | None, settings: Settings) -> tuple[date, date]:
    from headwater.quality.report import latest_day

    if day and last:
        raise ConfigError("use either --date or --last, not both")
    if day:
        d = parse_day(day, "--date")
        return d, d
    newest = latest_day(settings)
    if newest is None:
        raise ConfigError("no quality history yet: run the pipeline first")
    return newest - timedelta(days=(last or 1) - 1), newest


@quality_app.command("report")
def quality_report(
    day: str | None = typer.Option(None, "--date", help="Report one logical date."),
    last: int | None = typer.Option(None, "--last", min=1, help="Report the last N logical dates."),
    out: Path | None = typer.Option(None, "--out", help="HTML file (default: HOME/reports/quality-....html)."),
    home: Path | None = _HOME,
) -> None:
    """Print a summary and write a self-contained HTML report (trends, bands, drift, scores, quarantine)."""
    from headwater.quality.report import build_report, render_console, write_html

    settings = _settings(home)
    first, newest = _window(day, last, settings)
    report = build_report(settings, first, newest)
    render_console(report, console)
    path = write_html(report, out or settings.home / "reports" / f"quality-{first}_{newest}.html")
    console.print(f"HTML report: {path}")


@quality_app.command("check")
def quality_check(
    day: str = typer.Option(..., "--date", help="Logical date to (re)check."),
    home: Path | None = _HOME,
) -> None:
    """Run the output checks and batch monitors for a date already loaded, and print the score."""
    from headwater.pipelines.daily import run_id_for
    from headwater.quality.validate import validate_day

    settings = _settings(home)
    d = parse_day(day, "--date")
    store = RunStore(settings.run_store)
    try:
        outcome = validate_day(settings, store, d, run_id_for(d), raise_on_failure=False)
    finally:
        store.close()
    table = Table(title=f"quality of {d}: score {outcome.score:.3f} ({outcome.level})", title_justify="left")
    for col in ("check", "dimension", "status", "observed", "expected", "detail"):
        table.add_column(col)
    for c in outcome.checks:
        expected = "" if c.low is None and c.high is None else f"[{_num(c.low)}, {_num(c.high)}]"
        table.add_row(c.name, c.dimension, _styled(c.status), _num(c.observed), expected, c.detail)
    console.print(table)


def _num(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"


def register(app: typer.Typer) -> None:
    app.add_typer(schema_app, name="schema")
    app.add_typer(quarantine_app, name="quarantine")
    app.add_typer(quality_app, name="quality")
