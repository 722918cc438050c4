"""Every row-rule kind through the real ingest steps, with quarantine conservation
(in = passed + quarantined), the failed rules named, the original record kept; then list/show/release."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from headwater.cli import app
from headwater.pipelines import daily
from headwater.quality.quarantine import quarantine_rows, quarantine_summary, release
from headwater.storage.lake import Lake

D1 = date(2024, 1, 1)


def part(settings, zone, dataset):
    return pq.read_table(Lake(settings.lake_dir).partition_dir(zone, dataset, D1) / "part-0000.parquet")


def metrics(store, dataset):
    rows = store.query("SELECT metric, value FROM quality_metrics WHERE dataset = ?", (dataset,))
    return {r["metric"]: r["value"] for r in rows}


GOOD_ORDER = (1, "2024-01-01 10:00:00", "10.00", "completed")


@pytest.mark.parametrize(
    ("bad", "rules"),
    [
        ((None, "2024-01-01 11:00:00", "5.00", "completed"), ["not_null:customer_id"]),
        ((1, "2024-01-01 11:00:00", "abc", "completed"), ["type:total_amount"]),
        ((1, "2024-01-01 11:00:00", "-5.00", "completed"), ["range:total_amount"]),
        ((1, "2024-01-01 11:00:00", "5.00", "shipped_twice"), ["enum:status"]),
        ((99, "2024-01-01 11:00:00", "5.00", "completed"), ["reference:customer_id"]),
        ((1, "2024-01-01 11:00:00", "2000000", "completed"), ["range:total_amount"]),
        ((99, "2024-01-01 11:00:00", "-1", "lost"), ["enum:status", "range:total_amount", "reference:customer_id"]),
    ],
)
def test_order_rules_quarantine_with_conservation(world, settings, store, bad, rules):
    world.customer(1).order(*GOOD_ORDER).order(*bad).write("2024-01-01", "2024-01-01")
    counts = daily.extract_orders(settings, D1, "run-1", store)
    assert counts.rows_in == counts.rows_out + counts.filtered + counts.rejected
    assert (counts.rows_out, counts.rejected) == (1, 1)
    q = part(settings, "quarantine", "orders").to_pylist()
    assert sorted(q[0]["failed_rules"]) == rules
    assert q[0]["run_id"] == "run-1"
    record = json.loads(q[0]["record"])
    assert record["status"] == bad[3]
    amount = bad[2] if bad[2] == "abc" else str(Decimal(bad[2]).normalize())  # SQLite NUMERIC affinity
    assert Decimal(record["total_amount"]).normalize() == Decimal(amount) if amount != "abc" else record[
        "total_amount"] == "abc"
    m = metrics(store, "orders")
    assert m["rows_in"] == 2 and m["rows_passed"] == 1 and m["rows_quarantined"] == 1
    assert all(m[f"rule:{r}"] == 1 for r in rules)


def test_impossible_timestamp_is_quarantined_as_a_type_error(world, settings, store):
    world.customer(1).order(*GOOD_ORDER).order(1, "2024-01-01 25:00:00", "5")
    world.write("2024-01-01", "2024-01-01")
    counts = daily.extract_orders(settings, D1, "r", store)
    assert (counts.rows_in, counts.rows_out, counts.rejected) == (2, 1, 1)
    assert part(settings, "quarantine", "orders")["failed_rules"].to_pylist() == [["type:order_ts"]]


def ticket(tid, **kw):
    base = {"ticket_id": tid, "customer_id": 1, "created_at": "2024-01-01T10:00:00Z", "category": "billing",
            "priority": "low", "resolved_at": None}
    return {**base, **kw}


def test_ticket_rules_malformed_lines_and_duplicates_conserve(world, settings, store):
    world.customer(1)
    lines = [
        ticket("T1"),  # good
        ticket("T1", priority="high"),  # duplicate key: the first occurrence passes
        ticket("T2", priority="urgent"),
        ticket("T3", resolved_at="2024-01-01T09:00:00Z"),
        ticket("T4", category=None),
        ticket("T5", customer_id=42),  # unknown customer
        ticket("T6", created_at="2024-01-05T10:00:00Z"),  # after the interval
        ticket("T7", customer_id="x1"),
        b'{"ticket_id": "T8", "customer_id": 1, "created_at": "2024-01-01T1',  # truncated JSON
        b'{"ticket_id": "T\xff9"}',  # invalid UTF-8
        b"[1, 2, 3]",  # valid JSON, wrong shape: not a record
    ]
    for line in lines:
        world.line("support_tickets", "2024-01-01", line)
    world.write("2024-01-01", "2024-01-01")
    counts = daily.ingest_support_tickets(settings, D1, "r", store)
    assert counts.rows_in == len(lines) == counts.rows_out + counts.rejected
    assert counts.rows_out == 1
    q = part(settings, "quarantine", "support_tickets").to_pylist()
    by_record = sorted(r["failed_rules"][0] for r in q)
    assert by_record == sorted([
        "unique:ticket_id", "enum:priority", "order:resolved_at", "not_null:category", "reference:customer_id",
        "range:created_at", "type:customer_id", "malformed_json", "invalid_utf8", "malformed_json",
    ])
    assert part(settings, "raw", "support_tickets")["priority"].to_pylist() == ["low"]  # the first T1 won
    m = metrics(store, "support_tickets")
    assert m["rows_in"] == len(lines) and m["rows_quarantined"] == len(lines) - 1
    assert m["rule:malformed_json"] == 2 and m["rule:invalid_utf8"] == 1
    assert m["null_rate:category"] == pytest.approx(1 / 8)


def test_marketing_rules(world, settings, store):
    world.customer(1)
    world.marketing("2024-01-01", "M1", 1, "email_open", "2024-01-01T09:00:00Z")
    world.marketing("2024-01-01", "M2", 1, "sms_open", "2024-01-01T09:00:00Z")
    world.marketing("2024-01-01", "M3", 1, "email_click", "yesterday")
    world.marketing("2024-01-01", "M1", 1, "email_open", "2024-01-01T09:00:00Z")
    world.write("2024-01-01", "2024-01-01")
    counts = daily.ingest_marketing_events(settings, D1, "r", store)
    assert (counts.rows_in, counts.rows_out, counts.rejected) == (4, 1, 3)
    rules = sorted(r for rs in part(settings, "quarantine", "marketing_events")["failed_rules"].to_pylist() for r in rs)
    assert rules == ["enum:event_type", "type:event_ts", "unique:event_id"]


def test_quarantine_list_show_and_release_after_the_source_is_fixed(world, settings, store):
    world.customer(1).order(*GOOD_ORDER).order(1, "2024-01-01 11:00:00", "5.00", "shipped_twice")
    world.order(1, "2024-01-01 12:00:00", "-3.00").write("2024-01-01", "2024-01-01")
    daily.extract_orders(settings, D1, "r", store)

    summary = quarantine_summary(settings, "orders")
    assert summary == [
        {"dataset": "orders", "date": D1, "rows": 2, "by_rule": {"enum:status": 1, "range:total_amount": 1}}
    ]
    shown = quarantine_rows(settings, "orders", D1, rule="enum:status")
    assert [r["record"]["status"] for r in shown] == ["shipped_twice"]
    cli = CliRunner().invoke(app, ["quarantine", "list", "--home", str(settings.home)])
    assert cli.exit_code == 0 and "orders" in cli.output and "total: 2 rows" in cli.output
    cli = CliRunner().invoke(app, ["quarantine", "show", "orders", "--date", "2024-01-01", "--rule", "enum:status",
                                   "--home", str(settings.home)])
    assert cli.exit_code == 0 and "shipped_twice" in cli.output and "-3" not in cli.output

    con = sqlite3.connect(settings.source_db)  # the source team fixes one of the two rows
    con.execute("UPDATE orders SET status = 'completed' WHERE status = 'shipped_twice'")
    con.commit()
    con.close()
    result = release(settings, store, "orders", D1, by="ops")
    assert (result.quarantined_before, result.quarantined_after, result.released) == (2, 1, 1)
    assert part(settings, "raw", "orders").num_rows == 2
    assert part(settings, "quarantine", "orders")["failed_rules"].to_pylist() == [["range:total_amount"]]
    row = store.query("SELECT released_by, quarantined_before, quarantined_after FROM quality_releases")[0]
    assert tuple(row) == ("ops", 2, 1)
