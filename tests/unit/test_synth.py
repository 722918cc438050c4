"""The synthetic world generator: determinism, realism invariants and exact bad-record accounting.

Worlds are generated into real folders and read back the way the sources will read them.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

import headwater.synth as synth
from headwater.config import Settings
from headwater.domain.enums import ORDER_STATUSES
from headwater.domain.records import CustomerEvent, MarketingEvent, SupportTicket
from headwater.errors import ConfigError
from headwater.synth import MANIFEST_FILE, WorldManifest, WorldSpec, estimate_orders, generate_world
from headwater.synth.bad_records import BadRecordLog, allocate
from headwater.synth.customers import generate_customers
from headwater.synth.events import build_events, event_lines
from headwater.synth.orders import generate_orders
from headwater.synth.spec import DAY_S
from headwater.synth.tickets import PRECHURN_DAYS, generate_tickets

START = date(2024, 2, 10)  # the range crosses 2024-02-29
CLEAN = WorldSpec(customers=1500, days=45, start=START, seed=11, bad_records=0.0)
DIRTY = WorldSpec(customers=1500, days=45, start=START, seed=11, bad_records=0.12)


def _world(tmp_path_factory: pytest.TempPathFactory, spec: WorldSpec) -> tuple[Settings, WorldManifest]:
    settings = Settings(home=tmp_path_factory.mktemp("world"))
    return settings, generate_world(settings, spec)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, WorldManifest]:
    return _world(tmp_path_factory, CLEAN)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, WorldManifest]:
    return _world(tmp_path_factory, DIRTY)


def _digests(settings: Settings) -> dict[str, str]:
    """sha256 of every generated data file, keyed by path relative to its root."""
    out = {"source_db": hashlib.sha256(settings.source_db.read_bytes()).hexdigest()}
    out["events"] = hashlib.sha256(settings.events_file.read_bytes()).hexdigest()
    for path in sorted(settings.landing_dir.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(settings.landing_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _orders(settings: Settings) -> list[tuple]:
    with sqlite3.connect(settings.source_db) as con:
        return con.execute(
            "SELECT order_id, customer_id, order_ts, total_amount, status, updated_at"
            " FROM orders ORDER BY order_id"
        ).fetchall()


def _landing_lines(settings: Settings, dataset: str) -> list[tuple[str, bytes]]:
    """(drop date, raw line bytes) for every line of every daily drop."""
    out = []
    for part in sorted((settings.landing_dir / dataset).glob("date=*/part-0000.jsonl")):
        day = part.parent.name.removeprefix("date=")
        out.extend((day, line) for line in part.read_bytes().splitlines())
    return out


def _parse_ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ---------------------------------------------------------------- determinism and replacement


def test_same_spec_is_byte_identical_and_regenerating_replaces_old_output(tmp_path: Path) -> None:
    spec = WorldSpec(customers=300, days=8, start=START, seed=5, bad_records=0.1)
    first = Settings(home=tmp_path / "a")
    generate_world(first, WorldSpec(customers=400, days=12, start=START, seed=9, bad_records=0.2))
    generate_world(first, spec)  # overwrite a bigger, different world in place
    second = Settings(home=tmp_path / "b")
    generate_world(second, spec)

    assert _digests(first) == _digests(second)
    assert len(list((first.landing_dir / "support_tickets").iterdir())) == 8
    manifest_before = (first.home / MANIFEST_FILE).read_bytes()
    generate_world(first, spec)
    assert (first.home / MANIFEST_FILE).read_bytes() == manifest_before

    other_seed = Settings(home=tmp_path / "c")
    generate_world(other_seed, WorldSpec(customers=300, days=8, start=START, seed=6, bad_records=0.1))
    assert _digests(other_seed)["events"] != _digests(first)["events"]
    assert _digests(other_seed)["source_db"] != _digests(first)["source_db"]


def test_bad_record_rate_does_not_change_the_clean_world(clean, dirty) -> None:
    (_, clean_manifest), (_, dirty_manifest) = clean, dirty
    assert clean_manifest.rows == dirty_manifest.rows
    assert clean_manifest.stats == dirty_manifest.stats


def test_manifest_is_written_and_round_trips(clean) -> None:
    settings, manifest = clean
    assert WorldManifest.load(settings.home / MANIFEST_FILE) == manifest
    assert manifest.spec == CLEAN.to_dict()


def test_estimate_orders_is_close_to_what_is_generated(clean) -> None:
    _, manifest = clean
    assert abs(estimate_orders(CLEAN) - manifest.rows["orders"]) < 0.05 * manifest.rows["orders"]


def test_demo_sized_world_has_tens_of_thousands_of_orders() -> None:
    assert 20_000 <= estimate_orders(WorldSpec(customers=3000, days=90)) <= 60_000


def test_progress_reaches_one_and_never_goes_back(tmp_path: Path) -> None:
    seen: list[float] = []
    generate_world(Settings(home=tmp_path), WorldSpec(customers=50, days=3), lambda _s, f: seen.append(f))
    assert seen[-1] == 1.0
    assert seen == sorted(seen)


@pytest.mark.parametrize(
    "kwargs",
    [{"bad_records": 0.6}, {"bad_records": -0.1}, {"days": 0}, {"customers": 0}, {"start": "2024-13-01"}],
)
def test_invalid_specs_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        WorldSpec(**kwargs)


# ---------------------------------------------------------------- clean world invariants


def test_orders_are_valid_realistic_and_reference_customers(clean) -> None:
    settings, manifest = clean
    orders = _orders(settings)
    with sqlite3.connect(settings.source_db) as con:
        customer_ids = {row[0] for row in con.execute("SELECT customer_id FROM customers")}
        signup = dict(con.execute("SELECT customer_id, signup_date FROM customers").fetchall())
        indexes = {row[1] for row in con.execute("PRAGMA index_list(orders)")}
        journal = con.execute("PRAGMA journal_mode").fetchone()[0]
    assert len(orders) == manifest.rows["orders"] > 5000
    assert len(customer_ids) == CLEAN.customers
    assert "orders_by_ts" in indexes and journal == "wal"

    lo = datetime(START.year, START.month, START.day, tzinfo=UTC)
    hi = lo + timedelta(days=CLEAN.days)
    statuses = Counter(row[4] for row in orders)
    for _order_id, customer_id, order_ts, amount, status, updated_at in orders:
        assert customer_id in customer_ids
        ts = _parse_ts(order_ts)
        assert lo <= ts < hi
        assert ts.date().isoformat() >= signup[customer_id]
        assert amount > 0 and round(amount * 100) == pytest.approx(amount * 100)
        assert status in ORDER_STATUSES
        assert _parse_ts(updated_at) >= ts
    assert 0.035 <= statuses["cancelled"] / len(orders) <= 0.065
    assert 0.012 <= statuses["refunded"] / len(orders) <= 0.035
    days = Counter(_parse_ts(row[2]).date() for row in orders)
    assert days[date(2024, 2, 29)] > 0
    assert (
        sum(1 for row in orders if row[2].endswith(" 00:00:00"))
        == manifest.stats["orders"]["at_midnight"]
        > 0
    )
    weekend = [n for d, n in days.items() if d.weekday() >= 5]
    weekday = [n for d, n in days.items() if d.weekday() < 5]
    assert sum(weekend) / len(weekend) > 1.1 * sum(weekday) / len(weekday)


def test_every_day_has_a_drop_with_a_success_flag(clean) -> None:
    settings, _ = clean
    expected = {f"date={START + timedelta(days=k)}" for k in range(CLEAN.days)}
    for dataset in ("support_tickets", "marketing_events"):
        folders = {p.name for p in (settings.landing_dir / dataset).iterdir()}
        assert folders == expected
        for name in expected:
            assert (settings.landing_dir / dataset / name / "part-0000.jsonl").is_file()
            assert (settings.landing_dir / dataset / name / "_SUCCESS").read_bytes() == b""


def test_tickets_are_valid_and_land_on_their_creation_day(clean) -> None:
    settings, manifest = clean
    lines = _landing_lines(settings, "support_tickets")
    tickets = [(day, SupportTicket.model_validate_json(line)) for day, line in lines]
    assert len(tickets) == manifest.rows["support_tickets"] == manifest.lines["support_tickets"] > 100
    assert len({t.ticket_id for _, t in tickets}) == len(tickets)
    for day, ticket in tickets:
        assert ticket.created_at.date().isoformat() == day
        assert ticket.resolved_at is None or ticket.resolved_at > ticket.created_at
    high = sum(t.priority == "high" for _, t in tickets) / len(tickets)
    still_open = sum(t.resolved_at is None for _, t in tickets) / len(tickets)
    assert 0.10 <= high <= 0.25
    assert 0.04 <= still_open <= 0.2
    raw = [line.decode() for _, line in lines]
    assert all(json.dumps(json.loads(line)) == line for line in raw)  # json.dumps-compatible text


def test_marketing_events_are_valid_with_realistic_funnel(clean) -> None:
    settings, manifest = clean
    events = [
        (day, MarketingEvent.model_validate_json(line))
        for day, line in _landing_lines(settings, "marketing_events")
    ]
    assert len(events) == manifest.rows["marketing_events"] > 500
    assert all(e.event_ts.date().isoformat() == day for day, e in events)
    assert all(re.fullmatch(r"C\d{4}", e.campaign_id) for _, e in events)
    kinds = Counter(e.event_type for _, e in events)
    assert kinds["email_open"] > kinds["email_click"] > 0 and kinds["campaign_view"] > 0
    assert 0.08 <= kinds["email_click"] / kinds["email_open"] <= 0.25


def test_customer_events_are_time_ordered_and_match_the_sources(clean) -> None:
    settings, manifest = clean
    events = [
        CustomerEvent.model_validate_json(line) for line in settings.events_file.read_bytes().splitlines()
    ]
    assert len(events) == manifest.rows["customer_events"]
    assert [e.event_id for e in events] == [f"E{k:09d}" for k in range(1, len(events) + 1)]
    assert all(a.timestamp <= b.timestamp for a, b in zip(events, events[1:], strict=False))
    payloads = [e.typed_payload() for e in events]  # validates every payload

    orders = {row[0]: row for row in _orders(settings)}
    placed = {
        p.order_id: (e, p) for e, p in zip(events, payloads, strict=True) if e.event_type == "order_placed"
    }
    refunds = {
        p.order_id: (e, p) for e, p in zip(events, payloads, strict=True) if e.event_type == "refund_issued"
    }
    assert set(placed) == {oid for oid, row in orders.items() if row[4] != "cancelled"}
    assert set(refunds) == {oid for oid, row in orders.items() if row[4] == "refunded"}
    for order_id, (event, payload) in placed.items():
        _, customer_id, order_ts, amount, _, updated_at = orders[order_id]
        assert (event.customer_id, event.timestamp, float(payload.amount)) == (
            customer_id,
            _parse_ts(order_ts),
            pytest.approx(amount),
        )
        if order_id in refunds:
            refund_event, refund = refunds[order_id]
            assert refund_event.timestamp == _parse_ts(updated_at) > event.timestamp
            assert refund.amount == payload.amount

    tickets = {
        t.ticket_id: t
        for t in (
            SupportTicket.model_validate_json(line) for _, line in _landing_lines(settings, "support_tickets")
        )
    }
    ticket_events = [
        (e, p) for e, p in zip(events, payloads, strict=True) if e.event_type == "ticket_created"
    ]
    assert len(ticket_events) == len(tickets)
    for event, payload in ticket_events:
        ticket = tickets[payload.ticket_id]
        assert (event.customer_id, event.timestamp, payload.priority) == (
            ticket.customer_id,
            ticket.created_at,
            ticket.priority,
        )


def test_clean_world_reports_no_bad_records(clean) -> None:
    _, manifest = clean
    datasets = ("orders", "support_tickets", "marketing_events", "customer_events")
    assert set(manifest.bad_records) == set(datasets)
    assert all(manifest.bad_count(ds) == 0 for ds in datasets)
    assert manifest.lines == {
        "customers": CLEAN.customers,
        **{k: v for k, v in manifest.rows.items() if k != "customers"},
    }


# ---------------------------------------------------------------- bad records, counted from the files


def _listed(manifest: WorldManifest, dataset: str, kind: str) -> set:
    return set(manifest.bad_records[dataset][kind].ids)


def test_bad_orders_match_the_manifest_exactly(dirty) -> None:
    settings, manifest = dirty
    orders = _orders(settings)
    found: dict[str, set[int]] = {
        "null_customer_id": {r[0] for r in orders if r[1] is None},
        "orphan_customer_id": {r[0] for r in orders if r[1] is not None and r[1] > DIRTY.customers},
        "negative_total_amount": {r[0] for r in orders if r[3] < 0},
        "unparseable_order_ts": {r[0] for r in orders if r[2] == "not-a-date"},
        "impossible_order_ts": {r[0] for r in orders if _TS_SHAPE.fullmatch(r[2]) and not _parses(r[2])},
        "unknown_status": {r[0] for r in orders if r[4] not in ORDER_STATUSES},
    }
    assert set(found) == set(manifest.bad_records["orders"])
    for kind, ids in found.items():
        assert len(ids) == manifest.bad_count("orders", kind) > 0, kind
        assert ids == _listed(manifest, "orders", kind), kind
    total = sum(len(ids) for ids in found.values())
    assert total == round(DIRTY.bad_records * manifest.rows["orders"])


_TS_SHAPE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _parses(value: str) -> bool:
    try:
        _parse_ts(value)
    except ValueError:
        return False
    return True


def _classify(lines: list[bytes], id_key: str) -> tuple[Counter, list[dict]]:
    """Count undecodable and unparsable lines; return the parsed objects for field-level checks."""
    kinds: Counter = Counter()
    objects = []
    for line in lines:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            kinds["invalid_utf8"] += 1
            continue
        try:
            objects.append(json.loads(text))
        except json.JSONDecodeError:
            kinds["malformed_json"] += 1
    ids = Counter(o[id_key] for o in objects)
    kinds["duplicate_" + id_key] = sum(n - 1 for n in ids.values())
    return kinds, objects


def test_bad_tickets_match_the_manifest_exactly(dirty) -> None:
    settings, manifest = dirty
    lines = [line for _, line in _landing_lines(settings, "support_tickets")]
    kinds, objects = _classify(lines, "ticket_id")
    kinds["null_required_field"] = sum(
        any(o[k] is None for k in ("customer_id", "created_at", "category")) for o in objects
    )
    kinds["unknown_priority"] = sum(o["priority"] == "urgent" for o in objects)
    kinds["resolved_before_created"] = sum(
        o["resolved_at"] is not None and o["created_at"] is not None and o["resolved_at"] < o["created_at"]
        for o in objects
    )
    assert set(kinds) == set(manifest.bad_records["support_tickets"])
    for kind, count in kinds.items():
        assert count == manifest.bad_count("support_tickets", kind) > 0, kind
    assert (
        len(lines)
        == manifest.lines["support_tickets"]
        == manifest.rows["support_tickets"] + kinds["duplicate_ticket_id"]
    )


def test_bad_marketing_events_match_the_manifest_exactly(dirty) -> None:
    settings, manifest = dirty
    lines = [line for _, line in _landing_lines(settings, "marketing_events")]
    kinds, objects = _classify(lines, "event_id")
    kinds["null_customer_id"] = sum(o["customer_id"] is None for o in objects)
    kinds["unknown_event_type"] = sum(
        o["event_type"] not in ("email_open", "email_click", "campaign_view") for o in objects
    )
    assert set(kinds) == set(manifest.bad_records["marketing_events"])
    for kind, count in kinds.items():
        assert count == manifest.bad_count("marketing_events", kind) > 0, kind


def test_bad_customer_events_match_the_manifest_exactly(dirty) -> None:
    settings, manifest = dirty
    lines = settings.events_file.read_bytes().splitlines()
    kinds, objects = _classify(lines, "event_id")
    assert kinds.pop("invalid_utf8", 0) == 0 and kinds.pop("duplicate_event_id") == 0
    required = ("event_id", "event_type", "customer_id", "timestamp", "payload")
    kinds["missing_required_field"] = sum(any(k not in o for k in required) for o in objects)
    kinds["wrong_type"] = sum(isinstance(o.get("customer_id"), str) for o in objects)
    kinds["unknown_event_type"] = sum(
        o["event_type"] not in ("order_placed", "ticket_created", "refund_issued") for o in objects
    )
    kinds["negative_refund_amount"] = sum(
        o["event_type"] == "refund_issued" and "payload" in o and o["payload"]["amount"].startswith("-")
        for o in objects
    )
    assert set(kinds) == set(manifest.bad_records["customer_events"])
    for kind, count in kinds.items():
        assert count == manifest.bad_count("customer_events", kind) > 0, kind
    bad_lines = {f"E{k:09d}" for k, line in enumerate(lines, 1) if not _valid_event(line)}
    listed = set().union(*(set(v.ids) for v in manifest.bad_records["customer_events"].values()))
    assert bad_lines == listed  # event ids are line numbers, and every invalid line is accounted for


def _valid_event(line: bytes) -> bool:
    try:
        CustomerEvent.model_validate_json(line).typed_payload()
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- building blocks


def test_public_api_is_pinned() -> None:
    assert sorted(synth.__all__) == sorted(
        [
            "EVENT_BAD_KINDS",
            "MARKETING_BAD_KINDS",
            "MANIFEST_FILE",
            "ORDER_BAD_KINDS",
            "TICKET_BAD_KINDS",
            "BadRecordKind",
            "WorldManifest",
            "WorldSpec",
            "estimate_orders",
            "generate_world",
        ]
    )


def test_allocation_is_disjoint_exact_and_makes_up_for_small_eligible_pools() -> None:
    eligible = np.zeros(1000, dtype=bool)
    eligible[:5] = True
    rows = allocate(np.random.default_rng(0), 1000, 0.2, ("rare", "a", "b"), eligible={"rare": eligible})
    assert len(rows["rare"]) == 5 and set(rows["rare"]) <= set(range(5))
    assert sum(len(r) for r in rows.values()) == 200
    assert len(set().union(*(set(r.tolist()) for r in rows.values()))) == 200


def test_tickets_cluster_in_the_month_before_a_customer_lapses() -> None:
    spec = WorldSpec(customers=4000, days=180, seed=3)
    customers = generate_customers(spec)
    tickets = generate_tickets(customers, spec)
    churn = customers.churn_s[tickets.customer_id - 1]
    before_lapse = (tickets.created_s >= churn - PRECHURN_DAYS * DAY_S) & (tickets.created_s < churn)
    lo, hi = customers.active_window(spec)
    window = np.clip(
        np.minimum(customers.churn_s, hi) - np.maximum(customers.churn_s - PRECHURN_DAYS * DAY_S, lo), 0, None
    )
    exposure_pre = window.sum() / DAY_S
    exposure_rest = (hi - lo).sum() / DAY_S - exposure_pre
    assert before_lapse.sum() / exposure_pre > 5 * (~before_lapse).sum() / exposure_rest


def test_existing_and_joining_customers_and_all_segments_are_present(clean) -> None:
    _, manifest = clean
    stats = manifest.stats["customers"]
    assert 0.3 < stats["signed_up_before_start"] / CLEAN.customers < 0.6
    assert 0.10 < stats["loyal"] / CLEAN.customers < 0.20
    assert 0.40 < stats["lapsing"] / CLEAN.customers < 0.60


def test_event_log_bytes_do_not_depend_on_the_render_chunk_size() -> None:
    spec = WorldSpec(customers=200, days=30, seed=4, bad_records=0.2)
    customers = generate_customers(spec)
    events = build_events(generate_orders(customers, spec), generate_tickets(customers, spec))

    def render(chunk_rows: int) -> bytes:
        chunks = event_lines(events, spec, BadRecordLog(), chunk_rows=chunk_rows)
        return b"".join(line for chunk in chunks for line in chunk.to_pylist())

    whole = render(10**9)
    assert len(whole.splitlines()) == len(events) > 100
    assert render(7) == whole


def test_manifest_locations_point_at_the_bad_lines(dirty) -> None:
    settings, manifest = dirty
    for dataset in ("support_tickets", "marketing_events"):
        for kind, entry in manifest.bad_records[dataset].items():
            assert len(entry.lines) == len(entry.ids) == entry.count > 0, kind
            for record_id, where in zip(entry.ids, entry.lines, strict=True):
                path, line_no = where.rsplit(":", 1)
                line = (settings.landing_dir / dataset / path).read_bytes().splitlines()[int(line_no) - 1]
                assert record_id.encode() in line.replace(b"\xff", b""), (kind, where)
                if kind in ("invalid_utf8", "malformed_json"):
                    with pytest.raises(ValueError):
                        json.loads(line.decode("utf-8"))
    lines = settings.events_file.read_bytes().splitlines()
    for kind, entry in manifest.bad_records["customer_events"].items():
        for record_id, line_no in zip(entry.ids, entry.lines, strict=True):
            assert lines[line_no - 1].startswith(b'{"event_id": "' + record_id.encode()), kind
