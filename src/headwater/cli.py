"""The ``headwater`` command: a thin Typer app; each command calls one function elsewhere.

Subsystems add their own sub-apps (``app.add_typer``) at the bottom of this file.
Errors derived from :class:`HeadwaterError` are printed as one line and exit non-zero.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from headwater.config import Settings, load_settings
from headwater.dates import parse_day
from headwater.errors import ConfigError, HeadwaterError

app = typer.Typer(
    name="headwater",
    help="Fresh, trustworthy customer analytics on a laptop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def main() -> None:
    """Entry point: our errors become one readable line and exit 1 (2 for usage); Typer handles the rest."""
    try:
        app()
    except HeadwaterError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2 if isinstance(exc, ConfigError) else 1)


def _settings(home: Path | None) -> Settings:
    return load_settings(home=home)


def resolve_range(day: str | None, start: str | None, end: str | None) -> tuple[date, date]:
    """``--date D`` or ``--start A --end B`` (inclusive); anything else is a usage error."""
    if day and (start or end):
        raise ConfigError("use either --date or --start/--end, not both")
    if day:
        d = parse_day(day, "--date")
        return d, d
    if not (start and end):
        raise ConfigError("give --date D, or both --start A and --end B")
    a, b = parse_day(start, "--start"), parse_day(end, "--end")
    if a > b:
        raise ConfigError(f"--start {a} is after --end {b}")
    return a, b


HomeOption = typer.Option(None, "--home", help="Headwater home (default: $HEADWATER_HOME or ./.headwater).")


@app.command()
def generate(
    customers: int = typer.Option(3000, min=1, help="Number of customers."),
    days: int = typer.Option(90, min=1, help="Number of days of history."),
    start: str = typer.Option("2024-01-01", help="First day (YYYY-MM-DD)."),
    seed: int = typer.Option(42, min=0, help="Random seed: the same seed gives byte-identical files."),
    bad_records: float = typer.Option(0.0, "--bad-records", min=0.0, max=0.5, help="Share of bad records."),
    home: Path | None = HomeOption,
) -> None:
    """Generate a synthetic world: OLTP orders, landing drops, customer events."""
    from headwater.synth import WorldSpec, generate_world

    settings = _settings(home)
    spec = WorldSpec(
        customers=customers, days=days, start=parse_day(start, "--start"), seed=seed, bad_records=bad_records
    )
    with console.status("generating..."):
        manifest = generate_world(settings, spec)
    table = Table(title=f"World written to {settings.home}", title_justify="left")
    table.add_column("dataset")
    table.add_column("rows", justify="right")
    table.add_column("bad records", justify="right")
    for name, rows in manifest.rows.items():
        table.add_row(name, f"{rows:,}", f"{manifest.bad_count(name):,}" if name in manifest.bad_records else "")
    console.print(table)


@app.command()
def run(
    day: str | None = typer.Option(None, "--date", help="Logical date D: data interval [D, D+1) UTC."),
    start: str | None = typer.Option(None, help="First logical date of a range (inclusive)."),
    end: str | None = typer.Option(None, help="Last logical date of a range (inclusive)."),
    home: Path | None = HomeOption,
) -> None:
    """Run the customer-analytics batch pipeline for one day or a range, oldest first."""
    from headwater.demo import steps_table, sum_counts
    from headwater.orchestration.run_store import RunStore
    from headwater.pipelines.daily import run_range

    first, last = resolve_range(day, start, end)
    settings = _settings(home)
    store = RunStore(settings.run_store)
    n_days = (last - first).days + 1
    try:
        with Progress(console=console, transient=n_days == 1) as progress:
            task = progress.add_task("customer_analytics", total=n_days)
            results = run_range(settings, first, last, store, on_day_done=lambda d, _c: progress.advance(task))
    finally:
        store.close()
    label = str(first) if n_days == 1 else f"{first} .. {last}"
    console.print(steps_table(sum_counts(list(results.values())), f"customer_analytics {label}: rows per step"))
    console.print(f"warehouse: {settings.warehouse}")


@app.command()
def demo(
    customers: int = typer.Option(3000, min=1, help="Customers in the demo world."),
    days: int = typer.Option(90, min=1, help="Days of history."),
    seed: int = typer.Option(42, min=0),
    home: Path | None = HomeOption,
) -> None:
    """Generate a demo world, run the whole range, and summarise what came out."""
    from headwater.demo import render_summary, run_demo
    from headwater.synth import WorldSpec

    settings = _settings(home)
    result = run_demo(settings, WorldSpec(customers=customers, days=days, seed=seed), console)
    render_summary(settings, result, console)


# --- sub-apps of other subsystems are mounted below -----------------------------------------
from headwater.quality.cli import register as _register_quality  # noqa: E402

_register_quality(app)  # schema, quarantine, quality
from headwater.stream.cli import dlq_app, events_app, stream_app  # noqa: E402

app.add_typer(events_app, name="events")
app.add_typer(stream_app, name="stream")
app.add_typer(dlq_app, name="dlq")
from headwater.orchestration.cli import register as _register_orchestration  # noqa: E402

_register_orchestration(app)  # scheduler, backfill, runs, run-show, pipelines
