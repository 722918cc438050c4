"""The orchestration commands through the real ``headwater`` app (Typer's runner, real files)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from headwater.cli import app

PIPELINES = """
from datetime import date, timedelta
from headwater.errors import DataError
from headwater.orchestration import Pipeline, StepCounts

toy = Pipeline("toy", schedule="@daily", start_date=date(2024, 1, 1), sla=timedelta(hours=2))

@toy.task
def extract(ctx):
    return StepCounts("extract", 10, 9, filtered=1)

@toy.task
def load(ctx):
    ctx.log.info("loading %s", ctx.ds)
    if ctx.ds == "2024-01-03":
        raise DataError("bad day")

extract >> load
"""


def test_backfill_runs_and_run_show(tmp_path: Path) -> None:
    f = tmp_path / "pipes.py"
    f.write_text(PIPELINES)
    home = ["--home", str(tmp_path / "hw")]
    runner = CliRunner()
    r = runner.invoke(
        app, ["backfill", "toy", "--start", "2024-01-01", "--end", "2024-01-03", "--pipelines", str(f), *home]
    )
    assert r.exit_code == 1, r.output  # one interval failed
    assert "3 intervals: 2 succeeded, 1 failed" in r.output and "toy__2024-01-03T00:00" in r.output

    r = runner.invoke(app, ["runs", "toy", "--last", "2", *home], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "toy__2024-01-03T00:00" in r.output and "toy__2024-01-02T00:00" in r.output
    assert "toy__2024-01-01T00:00" not in r.output  # --last 2

    r = runner.invoke(app, ["run-show", "toy__2024-01-03T00:00", *home], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "task load failed: DataError: bad day" in r.output
    assert "extract" in r.output and "success" in r.output and "failed" in r.output

    r = runner.invoke(app, ["run-show", "toy__2024-01-02T00:00", "--logs", *home], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "INFO headwater.task.toy.load: loading 2024-01-02" in r.output  # the try's own log file
    assert "loading 2024-01-01" not in r.output

    r = runner.invoke(app, ["run-show", "nope", *home])
    assert r.exit_code != 0

    r = runner.invoke(app, ["pipelines", "toy", "--pipelines", str(f)])
    assert r.exit_code == 0 and '"upstream": [' in r.output and '"extract"' in r.output


def test_scheduler_once_as_of(tmp_path: Path) -> None:
    f = tmp_path / "pipes.py"
    f.write_text(PIPELINES.replace('"2024-01-03"', '"never"'))
    r = CliRunner().invoke(
        app,
        [
            "scheduler",
            "--once",
            "--as-of",
            "2024-01-03T01:00",
            "-p",
            "toy",
            "--pipelines",
            str(f),
            "--home",
            str(tmp_path / "hw"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "success toy__2024-01-01T00:00" in r.output and "success toy__2024-01-02T00:00" in r.output
    assert '"created": 2' in r.output
