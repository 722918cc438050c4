"""The public API is a promise: pin its names, and check each one resolves."""

import subprocess
import sys

import headwater

EXPECTED = {
    "ConfigError", "DataError", "HeadwaterError", "RetryableError", "SchemaChangeError", "Settings",
    "SourceError", "SourceNotReady", "StorageError", "__version__", "load_settings",
    "Pipeline", "Task", "TaskOptions", "TaskContext", "Sensor", "LandingFlagSensor", "SqlSensor", "RunSensor",
    "Scheduler", "backfill", "RunStore", "StepCounts", "run_day", "run_range", "Lake", "DuckDBWarehouse",
    "WorldSpec", "generate_world",
}  # fmt: skip


def test_public_names_are_pinned_and_resolve():
    assert set(headwater.__all__) == EXPECTED
    for name in headwater.__all__:
        assert getattr(headwater, name) is not None


def test_import_is_light():
    """`import headwater` must not pull Arrow or DuckDB (they load when a name that needs them is used)."""
    code = "import sys, headwater; print(sorted(m for m in ('pyarrow', 'duckdb') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
