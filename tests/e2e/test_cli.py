"""The README's commands as a user runs them: real subprocesses, real exit codes, real output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def headwater(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HEADWATER_HOME": str(home), "COLUMNS": "120", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-m", "headwater", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_bad_dates_are_one_line_usage_errors(tmp_path):
    for args, message in (
        (("run", "--date", "2024-13-01"), "--date '2024-13-01' is not a date"),
        (("run", "--start", "2024-03-02", "--end", "2024-03-01"), "--start 2024-03-02 is after --end 2024-03-01"),
        (("run",), "give --date D, or both --start A and --end B"),
        (("run", "--date", "2024-01-01", "--start", "2024-01-01"), "not both"),
        (("run", "--date", "[bold]x[/bold]"), "--date '[bold]x[/bold]' is not a date"),  # shown verbatim
    ):
        result = headwater(*args, home=tmp_path)
        assert result.returncode == 2, result
        assert result.stderr.strip().splitlines() == [f"error: {message}"] or message in result.stderr
        assert "Traceback" not in result.stderr


def test_missing_source_is_a_clear_error(tmp_path):
    result = headwater("run", "--date", "2024-01-01", home=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "orders source database not found" in lines[0]
    assert "headwater generate" in lines[0]


def test_demo_generates_runs_and_summarises(tmp_path):
    result = headwater("demo", "--customers", "150", "--days", "8", home=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in (
        "The demo world",
        "Rows per step",
        "Top customers by estimated CLV",
        "Longest since",
        "Where everything lives",
        "Try next",
        "Real-time alerts",
    ):
        assert heading in out
    assert "(conserved)" in out  # stream: in = processed + dead-lettered + late
    assert (tmp_path / "warehouse" / "warehouse.duckdb").is_file()
    assert len(list((tmp_path / "lake" / "raw" / "orders").glob("date=*"))) == 8
    # a re-run of the last day from the CLI works on the demo's home
    again = headwater("run", "--date", "2024-01-08", home=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "extract_orders" in again.stdout
