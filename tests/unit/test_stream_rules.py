"""Rule semantics on hand-made sequences: window edges, re-arm, out-of-order, late, VIP, refunds."""

from __future__ import annotations

from decimal import Decimal

import pytest

from headwater.domain.records import Alert
from headwater.errors import ConfigError
from headwater.stream.config import RuleConfig, StreamConfig
from headwater.stream.rules import AT_RISK, AlertRecord, _alert, alert_id, encode_alert
from tests.unit.stream_helpers import World, at, order, refund, ticket

pytestmark = pytest.mark.usefixtures("engine")  # each test on both engines (tests/unit/conftest.py)


def risk(world: World) -> list[dict]:
    return [a for a in world.alerts() if a["alert_type"] == "customer_at_risk"]


def test_three_tickets_within_30_days_alert_once_on_the_third(tmp_path):
    w = World(tmp_path)
    w.feed(ticket("E1", 1, at(0)), ticket("E2", 1, at(10)), ticket("E3", 1, at(20)), ticket("E4", 1, at(21)))
    alerts = risk(w)
    assert len(alerts) == 1  # the 4th ticket continues the episode: no storm
    a = alerts[0]
    assert a["customer_id"] == 1 and a["event_timestamp"].startswith("2024-03-21")
    assert a["alert_id"] == alert_id("customer_at_risk", 1, "E3")
    assert "3 support tickets" in a["reason"] and a["recommended_action"]


def test_the_stream_alert_is_the_domain_alert_byte_for_byte():
    # the hot path builds msgspec structs; what it writes must be what Alert.model_dump_json() writes
    assert AlertRecord.__struct_fields__ == tuple(Alert.model_fields)
    for ts_ms in (0, 1_700_000_000_123, 1_700_000_000_001, -1_000, 253_402_300_799_999):
        a = _alert(AT_RISK, -5, "E1", ts_ms, 'reason with "quotes", é and a\nnewline')
        ref = Alert(**{f: getattr(a, f) for f in a.__struct_fields__})
        assert encode_alert(a).decode() == ref.model_dump_json()


def test_window_edge_exactly_30_days_apart_does_not_count(tmp_path):
    w = World(tmp_path)
    # window is (t - 30d, t]: the ticket at day 0 is out of the window of the ticket at day 30
    w.feed(ticket("E1", 1, at(0)), ticket("E2", 1, at(15)), ticket("E3", 1, at(30)))
    assert risk(w) == []
    w.feed(ticket("E4", 1, at(30, hours=1)))
    assert [a["alert_id"] for a in risk(w)] == [alert_id("customer_at_risk", 1, "E4")]


def test_just_inside_the_window_counts(tmp_path):
    w = World(tmp_path)
    w.feed(ticket("E1", 1, at(0)), ticket("E2", 1, at(15)), ticket("E3", 1, at(29, hours=23)))
    assert len(risk(w)) == 1


def test_two_high_priority_tickets_alert(tmp_path):
    w = World(tmp_path)
    w.feed(ticket("E1", 1, at(0), "high"), ticket("E2", 1, at(29), "high"))
    assert [a["alert_id"] for a in risk(w)] == [alert_id("customer_at_risk", 1, "E2")]
    assert "2 high priority" in risk(w)[0]["reason"]


def test_high_priority_30_days_apart_do_not_alert(tmp_path):
    w = World(tmp_path)
    w.feed(ticket("E1", 1, at(0), "high"), ticket("E2", 1, at(30), "high"))
    assert risk(w) == []


def test_rearm_after_the_condition_stops_holding(tmp_path):
    w = World(tmp_path)
    w.feed(ticket("E1", 1, at(0)), ticket("E2", 1, at(1)), ticket("E3", 1, at(2)),  # episode 1
           ticket("E4", 1, at(20)),  # still >= 3 in window: same episode
           ticket("E5", 1, at(60)),  # alone in its window: condition false -> re-armed
           ticket("E6", 1, at(61)), ticket("E7", 1, at(62)))  # episode 2
    assert [a["alert_id"] for a in risk(w)] == [alert_id("customer_at_risk", 1, "E3"),
                                                alert_id("customer_at_risk", 1, "E7")]


def test_customers_are_independent(tmp_path):
    w = World(tmp_path)
    w.feed(ticket("E1", 1, at(0)), ticket("E2", 2, at(1)), ticket("E3", 1, at(2)), ticket("E4", 2, at(3)),
           ticket("E5", 1, at(4)))
    assert [a["customer_id"] for a in risk(w)] == [1]


def test_out_of_order_within_lateness_equals_in_order(tmp_path):
    in_order = [ticket("E1", 1, at(0)), ticket("E2", 1, at(0, hours=1)), ticket("E3", 1, at(0, hours=2)),
                ticket("E4", 1, at(0, hours=3))]
    shuffled = [in_order[0], in_order[2], in_order[1], in_order[3]]  # E2 arrives after E3 (< 6h lateness)
    cfg = StreamConfig(rules=RuleConfig(allowed_lateness_s=6 * 3600), batch_size=50)
    a, b = World(tmp_path / "a", cfg), World(tmp_path / "b", cfg)
    a.feed(*in_order)
    counts = b.feed(*shuffled)
    assert counts["late"] == 0
    assert [x["alert_id"] for x in risk(a)] == [x["alert_id"] for x in risk(b)]
    assert risk(b)[0]["alert_id"] == alert_id("customer_at_risk", 1, "E3")  # E3 is 3rd in event time


def test_out_of_order_ticket_after_the_alert_does_not_move_or_repeat_it(tmp_path):
    cfg = StreamConfig(rules=RuleConfig(allowed_lateness_s=6 * 3600), batch_size=50)
    w = World(tmp_path, cfg)
    w.feed(ticket("E1", 1, at(0)), ticket("E3", 1, at(0, hours=2)), ticket("E4", 1, at(0, hours=3)),
           ticket("E2", 1, at(0, hours=1)))
    assert [x["alert_id"] for x in risk(w)] == [alert_id("customer_at_risk", 1, "E4")]


def test_late_event_goes_to_late_topic_with_reason_and_counts_conserve(tmp_path):
    cfg = StreamConfig(rules=RuleConfig(allowed_lateness_s=3600), batch_size=50)
    w = World(tmp_path, cfg)
    counts = w.feed(ticket("E1", 1, at(5)), ticket("E2", 1, at(5, hours=-2)), ticket("E3", 1, at(5, hours=-0.5)))
    assert counts["late"] == 1 and counts["processed"] == 2
    late = w.topic("customer_events_late")
    assert len(late) == 1 and late[0]["event_id"] == "E2"
    assert "behind the partition watermark" in late[0]["reason"] and late[0]["allowed_lateness_s"] == 3600
    assert counts["in"] == counts["processed"] + counts["dead_lettered"] + counts["late"] == 3


def test_late_ticket_inside_lateness_that_merges_episodes_does_not_storm(tmp_path):
    cfg = StreamConfig(rules=RuleConfig(allowed_lateness_s=40 * 86400), batch_size=50)
    w = World(tmp_path, cfg)
    w.feed(ticket("E1", 1, at(0), "high"), ticket("E2", 1, at(1), "high"),  # episode A alerts on E2
           ticket("E3", 1, at(45)), ticket("E4", 1, at(46), "high"), ticket("E5", 1, at(47), "high"))  # B
    assert len(risk(w)) == 2
    w.feed(ticket("E6", 1, at(20), "high"))  # bridges A and B: no new alert, alerts are never retracted
    assert len(risk(w)) == 2


def test_large_refund_threshold_is_strict(tmp_path):
    cfg = StreamConfig(rules=RuleConfig(large_refund_threshold=Decimal("500")), batch_size=50)
    w = World(tmp_path, cfg)
    w.feed(refund("E1", 1, at(0), "500.00"), refund("E2", 1, at(1), "500.01"))
    big = [a for a in w.alerts() if a["alert_type"] == "large_refund"]
    assert [a["alert_id"] for a in big] == [alert_id("large_refund", 1, "E2")]
    assert "500.01" in big[0]["reason"]


def test_refunds_outside_the_canonical_form_alert_as_python_decides(tmp_path):
    # decoded by Pydantic, not by the core's canonical reader: an order id beyond 64 bits, a JSON
    # number amount, and a threshold with more than two decimals
    cfg = StreamConfig(rules=RuleConfig(large_refund_threshold=Decimal("500.005")), batch_size=50)
    w = World(tmp_path, cfg)
    big = refund("E1", 1, at(0), "900.00").replace('"order_id": 7', f'"order_id": {2**70}')
    counts = w.feed(big, refund("E2", 1, at(1), 500.01), refund("E3", 1, at(2), "500.00"),
                    refund("E4", 1, at(3), "500.01"))
    assert counts == counts | {"in": 4, "processed": 4, "dead_lettered": 0, "alerts": 3}
    assert [a["reason"] for a in w.alerts()] == [
        f"refund of 900.00 on order {2**70} exceeds 500.005", "refund of 500.01 on order 7 exceeds 500.005",
        "refund of 500.01 on order 7 exceeds 500.005"]


def test_vip_escalation_counts_orders_of_the_last_90_days(tmp_path):
    w = World(tmp_path)
    w.feed(order("E1", 1, at(0), "600.00"), order("E2", 1, at(50), "450.00"),
           ticket("E3", 1, at(60), "high"),  # 1050 in (t-90d, t]: VIP
           ticket("E4", 1, at(95), "high"),  # E1 left the window: 450 only
           ticket("E5", 1, at(96), "low"))
    vip = [a for a in w.alerts() if a["alert_type"] == "vip_escalation"]
    assert [a["alert_id"] for a in vip] == [alert_id("vip_escalation", 1, "E3")]


def test_vip_late_order_rechecks_the_ticket(tmp_path):
    cfg = StreamConfig(rules=RuleConfig(allowed_lateness_s=6 * 3600), batch_size=50)
    w = World(tmp_path, cfg)
    w.feed(order("E1", 1, at(0), "900.00"), ticket("E2", 1, at(1), "high"), order("E3", 1, at(1, hours=-1), "200"))
    vip = [a for a in w.alerts() if a["alert_type"] == "vip_escalation"]
    assert [a["alert_id"] for a in vip] == [alert_id("vip_escalation", 1, "E2")]


def test_vip_order_at_the_same_time_as_the_ticket_rechecks_it(tmp_path):
    # (t - 90d, t] includes t: an order stamped like the ticket, arriving after it, still counts
    w = World(tmp_path)
    w.feed(order("E1", 1, at(0), "900.00"), ticket("E2", 1, at(1), "high"), order("E3", 1, at(1), "200.00"),
           order("E4", 1, at(2), "5000.00"))
    vip = [a for a in w.alerts() if a["alert_type"] == "vip_escalation"]
    assert [a["alert_id"] for a in vip] == [alert_id("vip_escalation", 1, "E2")]


def test_duplicate_event_id_is_processed_once(tmp_path):
    w = World(tmp_path)
    t = ticket("E1", 1, at(0), "high")
    counts = w.feed(t, t, ticket("E2", 1, at(1)), refund("E3", 1, at(1), "900"), refund("E3", 1, at(1), "900"))
    assert counts["duplicates"] == 2 and counts["processed"] == 5
    assert risk(w) == []  # E1 counted once: 1 high + 1 low is below both thresholds
    assert len([a for a in w.alerts() if a["alert_type"] == "large_refund"]) == 1


def test_thresholds_below_two_are_rejected():
    with pytest.raises(ConfigError):
        RuleConfig(risk_ticket_count=1)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("risk_window_days", 0, "rule windows"), ("vip_window_days", 36_501, "rule windows"),
    ("allowed_lateness_s", -1, "allowed lateness"), ("allowed_lateness_s", 366 * 86_400 + 1, "allowed lateness"),
    ("large_refund_threshold", Decimal("NaN"), "finite"), ("vip_spend_threshold", Decimal("Infinity"), "finite")])
def test_rule_settings_out_of_bounds_are_rejected(field, value, message):
    with pytest.raises(ConfigError, match=message):
        RuleConfig(**{field: value})


def test_thresholds_with_more_decimals_than_cents_compare_exactly(tmp_path):
    # VIP: 999.995 needs 1000.00 of orders (999.99 is below it); refund: 100.00 is above 99.99999...
    many = Decimal("99.99999999999999999999999999999")  # 31 digits: a Decimal product would round it to 100
    cfg = StreamConfig(rules=RuleConfig(vip_spend_threshold=Decimal("999.995"), large_refund_threshold=many),
                       batch_size=50)
    w = World(tmp_path, cfg)
    counts = w.feed(order("E1", 1, at(0), "999.99"), order("E3", 2, at(0), "1000.00"), ticket("E2", 1, at(1), "high"),
                    ticket("E4", 2, at(1), "high"), refund("E5", 3, at(1), "100.00"), refund("E6", 3, at(1), "99.99"))
    assert counts["processed"] == 6
    assert sorted((a["alert_type"], a["customer_id"]) for a in w.alerts()) == [
        ("large_refund", 3), ("vip_escalation", 2)]
