"""Idempotency, backfill equivalence, incremental == full recompute, row accounting and bad input."""

from __future__ import annotations

import hashlib
import shutil
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from headwater.config import Settings
from headwater.errors import SourceError, SourceNotReady
from headwater.orchestration.run_store import RunStore
from headwater.pipelines import daily
from headwater.pipelines.daily import run_day, run_range
from headwater.storage.lake import Lake
from headwater.storage.warehouse import DuckDBWarehouse
from headwater.synth import WorldSpec, generate_world

SPEC = WorldSpec(customers=300, days=12, start=date(2024, 2, 20), seed=7, bad_records=0.02)
LAST = SPEC.start + timedelta(days=SPEC.days - 1)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """One generated (dirty) world, copied by each test that needs a fresh home."""
    home = tmp_path_factory.mktemp("world")
    generate_world(Settings(home=home), SPEC)
    return home


def fresh(generated: Path, tmp_path: Path, name: str) -> Settings:
    home = tmp_path / name
    shutil.copytree(generated, home)
    return Settings(home=home)


def warehouse_rows(settings: Settings, table: str, key: str) -> list[dict]:
    wh = DuckDBWarehouse(settings.warehouse)
    try:
        return wh.query(f"SELECT * FROM {table} ORDER BY {key}").to_pylist()  # noqa: S608 (test constants)
    finally:
        wh.close()


def snapshot_rows(settings: Settings, day: date) -> list[dict]:
    wh = DuckDBWarehouse(settings.warehouse)
    try:
        return wh.query(
            "SELECT * FROM customer_metrics WHERE snapshot_date = ? ORDER BY customer_id", [day]
        ).to_pylist()
    finally:
        wh.close()


def lake_digest(settings: Settings) -> dict[str, str]:
    root = Path(settings.lake_dir)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.parquet"))
    }


def test_running_a_day_twice_changes_nothing(generated, tmp_path):
    settings = fresh(generated, tmp_path, "a")
    store = RunStore(settings.run_store)
    run_range(settings, SPEC.start, LAST, store)
    files, rows = lake_digest(settings), warehouse_rows(settings, "customer_metrics", "snapshot_date, customer_id")
    sales = warehouse_rows(settings, "daily_sales", "sales_date")
    run_day(settings, LAST, store)
    run_day(settings, LAST - timedelta(days=3), store)
    assert lake_digest(settings) == files  # byte-identical lake files, quarantine included
    assert warehouse_rows(settings, "customer_metrics", "snapshot_date, customer_id") == rows
    assert warehouse_rows(settings, "daily_sales", "sales_date") == sales
    assert len(files) >= SPEC.days * 8
    store.close()


def test_day_alone_equals_day_in_a_range(generated, tmp_path):
    ranged = fresh(generated, tmp_path, "ranged")
    alone = fresh(generated, tmp_path, "alone")
    store_r, store_a = RunStore(ranged.run_store), RunStore(alone.run_store)
    run_range(ranged, SPEC.start, LAST, store_r)
    # the lone run extracts its inputs for every day but computes D from scratch (no state of D-1)
    for d in range(SPEC.days - 1):
        day = SPEC.start + timedelta(days=d)
        for step in (daily.extract_orders, daily.ingest_support_tickets, daily.ingest_marketing_events):
            step(alone, day, "manual", store_a)
    run_day(alone, LAST, store_a)
    expected = snapshot_rows(ranged, LAST)
    assert expected and snapshot_rows(alone, LAST) == expected
    assert warehouse_rows(alone, "daily_sales", "sales_date") == [
        r for r in warehouse_rows(ranged, "daily_sales", "sales_date") if r["sales_date"] == LAST
    ]


def test_incremental_state_equals_full_recompute(generated, tmp_path):
    settings = fresh(generated, tmp_path, "inc")
    store = RunStore(settings.run_store)
    run_range(settings, SPEC.start, LAST, store)
    lake = Lake(settings.lake_dir)
    incremental = lake.read_partition("staging", daily.ORDER_STATE, LAST)
    counts = daily.compute_order_metrics(settings, LAST, "x", store)
    assert counts.rows_in == lake.read_partition("raw", "orders", LAST).num_rows  # incremental: the day only
    # delete yesterday's state: the step must fall back to a full recompute over all raw partitions
    shutil.rmtree(lake.partition_dir("staging", daily.ORDER_STATE, LAST - timedelta(days=1)))
    full_counts = daily.compute_order_metrics(settings, LAST, "x", store)
    full = lake.read_partition("staging", daily.ORDER_STATE, LAST)
    assert full.equals(incremental)
    assert full_counts.rows_in > counts.rows_in  # it really read the whole history


def test_rewritten_history_forces_full_recompute(generated, tmp_path):
    """If a past raw partition is rewritten after yesterday's state, the state is stale: recompute."""
    settings = fresh(generated, tmp_path, "stale")
    store = RunStore(settings.run_store)
    run_range(settings, SPEC.start, LAST, store)
    lake = Lake(settings.lake_dir)
    day3 = SPEC.start + timedelta(days=3)
    table = lake.read_partition("raw", "orders", day3)
    lake.write_partition("raw", "orders", day3, table.slice(0, table.num_rows // 2))  # drop half of a day
    counts = daily.compute_order_metrics(settings, LAST, "x", store)
    total = sum(lake.read_partition("raw", "orders", d).num_rows for d in lake.partitions("raw", "orders", end=LAST))
    assert counts.rows_in == total  # full recompute over the (changed) history


def test_every_row_is_accounted_for(generated, tmp_path):
    settings = fresh(generated, tmp_path, "acct")
    store = RunStore(settings.run_store)
    results = run_range(settings, SPEC.start, LAST, store)
    manifest = __import__("json").loads((Path(settings.home) / "world.json").read_text())
    extracted = sum(c.rows_in for day in results.values() for c in day if c.step == "extract_orders")
    quarantined = sum(c.rejected for day in results.values() for c in day if c.step == "extract_orders")
    assert extracted == manifest["rows"]["orders"]  # every source order was read exactly once
    assert quarantined > 0
    lake = Lake(settings.lake_dir)
    on_disk = sum(
        lake.read_partition("quarantine", "orders", d).num_rows for d in lake.partitions("quarantine", "orders")
    )
    assert on_disk == quarantined
    tickets_in = sum(c.rows_in for day in results.values() for c in day if c.step == "ingest_support_tickets")
    assert tickets_in == manifest["lines"]["support_tickets"]
    stored = store.step_counts(daily.run_id_for(LAST))
    assert [c.step for c in stored] == [s.__name__ for s in daily.STEPS]
    for c in stored:
        assert c.rows_in == c.rows_out + c.filtered + c.rejected


def test_bad_lines_and_rows_are_quarantined_with_reasons(world, settings, store):
    world.customer(1).order(1, "2024-01-01 10:00:00", 5)
    world.order(1, "2024-01-01 11:00:00", -5).order(None, "2024-01-01 12:00:00", 5).order(77, "2024-01-01 13:00:00", 5)
    world.order(1, "2024-01-01 14:00:00", 5, "lost_in_space").order(
        1, "not-a-date", 5, updated_at="2024-01-01 15:00:00"
    )
    world.ticket("2024-01-01", "T1", 1, "2024-01-01T09:00:00Z", "urgent")
    world.ticket("2024-01-01", "T1", 1, "2024-01-01T09:00:00Z", "low")  # duplicate id (and bad enum on the first)
    world.ticket("2024-01-01", "T2", 1, "2024-01-01T09:00:00Z", "low", resolved_at="2023-12-31T00:00:00Z")
    world.line("support_tickets", "2024-01-01", b'{"ticket_id": "T9", "custo')
    world.line("support_tickets", "2024-01-01", b"\xff\xfe\xfd")
    world.line("support_tickets", "2024-01-01", b"[1, 2, 3]")
    world.ticket("2024-01-01", "T3", 1, "2024-01-01T09:00:00Z", "medium")  # the one good line
    world.write("2024-01-01", "2024-01-01")
    counts = {c.step: c for c in run_day(settings, date(2024, 1, 1), store)}
    assert (counts["extract_orders"].rows_in, counts["extract_orders"].rows_out) == (6, 1)
    assert counts["extract_orders"].rejected == 5
    assert (counts["ingest_support_tickets"].rows_in, counts["ingest_support_tickets"].rejected) == (7, 6)
    lake = Lake(settings.lake_dir)
    orders_q = lake.read_partition("quarantine", "orders", date(2024, 1, 1)).to_pylist()
    assert sorted(r["failed_rules"][0] for r in orders_q) == [
        "enum:status",
        "not_null:customer_id",
        "range:total_amount",
        "reference:customer_id",
        "type:order_ts",
    ]
    tickets_q = lake.read_partition("quarantine", "support_tickets", date(2024, 1, 1)).to_pylist()
    rules = sorted(rule for r in tickets_q for rule in r["failed_rules"])
    assert rules == [
        "enum:priority",
        "invalid_utf8",
        "malformed_json",
        "malformed_json",
        "order:resolved_at",
        "unique:ticket_id",
    ]
    assert all(r["run_id"] == "manual__2024-01-01" and r["record"] for r in tickets_q)
    passed = pq.read_table(lake.partition_dir("raw", "support_tickets", date(2024, 1, 1)))
    assert passed.num_rows == 1


def test_missing_sources_raise_clear_errors(world, settings, store):
    with pytest.raises(SourceError, match="not found"):
        run_day(settings, date(2024, 1, 1), store)
    world.customer(1).order(1, "2024-01-01 10:00:00", 5).write("2024-01-01", "2024-01-01", flags=False)
    with pytest.raises(SourceNotReady, match="no _SUCCESS flag"):
        run_day(settings, date(2024, 1, 1), store)
    with pytest.raises(SourceNotReady, match="no data for 2024-01-05"):
        run_day(settings, date(2024, 1, 5), store)
    assert store.query("SELECT state FROM runs WHERE run_id = 'manual__2024-01-05'")[0]["state"] == "failed"


def test_a_quiet_day_is_an_empty_partition_not_an_error(world, settings, store):
    world.customer(1).order(1, "2024-01-01 10:00:00", 5).order(1, "2024-01-03 10:00:00", 7)
    world.write("2024-01-01", "2024-01-03")
    run_range(settings, date(2024, 1, 1), date(2024, 1, 3), store)
    assert Lake(settings.lake_dir).read_partition("raw", "orders", date(2024, 1, 2)).num_rows == 0
    assert snapshot_rows(settings, date(2024, 1, 2))[0]["days_since_last_order"] == 1


def test_incremental_ticket_state_equals_full_history_scan(generated, tmp_path):
    settings = fresh(generated, tmp_path, "tickets")
    store = RunStore(settings.run_store)
    run_range(settings, SPEC.start, LAST, store)
    lake = Lake(settings.lake_dir)
    incremental = lake.read_partition("staging", daily.TICKET_STATE, LAST)
    metrics = snapshot_rows(settings, LAST)
    shutil.rmtree(lake.partition_dir("staging", daily.TICKET_STATE, LAST - timedelta(days=1)))
    daily.load_warehouse(settings, LAST, "x", store)  # now scans every ticket partition
    assert lake.read_partition("staging", daily.TICKET_STATE, LAST).equals(incremental)
    assert snapshot_rows(settings, LAST) == metrics
    assert incremental.num_rows > 0 and any(r["tickets_90d"] for r in metrics)


def test_ticket_state_keeps_only_what_the_windows_can_still_need(world, settings, store):
    world.customer(1).order(1, "2024-01-01 10:00:00", 5).order(1, "2024-04-30 10:00:00", 5)
    world.ticket("2024-01-01", "OLD_CLOSED", 1, "2024-01-01T09:00:00Z", resolved_at="2024-01-01T10:00:00Z")
    world.ticket("2024-01-01", "OLD_OPEN", 1, "2024-01-01T09:00:00Z")
    world.ticket("2024-01-01", "LATE_FIX", 1, "2024-01-01T09:00:00Z", resolved_at="2024-03-15T00:00:00Z")
    world.write("2024-01-01", "2024-04-30")
    for d in range(121):
        day = date(2024, 1, 1) + timedelta(days=d)
        daily.ingest_support_tickets(settings, day, "t", store)
        daily.extract_orders(settings, day, "t", store)
    daily.compute_order_metrics(settings, date(2024, 4, 30), "t", store)
    daily.load_warehouse(settings, date(2024, 4, 30), "t", store)
    state = Lake(settings.lake_dir).read_partition("staging", daily.TICKET_STATE, date(2024, 4, 30))
    # closed 120 days ago: dropped; still open: kept; resolved 46 days ago: kept for the 90-day mean
    assert sorted(state["ticket_id"].to_pylist()) == ["LATE_FIX", "OLD_OPEN"]
    row = snapshot_rows(settings, date(2024, 4, 30))[0]
    assert row["open_tickets"] == 1 and row["tickets_90d"] == 0
    assert row["mean_resolution_hours_90d"] == pytest.approx((31 + 29 + 14) * 24 - 9)
