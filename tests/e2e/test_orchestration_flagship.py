"""The flagship DAG end to end on a generated world: backfills, the sequential runner, a SIGKILL mid-run."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from headwater.config import Settings
from headwater.errors import ConfigError, DataError
from headwater.orchestration import RunStore, TaskContext, backfill
from headwater.orchestration.state import OrchestrationStore
from headwater.pipelines.customer_analytics import PIPELINE_ID, customer_analytics, validate_output_quality
from headwater.pipelines.daily import run_range
from headwater.storage.feature_store import FeatureStore, feature_store_path
from headwater.storage.warehouse import DuckDBWarehouse, release_warehouses
from headwater.synth import WorldSpec, generate_world

SPEC = WorldSpec(customers=150, days=4, seed=11, bad_records=0.02)
START, END = date(2024, 1, 1), date(2024, 1, 3)  # day 4 exists, so the orders sensor sees data past day 3
AS_OF = "2024-01-04T00:30"  # the scheduler's "now": days 1..3 are due


def warehouse_rows(settings: Settings) -> dict[str, list[dict]]:
    wh = DuckDBWarehouse(settings.warehouse, read_only=True)
    try:
        return {
            "customer_metrics": wh.query("SELECT * FROM customer_metrics ORDER BY ALL").to_pylist(),
            "daily_sales": wh.query("SELECT * FROM daily_sales ORDER BY ALL").to_pylist(),
        }
    finally:
        wh.close()


def outputs(settings: Settings) -> dict[str, list]:
    out: dict[str, list] = dict(warehouse_rows(settings))
    fs = FeatureStore(feature_store_path(settings), read_only=True)
    try:
        out["features"] = [tuple(r.values()) for r in fs.read_latest().to_pylist()]
    finally:
        fs.close()
    return out


@dataclass
class Template:
    pristine: Path  # a generated world nobody ran anything on
    done: Settings  # the same world after a forward backfill of START..END
    expected: dict[str, list]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("flagship")
    generate_world(Settings(home=root / "pristine"), SPEC)
    shutil.copytree(root / "pristine", root / "done")
    done = Settings(home=root / "done")
    report = backfill(done, customer_analytics, START, END, channels=[])
    assert report.created == 3 and set(report.finished.values()) == {"success"}
    release_warehouses()
    return Template(root / "pristine", done, outputs(done))


def fresh(template: Template, where: Path) -> Settings:
    shutil.copytree(template.pristine, where)
    return Settings(home=where)


def test_backfill_twice_gives_identical_output(template: Template) -> None:
    s, once = template.done, template.expected
    assert len(once["daily_sales"]) == 3 and once["customer_metrics"] and once["features"]
    again = backfill(s, customer_analytics, START, END, channels=[])
    assert again.already_done == 3 and again.finished == {}  # nothing to do, nothing done
    cleared = backfill(s, customer_analytics, START, END, clear=True, channels=[])
    assert cleared.requeued == 3 and set(cleared.finished.values()) == {"success"}
    assert outputs(s) == once  # a full re-run writes identical outputs
    with pytest.raises(ConfigError, match="compute_order_metrics"):  # each day folds into the previous one
        backfill(s, customer_analytics, START, END, reverse=True, channels=[])
    store = RunStore(s.run_store)
    try:
        runs = OrchestrationStore(store).list_runs(PIPELINE_ID, 10)
        assert {r["state"] for r in runs} == {"success"} and {r["sla_status"] for r in runs} == {None}
        steps = {c.step: c for c in store.step_counts(runs[0]["run_id"])}
        assert {"extract_orders", "load_warehouse", "update_feature_store"} <= set(steps)
    finally:
        store.close()


def test_scheduler_matches_the_sequential_runner(template: Template, tmp_path: Path) -> None:
    seq = fresh(template, tmp_path / "seq")
    store = RunStore(seq.run_store)
    try:
        run_range(seq, START, END, store)
    finally:
        store.close()
    assert warehouse_rows(seq) == {k: template.expected[k] for k in ("customer_metrics", "daily_sales")}


def test_validate_output_quality_catches_a_broken_warehouse(template: Template, tmp_path: Path) -> None:
    release_warehouses()
    shutil.copytree(template.done.home, tmp_path / "w")
    s = Settings(home=tmp_path / "w")
    wh = DuckDBWarehouse(s.warehouse)
    wh.con.execute("UPDATE daily_sales SET order_count = order_count + 1 WHERE sales_date = ?", [START])
    wh.close()
    store = RunStore(s.run_store)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    ctx = TaskContext(
        PIPELINE_ID, "customer_analytics__2024-01-01T00:00", "validate_output_quality", 1, t0, t0,
        t0 + timedelta(days=1), s, store, logging.LoggerAdapter(logging.getLogger("test"), {}),
    )
    try:
        with pytest.raises(DataError, match="orders_reconcile"):
            validate_output_quality(ctx)
    finally:
        store.close()
        release_warehouses()


def _cli(home: Path) -> list[str]:
    code = "from headwater.cli import main; main()"
    return [sys.executable, "-c", code, "scheduler", "--once", "--as-of", AS_OF, "--home", str(home), "--workers", "3"]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_gives_the_same_warehouse(template: Template, tmp_path: Path) -> None:
    s = fresh(template, tmp_path / "crash")
    env = {**os.environ, "HEADWATER_ALERT_WEBHOOK_URL": ""}
    proc = subprocess.Popen(_cli(s.home), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        rows: list[tuple] = []
        if s.run_store.exists():
            try:
                con = sqlite3.connect(s.run_store, timeout=1)
                rows = con.execute("SELECT task_id, state, kind FROM task_instances").fetchall()
                con.close()
            except sqlite3.Error:
                rows = []
        ok = sum(r[1] == "success" for r in rows)
        busy = [r for r in rows if r[1] == "running" and r[2] == "task"]
        if ok >= 14 and busy:  # past the first run, with a batch step in flight
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.003)
    proc.wait(10)
    assert killed, f"the scheduler ended before it could be killed: {proc.stderr.read() if proc.stderr else ''}"

    store = RunStore(s.run_store)
    try:
        before = {(r["run_id"], r["task_id"]): r["state"] for r in store.query("SELECT * FROM task_instances")}
    finally:
        store.close()
    assert "running" in before.values()  # the kill really interrupted work
    done_before_kill = [k for k, v in before.items() if v == "success"]

    resumed = subprocess.run(_cli(s.home), env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert outputs(s) == template.expected

    store = RunStore(s.run_store)
    try:
        tries = store.query("SELECT run_id, task_id, try_number, state FROM task_tries ORDER BY try_number")
        states = store.query("SELECT state, count(*) AS n FROM runs GROUP BY state")
    finally:
        store.close()
    assert {r["state"]: r["n"] for r in states} == {"success": 3}
    per_task: dict[tuple[str, str], list[str]] = {}
    for r in tries:
        per_task.setdefault((r["run_id"], r["task_id"]), []).append(r["state"])
    for key in done_before_kill:
        assert per_task[key] == ["success"], key  # finished work was not redone
    interrupted = [k for k, v in per_task.items() if "interrupted" in v]
    assert interrupted and all(per_task[k] == ["interrupted", "success"] for k in interrupted)
