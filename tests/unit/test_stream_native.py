"""The compiled core equals its Python reference: decoding, state bytes, and every output of a dirty stream."""

from __future__ import annotations

import json
import random
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headwater.errors import ConfigError, StorageError
from headwater.stream import native
from headwater.stream.config import RuleConfig, StreamConfig
from headwater.stream.events import Event, InvalidEvent, OrderPayload, TicketPayload, canonical_cents, decode_event
from headwater.stream.log import CUSTOMER_EVENTS, Record, iter_topic
from headwater.stream.processor import sqlite_processor
from headwater.stream.sqlite_log import SqliteLog
from headwater.stream.state import CustomerState, SqliteStateStore
from headwater.stream.synthetic import generate_events
from tests.unit.stream_helpers import corruptions
from tests.unit.test_stream_events import EDGE, _base, _stamped


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(native.ENGINE_ENV, "native")
    module = native.load()
    assert module is not None
    return module


def test_the_compiled_core_is_installed_and_chosen_by_default(monkeypatch):
    monkeypatch.delenv(native.ENGINE_ENV, raising=False)
    assert native.load() is not None  # `make test` builds it: a missing core is a failure, not a skip
    monkeypatch.setenv(native.ENGINE_ENV, "python")
    assert native.load() is None
    monkeypatch.setenv(native.ENGINE_ENV, "rust")
    with pytest.raises(ConfigError, match="must be one of auto, native, python"):
        native.load()


# -- decoding ------------------------------------------------------------------------------------------
def _as_core(ev: Event) -> tuple:
    """A Python-decoded event in the core's ``decode_canonical`` form."""
    p = ev.payload
    if isinstance(p, TicketPayload):
        return ev.event_id, ev.customer_id, ev.ts_ms, 1, int(p.priority == "high"), 0, ""
    if isinstance(p, OrderPayload):
        return ev.event_id, ev.customer_id, ev.ts_ms, 0, p.cents, 0, ""
    return ev.event_id, ev.customer_id, ev.ts_ms, 2, canonical_cents(p.amount_text), p.order_id, p.amount_text


def _agrees(core, raw: str) -> bool:
    """Whatever the core decodes, Python decodes to the same values; returns whether the core took it."""
    got = core.decode_canonical(raw)
    if got is not None:
        assert got == _as_core(decode_event(raw)), raw
    return got is not None


EDGE_UNICODE = EDGE | {
    "event_id in unescaped Unicode": json.dumps(_base(event_id="é€😀"), ensure_ascii=False),
    "spaced JSON": json.dumps(_base(), indent=2),
}


@pytest.mark.parametrize("name", list(EDGE_UNICODE))
def test_the_core_decodes_only_what_python_decodes_and_to_the_same_values(core, name):
    _agrees(core, EDGE_UNICODE[name])


def test_the_core_takes_the_canonical_events(core):
    taken = {name for name, raw in EDGE_UNICODE.items() if _agrees(core, raw)}
    assert {"canonical refund", "refund of one cent", "order of zero", "amount of 12 digits", "event_type last",
            "29 February of a leap year", "before 1970", "year 9999", "trailing whitespace", "ticket_id empty",
            "event_id in unescaped Unicode", "spaced JSON"} <= taken
    # left to Python: escapes, duplicates, 19+ digit numbers, years before 1000, everything invalid
    assert not taken & {"event_id with escapes", "duplicate key, both valid", "customer_id at 2**63",
                        "customer_id negative", "year 1", "refund of zero", "amount with 1 decimal", "leap second",
                        "30 February", "trailing garbage"}


def test_the_core_agrees_on_a_dirty_synthetic_stream_and_on_random_corruptions(core):
    lines = generate_events(3000, seed=8, bad_rate=0.2, out_of_order_rate=0.05, late_rate=0.01)
    taken = sum(_agrees(core, line) for line in lines)
    valid = sum(1 for line in lines if _valid(line))
    assert taken == valid  # every valid line of the generator is canonical: the core takes them all
    taken = sum(_agrees(core, raw) for raw in corruptions(generate_events(300, seed=9), 20, seed=5))
    assert 0 < taken < 6000  # some edits keep an event canonical (a digit for a digit), most do not


def _valid(raw: str) -> bool:
    try:
        decode_event(raw)
    except InvalidEvent:
        return False
    return True


def test_the_core_reads_every_canonical_time_as_python_does(core):
    rng = random.Random(3)
    start = datetime(1000, 1, 1, tzinfo=UTC)
    span = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - start).total_seconds()
    stamps = [start + timedelta(seconds=rng.randrange(int(span))) for _ in range(3000)]
    stamps += [datetime(y, m, d, tzinfo=UTC) - timedelta(seconds=s) for y in (1600, 1900, 2000, 2024, 2100)
               for m, d in ((1, 1), (3, 1), (2, 28)) for s in (0, 1)]
    for ts in stamps:
        assert _agrees(core, _stamped(ts.strftime("%Y-%m-%dT%H:%M:%SZ")))


# -- state format ------------------------------------------------------------------------------------------
def _random_state(rng: random.Random) -> CustomerState:
    ids = ["E" + str(rng.randrange(10**6)) for _ in range(rng.randrange(5))] + ["é€😀"] * rng.randrange(2)
    flags = [[rng.random() < 0.5 for _ in range(4)] for _ in range(rng.randrange(6))]
    tickets = sorted([[rng.randrange(-(2**40), 2**42), rng.choice(ids or ["x"]), *f] for f in flags],
                     key=lambda t: (t[0], t[1]))
    n = rng.randrange(5)
    return CustomerState(rng.randrange(64), tickets, array("q", sorted(rng.randrange(2**42) for _ in range(n))),
                         array("q", [rng.randrange(10**12) for _ in range(n)]),
                         {i: rng.randrange(2**42) for i in ids}, rng.random() < 0.5, rng.random() < 0.5,
                         rng.randrange(2**42))


def test_state_bytes_are_the_same_from_python_and_from_the_core(core):
    rng = random.Random(1)
    for _ in range(500):
        st = _random_state(rng)
        blob = st.encode()
        assert core.roundtrip_state(blob) == blob
        back = CustomerState.decode(blob)
        assert back.to_json() == CustomerState(st.partition, st.tickets, st.orders_ts, st.orders_cents,
                                               dict(sorted(st.seen.items())), st.tail_cond, st.tail_alerted,
                                               st.last_ms).to_json()


def test_state_format_3_is_pinned():
    st = CustomerState(2, [[5, "E1", True, False, True, False]], array("q", [4]), array("q", [1000]), {"E1": 5},
                       True, False, 5)
    assert st.encode().hex() == (
        "03" "0200000000000000" "01" "0500000000000000" "01000000"
        "0500000000000000" "05" "02000000" "4531"
        "01000000" "0400000000000000" "e803000000000000"
        "01000000" "0500000000000000" "02000000" "4531")


def test_a_corrupt_state_blob_is_a_clear_error(core):
    blob = CustomerState(1, [[5, "E1", True, False, False, False]]).encode()
    for bad in (blob[:-1], blob + b"\x00", blob[:7]):
        with pytest.raises(StorageError, match="corrupt state blob"):
            CustomerState.decode(bad)
        with pytest.raises(ValueError, match="format 3"):
            core.roundtrip_state(bad)


# -- whole runs ----------------------------------------------------------------------------------------------
def _dirty_stream() -> list[str]:
    """Busy customers, bad, out-of-order and late events, duplicates, and valid events outside the
    canonical subset (Python decodes those and the core applies them)."""
    rng = random.Random(7)
    lines = generate_events(6000, seed=21, customers=40, mean_gap_s=2400, bad_rate=0.03, out_of_order_rate=0.05,
                            late_rate=0.01, lateness_s=3600, ticket_share=0.45, high_share=0.35)
    out = []
    for line in lines:
        out.append(line)
        r = rng.random()
        if r < 0.03:
            out.append(line)  # a producer retry: a duplicate
        elif r < 0.06 and _valid(line):
            event = json.loads(line)
            event["event_id"] += "-v"
            spelling = rng.randrange(5)
            if spelling == 0:
                event["timestamp"] = event["timestamp"].replace("Z", "+00:00")
            elif spelling == 1 and "amount" in event["payload"]:
                event["payload"]["amount"] = float(event["payload"]["amount"])  # e.g. 512.3: Python decides
            elif spelling == 2:
                event["customer_id"] = 2**64  # valid JSON, out of the key range: dead-lettered
            elif spelling == 3:
                event["event_id"] += "\\é"
            out.append(json.dumps(event))
    return out


def _run(path: Path, engine: str, lines: list[str], monkeypatch, *, stop_after: int | None = None,
         then: str | None = None) -> dict:
    monkeypatch.setenv(native.ENGINE_ENV, engine)
    cfg = StreamConfig(rules=RuleConfig(large_refund_threshold=RuleConfig().large_refund_threshold / 5,
                                        vip_spend_threshold=RuleConfig().vip_spend_threshold / 2,
                                        allowed_lateness_s=3600),
                       batch_size=97, checkpoint_interval_s=3600, partitions=3)
    # checkpoints by count only: a customer's events are on several partitions here (keys i % 7), and
    # where a checkpoint falls between them shows in the results (see the processor's docstring)
    log = SqliteLog(path, default_partitions=3)
    log.open()
    with log.transaction() as tx:
        tx.append(CUSTOMER_EVENTS, [Record(str(i % 7), line) for i, line in enumerate(lines)])
    proc = sqlite_processor(log, cfg, clock=lambda: 1.7e9)
    proc.open()
    assert (proc._core is not None) == (engine == "native")
    proc.run(until_idle=True, max_events=stop_after)
    if then is not None:  # a restart, possibly on the other engine: state written by one is read by the other
        monkeypatch.setenv(native.ENGINE_ENV, then)
        proc = sqlite_processor(log, cfg, clock=lambda: 1.7e9)
        proc.open()
        proc.run(until_idle=True)
    store = SqliteStateStore(log, cfg.group)
    store.open()
    out = {topic: [(r.partition, r.offset, r.key, r.value) for r in iter_topic(log, topic)]
           for topic in ("customer_alerts", "customer_events_dlq", "customer_events_late", "processing_errors")}
    out["offsets"] = log.committed(cfg.group, CUSTOMER_EVENTS)
    out["state"] = store.items()
    out["counts"] = proc.counts()
    log.close()
    return out


def test_both_engines_give_the_same_outputs_and_state_bytes_on_a_dirty_stream(tmp_path, monkeypatch):
    lines = _dirty_stream()
    ref = _run(tmp_path / "py.sqlite", "python", lines, monkeypatch)
    got = _run(tmp_path / "native.sqlite", "native", lines, monkeypatch)
    counts = ref["counts"]
    assert counts["in"] == len(lines) == counts["processed"] + counts["dead_lettered"] + counts["late"]
    assert min(counts["duplicates"], counts["late"], counts["dead_lettered"]) > 50
    kinds = {json.loads(v)["alert_type"] for *_, v in ref["customer_alerts"]}
    assert kinds == {"customer_at_risk", "large_refund", "vip_escalation"} and len(ref["customer_alerts"]) > 100
    for name in ref:
        assert got[name] == ref[name], name


@pytest.mark.parametrize(("first", "then"), [("python", "native"), ("native", "python")])
def test_a_restart_on_the_other_engine_continues_exactly(tmp_path, monkeypatch, first, then):
    lines = _dirty_stream()
    # the same stop on one engine is the reference (where a run stops changes how partitions interleave)
    ref = _run(tmp_path / "ref.sqlite", then, lines, monkeypatch, stop_after=2500, then=then)
    got = _run(tmp_path / "mixed.sqlite", first, lines, monkeypatch, stop_after=2500, then=then)
    for name in ref:
        assert got[name] == ref[name], name
