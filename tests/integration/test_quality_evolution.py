"""Schema evolution on ingest, through the real ingest steps: add, remove then approve, blocked type
change, safe widening, for the landing drops (JSON) and the orders source (SQLite)."""

from __future__ import annotations

import json
import sqlite3
from datetime import date

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from headwater.cli import app
from headwater.errors import ConfigError, SchemaChangeError
from headwater.pipelines import daily
from headwater.quality.contracts import is_safe_widening
from headwater.quality.evolution import approve_change, sqlite_wire_type
from headwater.quality.store import schema_history
from headwater.storage.lake import Lake

D1, D2, D3 = date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3)


def raw(settings, dataset, day):
    return pq.read_table(Lake(settings.lake_dir).partition_dir("raw", dataset, day) / "part-0000.parquet")


def history(store, dataset):
    return {c.change_id: c for c in schema_history(store, dataset)}


def ticket(tid, customer=1, **extra):
    return {
        "ticket_id": tid, "customer_id": customer, "created_at": "2024-01-01T10:00:00Z", "category": "billing",
        "priority": "low", "resolved_at": None, **extra,
    }


def test_added_json_column_is_recorded_and_carried_into_the_raw_zone(world, settings, store):
    world.customer(1).order(1, "2024-01-01 10:00:00", 5).order(1, "2024-01-03 10:00:00", 5)
    world.line("support_tickets", "2024-01-01", ticket("T1"))
    world.line("support_tickets", "2024-01-02", {**ticket("T2"), "created_at": "2024-01-02T10:00:00Z",
                                                 "channel": "email"})
    world.line("support_tickets", "2024-01-03", {**ticket("T3"), "created_at": "2024-01-03T10:00:00Z"})
    world.write("2024-01-01", "2024-01-03")

    counts = daily.run_range(settings, D1, D3, store)  # the whole pipeline reads partitions with and without it
    assert counts[D2][1].rows_out == 1 and counts[D2][1].rejected == 0
    assert raw(settings, "support_tickets", D2).column("channel").to_pylist() == ["email"]
    assert "channel" not in raw(settings, "support_tickets", D1).column_names
    change = history(store, "support_tickets")["add.channel"]
    assert (change.kind, change.status, change.new_type) == ("add_column", "recorded", "string")


def test_removed_json_column_requires_approval_then_proceeds_as_null(world, settings, store):
    world.customer(1)
    world.line("marketing_events", "2024-01-01",
               {"event_id": "M1", "customer_id": 1, "event_type": "email_open", "event_ts": "2024-01-01T09:00:00Z"})
    world.write("2024-01-01", "2024-01-01")

    with pytest.raises(SchemaChangeError, match="requires approval") as err:
        daily.ingest_marketing_events(settings, D1, "r1", store)
    assert err.value.fields["change_id"] == "remove.campaign_id"
    assert "headwater schema approve marketing_events remove.campaign_id" in str(err.value)
    assert history(store, "marketing_events")["remove.campaign_id"].status == "pending"
    with pytest.raises(SchemaChangeError):  # still blocked on the next try
        daily.ingest_marketing_events(settings, D1, "r2", store)

    result = CliRunner().invoke(
        app, ["schema", "approve", "marketing_events", "remove.campaign_id", "--by", "ana", "--reason", "vendor v2",
              "--home", str(settings.home)],
    )
    assert result.exit_code == 0, result.output
    counts = daily.ingest_marketing_events(settings, D1, "r3", store)
    assert (counts.rows_out, counts.rejected) == (1, 0)
    table = raw(settings, "marketing_events", D1)
    assert table.column("campaign_id").to_pylist() == [None]
    assert table.schema.field("campaign_id").nullable
    change = history(store, "marketing_events")["remove.campaign_id"]
    assert (change.status, change.decided_by, change.reason) == ("approved", "ana", "vendor v2")
    assert change.decided_at is not None

    shown = CliRunner().invoke(
        app, ["schema", "history", "marketing_events", "--json", "--home", str(settings.home)]
    )
    assert shown.exit_code == 0, shown.output
    assert [(c["change_id"], c["status"]) for c in json.loads(shown.output)] == [("remove.campaign_id", "approved")]


def test_type_change_is_blocked_and_cannot_be_approved(world, settings, store):
    world.customer(1)
    world.line("support_tickets", "2024-01-01", ticket("T1", customer=1.5))
    world.line("support_tickets", "2024-01-01", ticket("T2", customer=2.5))
    world.write("2024-01-01", "2024-01-01")
    with pytest.raises(SchemaChangeError, match="blocked") as err:
        daily.ingest_support_tickets(settings, D1, "r1", store)
    assert err.value.fields["change_id"] == "type.customer_id.float64"
    with pytest.raises(ConfigError, match="cannot be approved"):
        approve_change(store, "support_tickets", "type.customer_id.float64", "ana", "why not")
    assert history(store, "support_tickets")["type.customer_id.float64"].status == "blocked"


def test_a_few_bad_values_are_row_problems_not_a_schema_change(world, settings, store):
    world.customer(1)
    world.line("support_tickets", "2024-01-01", ticket("T1"))
    world.line("support_tickets", "2024-01-01", ticket("T2", customer="abc"))
    world.write("2024-01-01", "2024-01-01")
    counts = daily.ingest_support_tickets(settings, D1, "r1", store)
    assert (counts.rows_out, counts.rejected) == (1, 1)
    assert history(store, "support_tickets") == {}


def _rebuild_orders(settings, columns_sql: str, select_sql: str) -> None:
    con = sqlite3.connect(settings.source_db)
    script = f"CREATE TABLE orders2 ({columns_sql}); INSERT INTO orders2 SELECT {select_sql} FROM orders;"  # noqa: S608
    con.executescript(script + "DROP TABLE orders; ALTER TABLE orders2 RENAME TO orders;")
    con.close()


BASE = "order_id INTEGER PRIMARY KEY, customer_id INTEGER, order_ts TEXT, {amount}, status TEXT, updated_at TEXT"
ALL = "order_id, customer_id, order_ts, total_amount, status, updated_at"


def test_orders_safe_widening_is_recorded_and_other_type_changes_blocked(world, settings, store):
    world.customer(1).order(1, "2024-01-01 10:00:00", "12.50").write("2024-01-01", "2024-01-01")
    _rebuild_orders(settings, BASE.format(amount="total_amount DECIMAL(14,2)"), ALL)
    counts = daily.extract_orders(settings, D1, "r1", store)
    assert counts.rows_out == 1
    change = history(store, "orders")["widen.total_amount.decimal_14_2"]
    assert (change.kind, change.status, change.old_type) == ("widen_type", "recorded", "decimal(12,2)")

    _rebuild_orders(settings, BASE.format(amount="total_amount TEXT"), ALL)
    with pytest.raises(SchemaChangeError, match="blocked"):
        daily.extract_orders(settings, D1, "r2", store)


def test_orders_added_column_carried_and_removed_column_needs_approval(world, settings, store):
    world.customer(1).order(1, "2024-01-01 10:00:00", "12.50").write("2024-01-01", "2024-01-01")
    con = sqlite3.connect(settings.source_db)
    con.execute("ALTER TABLE orders ADD COLUMN channel TEXT")
    con.execute("UPDATE orders SET channel = 'web'")
    con.commit()
    con.close()
    daily.extract_orders(settings, D1, "r1", store)
    assert raw(settings, "orders", D1).column("channel").to_pylist() == ["web"]
    assert history(store, "orders")["add.channel"].status == "recorded"

    _rebuild_orders(settings, BASE.replace(", status TEXT", "").format(amount="total_amount NUMERIC"),
                    ALL.replace(", status", ""))
    with pytest.raises(SchemaChangeError, match="requires approval") as err:
        daily.extract_orders(settings, D1, "r2", store)
    assert err.value.fields["change_id"] == "remove.status"
    approve_change(store, "orders", "remove.status", "ops", "status moved to another table")
    counts = daily.extract_orders(settings, D1, "r3", store)
    assert (counts.rows_out, counts.rejected) == (1, 0)
    assert raw(settings, "orders", D1).column("status").to_pylist() == [None]


@pytest.mark.parametrize(
    ("old", "new", "safe"),
    [
        ("int32", "int64", True), ("float32", "float64", True), ("decimal(12,2)", "decimal(14,2)", True),
        ("decimal(12,2)", "decimal(14,4)", True), ("decimal(12,2)", "decimal(12,4)", False),
        ("decimal(12,2)", "decimal(10,2)", False), ("int64", "int32", False), ("int64", "float64", False),
        ("string", "int64", False), ("date", "timestamp", True), ("int64", "decimal(18,0)", False),
        ("int64", "decimal(21,2)", True),
    ],
)
def test_widening_table(old, new, safe):
    assert is_safe_widening(old, new) is safe


def test_sqlite_declared_types():
    assert sqlite_wire_type("INTEGER") == "int64" and sqlite_wire_type("int4") == "int32"
    assert sqlite_wire_type("NUMERIC") == "decimal" and sqlite_wire_type("DECIMAL(14, 2)") == "decimal(14,2)"
    assert sqlite_wire_type("VARCHAR(20)") == "string" and sqlite_wire_type("DOUBLE") == "float64"
