"""Each metric on tiny hand-computed worlds, run through the real extract -> lake -> SQL -> warehouse path."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa
import pytest

from headwater.batch.engine import DuckDBEngine
from headwater.domain.schemas import RAW_SCHEMAS
from headwater.pipelines import daily
from headwater.pipelines.daily import run_range
from headwater.storage.warehouse import DuckDBWarehouse


def snapshot(settings, day: str) -> dict[int, dict]:
    wh = DuckDBWarehouse(settings.warehouse)
    try:
        rows = wh.query(
            "SELECT * FROM customer_metrics WHERE snapshot_date = ? ORDER BY customer_id", [date.fromisoformat(day)]
        ).to_pylist()
    finally:
        wh.close()
    return {r["customer_id"]: r for r in rows}


@pytest.fixture
def leap_world(world):
    """Customers 1-5 around the 2024 leap day, with midnight boundaries and cancelled orders."""
    w = world.customer(1).customer(2).customer(3).customer(4).customer(5)
    w.order(1, "2024-02-29 10:00:00", 100.00)  # one-order customer on the leap day
    w.order(2, "2024-02-28 23:59:59", 50.00)  # last second of the 28th
    w.order(2, "2024-02-29 00:00:00", "25.50")  # first second of the 29th
    w.order(2, "2024-03-01 08:00:00", 999, "cancelled")  # excluded everywhere
    w.order(3, "2024-02-28 12:00:00", 10, "cancelled")  # only cancelled orders
    w.order(4, "2024-03-01 00:00:00", "10.00")
    w.order(4, "2024-03-01 13:00:00", "0.01")
    w.order(4, "2024-03-01 23:59:59", "0.01")
    w.order(5, "2024-02-28 09:00:00", "33.33", "refunded")  # refunded still counts (the case excludes cancelled only)
    # customer 1: two tickets on 03-01, one high priority resolved after 5h, one still open
    w.ticket("2024-03-01", "T1", 1, "2024-03-01T09:00:00Z", "high", resolved_at="2024-03-01T14:00:00Z")
    w.ticket("2024-03-01", "T2", 1, "2024-03-01T10:00:00Z", "low")
    # customer 2: a ticket resolved after the snapshot's end is still open as of 03-01
    w.ticket("2024-02-29", "T3", 2, "2024-02-29T12:00:00Z", "medium", resolved_at="2024-03-02T12:00:00Z")
    w.marketing("2024-03-01", "M1", 1, "email_open", "2024-03-01T09:00:00Z")
    w.marketing("2024-03-01", "M2", 1, "email_open", "2024-03-01T09:05:00Z")
    w.marketing("2024-03-01", "M3", 1, "email_open", "2024-03-01T09:06:00Z")
    w.marketing("2024-03-01", "M4", 1, "email_open", "2024-03-01T09:07:00Z")
    w.marketing("2024-03-01", "M5", 1, "email_click", "2024-03-01T09:10:00Z")
    w.marketing("2024-03-01", "M6", 2, "campaign_view", "2024-03-01T11:00:00Z")
    return w.write("2024-02-28", "2024-03-01")


def test_order_metrics_by_hand(leap_world, settings, store):
    run_range(settings, date(2024, 2, 28), date(2024, 3, 1), store)

    d28 = snapshot(settings, "2024-02-28")
    assert set(d28) == {2, 5}  # customer 3 has only cancelled orders: no snapshot row
    assert d28[2]["total_revenue"] == Decimal("50.00") and d28[2]["order_count"] == 1

    d29 = snapshot(settings, "2024-02-29")
    c1 = d29[1]
    assert (c1["first_order_date"], c1["last_order_date"]) == (date(2024, 2, 29), date(2024, 2, 29))
    assert c1["customer_lifetime_days"] == 1 and c1["days_since_last_order"] == 0
    assert c1["estimated_clv"] == Decimal("0.55")  # 100 * 1 * (1/365) * 2 = 0.5479 -> 0.55
    c2 = d29[2]
    assert c2["order_count"] == 2 and c2["total_revenue"] == Decimal("75.50")
    assert c2["avg_order_value"] == Decimal("37.75")
    assert c2["first_order_date"] == date(2024, 2, 28) and c2["last_order_date"] == date(2024, 2, 29)
    assert c2["customer_lifetime_days"] == 2
    assert c2["estimated_clv"] == Decimal("0.83")  # 37.75 * 2 * (2/365) * 2 = 0.8274 -> 0.83

    d01 = snapshot(settings, "2024-03-01")
    assert set(d01) == {1, 2, 4, 5}
    assert d01[2]["order_count"] == 2  # the cancelled 999.00 order never counts
    assert d01[2]["days_since_last_order"] == 1
    assert d01[1]["days_since_last_order"] == 1
    c4 = d01[4]
    assert c4["order_count"] == 3 and c4["total_revenue"] == Decimal("10.02")
    assert c4["avg_order_value"] == Decimal("3.34")  # 10.02 / 3 = 3.34 exactly
    assert d01[5]["total_revenue"] == Decimal("33.33") and d01[5]["days_since_last_order"] == 2


def test_avg_and_clv_round_half_up_in_cents(world, settings, store):
    world.customer(1).order(1, "2024-01-01 10:00:00", "0.01").order(1, "2024-01-01 11:00:00", "0.02")
    world.customer(2).order(2, "2024-01-01 10:00:00", "10.00").order(2, "2024-01-01 11:00:00", "0.00")
    world.order(2, "2024-01-01 12:00:00", "0.00").write("2024-01-01", "2024-01-01")
    run_range(settings, date(2024, 1, 1), date(2024, 1, 1), store)
    snap = snapshot(settings, "2024-01-01")
    assert snap[1]["avg_order_value"] == Decimal("0.02")  # 0.015 rounds half-up
    assert snap[2]["avg_order_value"] == Decimal("3.33")  # 3.333...
    assert snap[2]["estimated_clv"] == Decimal("0.05")  # 10.00 * 1 * 2 / 365 = 0.0548


def test_support_and_marketing_enrichment(leap_world, settings, store):
    run_range(settings, date(2024, 2, 28), date(2024, 3, 1), store)
    d01 = snapshot(settings, "2024-03-01")
    c1, c2, c4 = d01[1], d01[2], d01[4]
    assert (c1["tickets_30d"], c1["tickets_90d"], c1["high_priority_tickets_30d"]) == (2, 2, 1)
    assert c1["open_tickets"] == 1
    assert c1["mean_resolution_hours_90d"] == pytest.approx(5.0)
    assert (c1["email_opens_30d"], c1["email_clicks_30d"], c1["campaign_views_30d"]) == (4, 1, 0)
    assert c1["click_rate_30d"] == pytest.approx(0.25)
    assert c2["open_tickets"] == 1 and c2["mean_resolution_hours_90d"] is None  # resolved only on 03-02
    assert c2["campaign_views_30d"] == 1 and c2["click_rate_30d"] is None  # no opens: rate undefined
    # no tickets, no marketing: zeros, not nulls
    assert (c4["tickets_30d"], c4["open_tickets"], c4["email_opens_30d"]) == (0, 0, 0)
    # as of 02-29 customer 2's ticket is open and counted; customer 1's tickets do not exist yet
    d29 = snapshot(settings, "2024-02-29")
    assert d29[2]["tickets_30d"] == 1 and d29[1]["tickets_30d"] == 0


def test_ticket_windows_edges(world, settings, store):
    """A ticket 29 days before D is inside the 30-day window; 30 days before is outside (window = D-29..D)."""
    world.customer(1).order(1, "2024-01-01 10:00:00", 5)
    world.ticket("2024-01-01", "T1", 1, "2024-01-01T23:59:59Z", "high", resolved_at="2024-01-02T00:59:59Z")
    world.ticket("2024-01-02", "T2", 1, "2024-01-02T00:00:00Z", "high", resolved_at="2024-01-02T02:00:00Z")
    world.customer(2).order(2, "2024-01-31 10:00:00", 5)  # the source has reached the end of the range
    world.write("2024-01-01", "2024-01-31")
    for day in range(1, 32):  # ingest every day; compute only D (a full recompute, no state of D-1)
        for step in (daily.extract_orders, daily.ingest_support_tickets, daily.ingest_marketing_events):
            step(settings, date(2024, 1, day), "t", store)
    for step in (daily.compute_order_metrics, daily.load_warehouse):
        step(settings, date(2024, 1, 31), "t", store)
    d31 = snapshot(settings, "2024-01-31")[1]
    assert d31["tickets_30d"] == 1  # T2 (first second of D-29) in; T1 (last second of D-30) out
    assert d31["high_priority_tickets_30d"] == 1
    assert d31["tickets_90d"] == 2
    assert d31["mean_resolution_hours_90d"] == pytest.approx(1.5)


def test_churn_risk_rises_with_recency(world, settings, store):
    world.customer(1).order(1, "2024-01-01 10:00:00", 5).order(1, "2024-01-02 10:00:00", 5)
    world.customer(2).order(2, "2024-01-08 10:00:00", 5)  # the source has reached the end of the range
    world.write("2024-01-01", "2024-01-08")
    run_range(settings, date(2024, 1, 1), date(2024, 1, 8), store)
    # expected gap 1 day: r = days since last order; risk = logistic(1.5 (r - 2))
    risks = [snapshot(settings, f"2024-01-{d:02d}")[1]["churn_risk"] for d in range(2, 9)]
    assert risks == sorted(risks) and risks[0] < 0.06 and risks[-1] > 0.99
    assert [snapshot(settings, f"2024-01-0{d}")[1]["churn_risk_level"] for d in (2, 4, 5)] == ["low", "medium", "high"]


def test_money_is_exact_at_both_ends_of_the_range():
    """avg_order_value and estimated_clv, rounded half-up in cents, on ordinary amounts (BIGINT
    arithmetic) and on revenue near DECIMAL(18, 2)'s limit (the HUGEINT branch), against Decimal."""
    day = date(2024, 12, 30)
    state = pa.table(
        {
            "customer_id": [1, 2, 3],
            "total_revenue": [Decimal("100.01"), Decimal("12345678901.23"), Decimal("99999999999999.99")],
            "order_count": [3, 7, 9],
            "first_order_date": [date(2024, 1, 1), date(2023, 6, 1), date(2023, 12, 1)],
            "last_order_date": [date(2024, 12, 30), date(2024, 12, 1), date(2024, 12, 29)],
        },
        schema=daily.ORDER_STATE_SCHEMA,
    )
    engine = DuckDBEngine()
    try:
        rows = engine.run(
            daily.CUSTOMER_METRICS,
            {
                "order_state": state,
                "tickets": pa.Table.from_batches([], daily.TICKET_STATE_SCHEMA),
                "marketing": pa.Table.from_batches([], RAW_SCHEMAS["marketing_events"]),
            },
            daily.window_params(day),
        ).to_pylist()
    finally:
        engine.close()
    cent = Decimal("0.01")
    for row, src in zip(rows, state.to_pylist(), strict=True):
        lifetime = (src["last_order_date"] - src["first_order_date"]).days + 1
        total = src["total_revenue"]
        assert row["avg_order_value"] == (total / src["order_count"]).quantize(cent, ROUND_HALF_UP)
        assert row["estimated_clv"] == (total * lifetime * 2 / 365).quantize(cent, ROUND_HALF_UP)
    assert rows[2]["estimated_clv"] > Decimal("10") ** 14  # really past the BIGINT branch's bound
