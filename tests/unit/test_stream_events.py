"""The msgspec fast path decodes exactly what the Pydantic reference decodes, to the same event."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import msgspec
import pytest

from headwater.domain.records import OrderPlaced, RefundIssued, TicketCreated
from headwater.stream.events import (
    Event,
    InvalidEvent,
    OrderPayload,
    RefundPayload,
    TicketPayload,
    decode_event,
    fast_decode,
    parse_event,
    reference_decode,
)
from headwater.stream.synthetic import generate_events
from tests.unit.stream_helpers import corruptions
from tests.unit.test_stream_dlq import BAD


def _base(**over: object) -> dict:
    event = {"event_id": "E1", "event_type": "refund_issued", "customer_id": 7, "timestamp": "2024-03-01T10:20:30Z",
             "payload": {"order_id": 3, "amount": "12.50"}}
    return event | over


def _refund(amount: object) -> str:
    return json.dumps(_base(payload={"order_id": 3, "amount": amount}))


def _stamped(timestamp: object) -> str:
    return json.dumps(_base(timestamp=timestamp))


def _ticket(**payload: object) -> str:
    body = {"ticket_id": "T1", "priority": "high", "category": "billing"} | payload
    return json.dumps(_base(event_type="ticket_created", payload={k: v for k, v in body.items() if v is not None}))


def _customer_ids(text: str) -> str:
    return json.dumps(_base()).replace('"customer_id": 7', '"customer_id": ' + text)


# Every kind of event the fast path might get wrong: valid spellings it must leave to Pydantic,
# invalid ones it must not accept, and JSON corner cases (duplicate keys, escapes, huge numbers).
EDGE = {
    "canonical refund": _refund("12.50"),
    "amount as a JSON number": _refund(12.5),
    "amount with 1 decimal": _refund("12.5"),
    "amount with 3 decimals": _refund("12.505"),
    "amount with 3 decimals, zero": _refund("12.500"),
    "amount without decimals": _refund("12"),
    "amount with a leading zero": _refund("012.50"),
    "amount with a plus sign": _refund("+12.50"),
    "amount with spaces": _refund(" 12.50 "),
    "amount with a newline": _refund("12.50\n"),
    "amount with underscores": _refund("1_000.00"),
    "amount with an exponent": _refund("1.25E+1"),
    "amount NaN": _refund("NaN"),
    "amount with Arabic-Indic digits": _refund("١٢.٥٠"),
    "refund of zero": _refund("0.00"),
    "refund of one cent": _refund("0.01"),
    "negative refund": _refund("-12.50"),
    "amount of 13 digits": _refund("12345678901.00"),
    "amount of 12 digits": _refund("1234567890.00"),
    "order of zero": json.dumps(_base(event_type="order_placed", payload={"order_id": 1, "amount": "0.00"})),
    "order as a JSON number": json.dumps(_base(event_type="order_placed", payload={"order_id": 1, "amount": 10})),
    "timestamp with +00:00": _stamped("2024-03-01T10:20:30+00:00"),
    "timestamp with +02:00": _stamped("2024-03-01T10:20:30+02:00"),
    "timestamp with lowercase z": _stamped("2024-03-01T10:20:30z"),
    "timestamp with a space": _stamped("2024-03-01 10:20:30Z"),
    "timestamp with milliseconds": _stamped("2024-03-01T10:20:30.123Z"),
    "timestamp with nanoseconds": _stamped("2024-03-01T10:20:30.123456789Z"),
    "timestamp naive": _stamped("2024-03-01T10:20:30"),
    "timestamp date only": _stamped("2024-03-01"),
    "timestamp as a number": _stamped(1709288430),
    "leap second": _stamped("2016-12-31T23:59:60Z"),
    "hour 24": _stamped("2024-03-01T24:00:00Z"),
    "minute 60": _stamped("2024-03-01T10:60:00Z"),
    "30 February": _stamped("2024-02-30T10:20:30Z"),
    "29 February of a leap year": _stamped("2024-02-29T10:20:30Z"),
    "29 February of a common year": _stamped("2023-02-29T10:20:30Z"),
    "year 1": _stamped("0001-01-01T00:00:00Z"),
    "year 0": _stamped("0000-01-01T00:00:00Z"),
    "year 9999": _stamped("9999-12-31T23:59:59Z"),
    "before 1970": _stamped("1969-12-31T23:59:59Z"),
    "after year 9999 in UTC": _stamped("9999-12-31T23:59:59-01:00"),
    "before year 1 in UTC": _stamped("0001-01-01T00:30:00+01:00"),
    "customer_id as a string": json.dumps(_base(customer_id="7")),
    "customer_id as a float": json.dumps(_base(customer_id=7.0)),
    "customer_id as a bool": json.dumps(_base(customer_id=True)),
    "customer_id null": json.dumps(_base(customer_id=None)),
    "customer_id beyond 64 bits": json.dumps(_base(customer_id=2**64)),
    "customer_id at 2**63": json.dumps(_base(customer_id=2**63)),
    "customer_id negative": json.dumps(_base(customer_id=-(2**63))),
    "empty event_id": json.dumps(_base(event_id="")),
    "event_id as a number": json.dumps(_base(event_id=1)),
    "event_id with escapes": json.dumps(_base(event_id="é\u2028\"\\")),
    "event_id with a lone surrogate": json.dumps(_base()).replace('"E1"', '"\\ud800"'),
    "extra envelope field": json.dumps(_base(extra=1)),
    "extra payload field": json.dumps(_base(payload={"order_id": 3, "amount": "12.50", "x": 1})),
    "payload null": json.dumps(_base(payload=None)),
    "payload a list": json.dumps(_base(payload=[])),
    "event_type null": json.dumps(_base(event_type=None)),
    "event_type last": json.dumps({k: v for k, v in reversed(_base().items())}),
    "unknown priority": _ticket(priority="urgent"),
    "uppercase priority": _ticket(priority="HIGH"),
    "unknown category": _ticket(category="other"),
    "missing category": _ticket(category=None),
    "ticket_id empty": _ticket(ticket_id=""),
    "ticket_id as a number": _ticket(ticket_id=5),
    "duplicate key, last valid": _customer_ids('"x", "customer_id": 8'),
    "duplicate key, last invalid": _customer_ids('8, "customer_id": "x"'),
    "duplicate key, both valid": _customer_ids('8, "customer_id": 9'),
    "duplicate event_type": json.dumps(_base()).replace('"event_type": "refund_issued"',
                                                       '"event_type": "order_placed", "event_type": "refund_issued"'),
    "duplicate payload": json.dumps(_base()).replace('"payload": {', '"payload": {"order_id": 1}, "payload": {'),
    "trailing whitespace": json.dumps(_base()) + " \n",
    "trailing garbage": json.dumps(_base()) + " x",
    "two objects": json.dumps(_base()) * 2,
    "byte order mark": "\ufeff" + json.dumps(_base()),
    "empty": "",
    "null": "null",
    "a number": "42",
} | {f"dead-letter kind: {k}": v for k, v in BAD.items()}


def _outcome(decode, raw: str) -> Event | str:
    try:
        return decode(raw)
    except InvalidEvent as exc:
        return "invalid: " + exc.message


@pytest.mark.parametrize("name", list(EDGE))
def test_fast_path_equals_pydantic_on_every_kind_of_event(name):
    raw = EDGE[name]
    assert _outcome(decode_event, raw) == _outcome(reference_decode, raw)
    fast = fast_decode(raw)
    if fast is not None:  # accepted by the fast path: Pydantic must accept it too, with the same values
        assert fast == reference_decode(raw)


def test_the_fast_path_takes_canonical_events_and_leaves_the_rest():
    event = fast_decode(EDGE["canonical refund"])
    assert event == Event("E1", "refund_issued", 7, 1709288430000, RefundPayload(3, "12.50"))
    assert type(event) is Event and event.ts_ms == 1709288430000
    for name in ("amount as a JSON number", "timestamp with +00:00", "customer_id as a string", "refund of zero",
                 "amount of 13 digits", "leap second", "30 February", "duplicate key, last valid"):
        assert fast_decode(EDGE[name]) is None, name
    assert fast_decode(EDGE["amount of 12 digits"]) is not None


def test_fast_path_equals_pydantic_on_a_dirty_synthetic_stream():
    lines = generate_events(4000, seed=8, bad_rate=0.2, out_of_order_rate=0.05, late_rate=0.01)
    fast = 0
    for line in lines:
        assert _outcome(decode_event, line) == _outcome(reference_decode, line), line
        fast += fast_decode(line) is not None
    assert fast >= 0.75 * len(lines)  # the valid ones (~80%) all take the fast path


def test_fast_path_equals_pydantic_on_random_corruptions():
    checked = 0
    for raw in corruptions(generate_events(300, seed=9), 10, seed=5):
        assert _outcome(decode_event, raw) == _outcome(reference_decode, raw), raw
        checked += 1
    assert checked == 3000


CANONICAL_TIMES = ("2024-03-01T10:20:30Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2024-02-29T23:59:59Z",
                   "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z")


@pytest.mark.parametrize("ts", ["2024-03-01T10:20:30Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
                                "2024-02-29T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                                "2024-13-01T00:00:00Z", "2024-03-01T10:20:30+00:00", "2024-03-01T10:20:3Z",
                                "2024-03-01T10-20-30Z", "2024-03-01T10:20:30z", "2024-03-01T10:2a:30Z",
                                "2024-03-01T10:20:60Z", "2024-03-01T25:20:30Z"])
def test_canonical_timestamps_read_as_pydantic_reads_them(ts):
    event = fast_decode(_stamped(ts))
    ms = None if event is None else event.ts_ms
    if ts in CANONICAL_TIMES:
        assert ms is not None  # the fast path takes every real time in the canonical form
    try:
        expected = int(parse_event(_stamped(ts)).timestamp.timestamp() * 1000)
    except InvalidEvent:
        expected = None
    assert ms is None or ms == expected  # never a value Pydantic would not give
    if expected is not None and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", ts):
        assert ms == expected  # and the canonical spelling takes the fast path


@pytest.mark.parametrize(("fast", "domain"), [(OrderPayload, OrderPlaced), (TicketPayload, TicketCreated),
                                              (RefundPayload, RefundIssued)])
def test_payloads_mirror_the_domain_models(fast, domain):
    assert [f.encode_name for f in msgspec.structs.fields(fast)] == list(domain.model_fields)


def test_payload_amount_is_pydantics_decimal():
    for amount in ("12.50", "0.01", "1234567890.00"):
        ref = parse_event(_refund(amount)).payload
        fast = fast_decode(_refund(amount))
        assert fast is not None and fast.payload.amount == ref.amount and str(fast.payload.amount) == str(ref.amount)
    assert reference_decode(_refund(12.5)).payload.amount_text == "12.5"  # a JSON number keeps Pydantic's reading


@pytest.mark.parametrize("text", ["0.00", "0.05", "26.14", "1234567890.99", "12.5", "1E+2", "1.5E+3", "-0.00", "7",
                                  "0.1", "1.2E-7", "1.23E+10"])
def test_order_cents_equal_the_decimal_reading(text):
    assert OrderPayload(1, text).cents == int(Decimal(text) * 100)
