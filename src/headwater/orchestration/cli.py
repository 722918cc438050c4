"""CLI of the orchestrator: ``scheduler``, ``backfill``, ``runs``, ``run-show``, ``pipelines``.

Mounted on the main app with :func:`register`; each command parses arguments and calls one function.
"""

from __future__ import annotations

import json
import signal
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from headwater.config import load_settings
from headwater.errors import ConfigError
from headwater.orchestration.state import OrchestrationStore

console = Console()
_HOME = typer.Option(None, "--home", help="Headwater home (default: $HEADWATER_HOME or ./.headwater).")
_FILES = typer.Option(None, "--pipelines", help="Extra pipeline file(s) to load (repeatable).")
_STATE_STYLE = {
    "success": "green", "failed": "red", "upstream_failed": "red", "running": "cyan", "queued": "blue",
    "scheduled": "blue", "up_for_retry": "yellow", "up_for_reschedule": "yellow", "skipped": "dim",
    "met": "green", "missed": "red", "pending": "yellow",
}


def _styled(state: str | None) -> str:
    if not state:
        return "-"
    style = _STATE_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


def parse_moment(value: str, option: str) -> datetime | date:
    """``YYYY-MM-DD`` (a date) or an ISO datetime (naive means UTC)."""
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option} {value!r} is not a date or datetime (YYYY-MM-DD[THH:MM])") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def setup_logging(level: str) -> None:
    """Task and scheduler logs to stderr through Rich (so they print above progress bars)."""
    import logging

    from rich.logging import RichHandler

    if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"--log-level {level!r}: use debug, info, warning or error")
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
    handler.setLevel(level.upper())  # task logs go to files at INFO; the terminal shows this level
    logging.basicConfig(level=level.upper(), format="%(name)s: %(message)s", handlers=[handler], force=True)


_LOG_LEVEL = typer.Option("warning", "--log-level", help="debug | info | warning | error")


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def scheduler_cmd(
    once: bool = typer.Option(False, "--once", help="Do what is due (including retries and sensors), then exit."),
    pipeline: list[str] = typer.Option(None, "--pipeline", "-p", help="Only these pipelines (repeatable)."),
    as_of: str = typer.Option(None, "--as-of", help="Decide what is due as of this moment (replays)."),
    workers: int = typer.Option(4, min=1, help="Worker threads running task instances."),
    poll: float = typer.Option(5.0, min=0.05, help="Seconds between scheduling passes when idle."),
    files: list[Path] = _FILES,
    home: Path = _HOME,
    log_level: str = _LOG_LEVEL,
) -> None:
    """Run the embedded scheduler (long-running unless --once)."""
    from headwater.orchestration.clock import OffsetClock, SystemClock
    from headwater.orchestration.registry import load_pipelines
    from headwater.orchestration.schedule import to_utc
    from headwater.orchestration.scheduler import RunResult, Scheduler, summarize

    setup_logging(log_level)
    settings = load_settings(home=home)
    known = load_pipelines(files or ())
    moment = to_utc(parse_moment(as_of, "--as-of")) if as_of else None

    def show(r: RunResult) -> None:
        console.print(f"{_styled(r.state)} {r.run_id}" + (f"  [dim]{r.error}[/]" if r.error else ""))

    sched = Scheduler(
        settings, known.values(), max_workers=workers, poll_interval=poll, on_run_finished=show,
        clock=OffsetClock(moment) if moment else SystemClock(),
    )
    signal.signal(signal.SIGTERM, lambda *_: sched.stop())
    try:
        report = sched.run(once=once, as_of=moment, pipeline_ids=pipeline or None)
    except KeyboardInterrupt:
        sched.stop()
        console.print("stopped; unfinished task instances resume on the next start")
        raise typer.Exit(130) from None
    finally:
        sched.close()
    console.print(f"scheduler: {json.dumps(summarize(report))}")
    if report.failed:
        raise typer.Exit(1)


def backfill_cmd(
    pipeline: str = typer.Argument(..., help="Pipeline id."),
    start: str = typer.Option(..., "--start", help="First logical date (YYYY-MM-DD)."),
    end: str = typer.Option(..., "--end", help="Last logical date, inclusive."),
    reverse: bool = typer.Option(False, "--reverse", help="Newest interval first."),
    max_active: int = typer.Option(None, "--max-active", min=1, help="Runs in flight (default: the pipeline's)."),
    rerun_failed: bool = typer.Option(False, "--rerun-failed", help="Re-run failed runs' failed tasks."),
    clear: bool = typer.Option(False, "--clear", help="Re-run every run in the range from scratch."),
    workers: int = typer.Option(4, min=1, help="Worker threads."),
    files: list[Path] = _FILES,
    home: Path = _HOME,
    log_level: str = _LOG_LEVEL,
) -> None:
    """Run PIPELINE over a past range; idempotent and resumable."""
    from headwater.orchestration.backfill import backfill, plan_intervals
    from headwater.orchestration.registry import get_pipeline

    setup_logging(log_level)
    settings = load_settings(home=home)
    p = get_pipeline(pipeline, files or ())
    a, b = parse_moment(start, "--start"), parse_moment(end, "--end")
    plan_intervals(p, a, b)  # a bad range fails here, before any progress bar is drawn
    with Progress(
        TextColumn("[bold]backfill {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(pipeline, total=None)

        def planned(total: int, done: int) -> None:
            progress.update(bar, total=total, completed=done)

        report = backfill(
            settings, p, a, b, reverse=reverse, max_active=max_active, rerun_failed=rerun_failed, clear=clear,
            max_workers=workers, on_plan=planned, progress=lambda r: progress.advance(bar),
        )
    ok = sum(s == "success" for s in report.finished.values())
    console.print(
        f"{report.planned} intervals: {ok} succeeded, {len(report.failed)} failed, {report.already_done} already "
        f"done, {report.skipped_failed} failed earlier (use --rerun-failed)"
    )
    for rid in report.failed:
        console.print(f"  [red]failed[/] {rid}  (headwater run-show {rid})")
    if report.failed:
        raise typer.Exit(1)


def runs_cmd(
    pipeline: str = typer.Argument(None, help="Only this pipeline."),
    last: int = typer.Option(20, "--last", min=1, help="How many runs, newest first."),
    home: Path = _HOME,
) -> None:
    """Recent runs with their state, task progress, SLA status and rows."""
    from headwater.orchestration.run_store import RunStore

    settings = load_settings(home=home)
    store = RunStore(settings.run_store)
    try:
        rows = OrchestrationStore(store).list_runs(pipeline, last)
    finally:
        store.close()
    console.print(runs_table(rows))


def runs_table(rows: list[dict[str, Any]]) -> Table:
    """Runs as a table that still reads at 80 columns (pipeline and date are in the run id)."""
    table = Table(title="Runs (newest first)", title_justify="left")
    table.add_column("run id", no_wrap=True)
    for col in ("trigger", "state", "tasks", "SLA", "rows out", "finished (UTC)"):
        table.add_column(col, justify="right" if col in ("tasks", "rows out") else "left")
    for r in rows:
        table.add_row(
            r["run_id"], r["trigger"], _styled(r["state"]),
            f"{r['tasks_ok']}/{r['tasks']}" if r["tasks"] else "-", _styled(r.get("sla_status")),
            f"{r['rows_out']:,}" if r["rows_out"] is not None else "-",
            (r["finished_at"] or "-")[:19].replace("T", " "),
        )
    return table


def run_show_cmd(
    run_id: str = typer.Argument(..., help="Run id (see `headwater runs`)."),
    logs: bool = typer.Option(False, "--logs", help="Also print each task's log (its last try)."),
    home: Path = _HOME,
) -> None:
    """One run: its task instances (state, tries, duration, error) and row counts per step."""
    from headwater.orchestration.run_store import RunStore

    settings = load_settings(home=home)
    store = RunStore(settings.run_store)
    try:
        state = OrchestrationStore(store)
        run = state.get_run(run_id)
        if run is None:
            raise ConfigError(f"no run {run_id!r} in {settings.run_store} (see `headwater runs`)")
        tis = state.task_instances(run_id)
        counts = store.step_counts(run_id)
        misses = [m for m in state.sla_misses(run["pipeline_id"]) if m["run_id"] == run_id]
    finally:
        store.close()
    console.print(
        f"[bold]{run_id}[/]  {_styled(run['state'])}  pipeline={run['pipeline_id']}  trigger={run['trigger']}\n"
        f"interval [{run['interval_start']}, {run['interval_end']})  started {run['started_at']}  "
        f"finished {run['finished_at'] or '-'}\nSLA: {_styled(run.get('sla_status'))}"
        + (f" (deadline {run['sla_deadline']})" if run.get("sla_deadline") else "")
    )
    if run["error"]:
        console.print(f"[red]error:[/] {escape(str(run['error']))}")
    for m in misses:
        console.print(f"[red]SLA miss:[/] {m['detail']}")
    table = Table(title="Task instances", title_justify="left")
    table.add_column("task", no_wrap=True)
    for col in ("kind", "state", "tries", "pokes", "duration", "error"):
        table.add_column(col)
    for t in tis:
        table.add_row(
            t["task_id"], t["kind"], _styled(t["state"]), str(t["try_number"]), str(t["pokes"] or "-"),
            _dur(t["duration_s"]), (t["error"] or "")[:80],
        )
    console.print(table)
    if counts:
        rows = Table(title="Rows per step (in = out + filtered + rejected)", title_justify="left")
        for col in ("step", "in", "out", "filtered", "rejected"):
            rows.add_column(col, justify="left" if col == "step" else "right")
        for c in counts:
            rows.add_row(c.step, f"{c.rows_in:,}", f"{c.rows_out:,}", f"{c.filtered:,}", f"{c.rejected:,}")
        console.print(rows)
    if logs:
        from headwater.orchestration.tasklogs import log_path

        for t in tis:
            path = log_path(settings.home, run_id, t["task_id"], t["try_number"])
            if path.exists():
                console.rule(f"{t['task_id']} (try {t['try_number']})  {path}")
                console.print(path.read_text(encoding="utf-8").rstrip(), markup=False, highlight=False)


def pipelines_cmd(
    pipeline: str = typer.Argument(None, help="Show this pipeline's tasks as JSON."),
    files: list[Path] = _FILES,
) -> None:
    """List known pipelines, or describe one (its DAG as JSON)."""
    from headwater.orchestration.registry import get_pipeline, load_pipelines

    if pipeline:
        console.print_json(json.dumps(get_pipeline(pipeline, files or ()).describe()))
        return
    table = Table(title="Pipelines", title_justify="left")
    for col in ("pipeline", "schedule", "start", "catchup", "max active", "SLA", "tasks", "tags"):
        table.add_column(col)
    for p in load_pipelines(files or ()).values():
        d = p.describe()
        table.add_row(
            p.pipeline_id, str(d["schedule"]), d["start_date"][:10], str(p.catchup), str(p.max_active_runs),
            str(p.sla or "-"), str(len(p.tasks)), ", ".join(p.tags),
        )
    console.print(table)


def airflow_export_cmd(
    pipeline: str = typer.Argument(..., help="Pipeline id."),
    out: Path = typer.Option(None, "--out", help="Write the DAG file here (default: print it)."),
    files: list[Path] = _FILES,
) -> None:
    """Render PIPELINE as an Airflow DAG file that runs the same tasks."""
    from headwater.orchestration.airflow_export import render_airflow_dag
    from headwater.orchestration.registry import get_pipeline

    source = render_airflow_dag(get_pipeline(pipeline, files or ()), tuple(str(f.resolve()) for f in files or ()))
    if out is None:
        typer.echo(source, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(source, encoding="utf-8")
    console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Mount the orchestration commands on the main ``headwater`` app."""
    app.command("scheduler")(scheduler_cmd)
    app.command("backfill")(backfill_cmd)
    app.command("runs")(runs_cmd)
    app.command("run-show")(run_show_cmd)
    app.command("pipelines")(pipelines_cmd)
    app.command("airflow-export")(airflow_export_cmd)
