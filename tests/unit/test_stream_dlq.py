"""Dead-lettering of each kind of bad event, retries with injected backoff, DLQ replay, conservation."""

from __future__ import annotations

import dataclasses
import json

import pytest
from pydantic import ValidationError

from headwater.domain.records import CustomerEvent
from headwater.errors import DataError, RetryableError
from headwater.resilience.dlq import DeadLetter
from headwater.resilience.retry import ExponentialBackoff, RetriesExhausted
from headwater.stream.config import StreamConfig
from headwater.stream.dlq import LogDeadLetterQueue
from headwater.stream.events import InvalidEvent, parse_event
from headwater.stream.rules import DEFAULT_HANDLERS
from headwater.stream.synthetic import generate_events
from tests.unit.stream_helpers import World, at, order, refund, ticket

pytestmark = pytest.mark.usefixtures("engine")  # each test on both engines (tests/unit/conftest.py)

GOOD = ticket("E1", 1, at(0))
BAD = {
    "malformed JSON": '{"event_id": "E9", "event_type": "ticket_cr',
    "missing field 'customer_id'": json.dumps({"event_id": "E2", "event_type": "order_placed",
                                               "timestamp": at(0), "payload": {"order_id": 1, "amount": "1.00"}}),
    "field 'customer_id'": json.dumps({"event_id": "E3", "event_type": "order_placed", "customer_id": "abc",
                                       "timestamp": at(0), "payload": {"order_id": 1, "amount": "1.00"}}),
    "unknown event_type 'page_viewed'": json.dumps({"event_id": "E4", "event_type": "page_viewed",
                                                    "customer_id": 1, "timestamp": at(0), "payload": {}}),
    "invalid refund_issued payload: field 'amount'": refund("E5", 1, at(0), "-12.50"),
    "field 'timestamp'": json.dumps({"event_id": "E6", "event_type": "order_placed", "customer_id": 1,
                                     "timestamp": "2024-03-01T10:00:00", "payload": {"order_id": 1, "amount": "1"}}),
    "invalid ticket_created payload: missing field 'priority'": json.dumps(
        {"event_id": "E7", "event_type": "ticket_created", "customer_id": 1, "timestamp": at(0),
         "payload": {"ticket_id": "T", "category": "billing"}}),
    "not a JSON object": "[1, 2]",
    "customer_id 99999999999999999999 is out of the 64-bit range": json.dumps(
        {"event_id": "E8", "event_type": "order_placed", "customer_id": 99999999999999999999, "timestamp": at(0),
         "payload": {"order_id": 1, "amount": "1.00"}}),
}


@pytest.mark.parametrize("reason", list(BAD))
def test_each_bad_kind_is_dead_lettered_with_reason_and_original(tmp_path, reason):
    w = World(tmp_path)
    counts = w.feed(GOOD, BAD[reason], order("E8", 1, at(1)))
    assert counts == counts | {"in": 3, "processed": 2, "dead_lettered": 1, "late": 0}
    [letter] = [DeadLetter(**d) for d in w.topic("customer_events_dlq")]
    assert letter.reason.startswith(reason), letter.reason
    assert letter.payload == BAD[reason]  # the original text, untouched
    assert letter.attempts == 1 and not letter.retryable and letter.failed_at.endswith("Z")
    assert letter.letter_id.startswith("customer_events:")


def test_single_pass_validation_agrees_with_the_domain_model():
    lines = generate_events(3000, seed=3, bad_rate=0.3) + list(BAD.values())
    for line in lines:
        try:
            env = CustomerEvent.model_validate_json(line)
            env.typed_payload()
            domain_ok = True
        except ValidationError:
            domain_ok = False
        try:
            parse_event(line)
            ours_ok = True
        except InvalidEvent:
            ours_ok = False
        assert ours_ok == domain_ok, line


def test_counts_conserve_on_a_dirty_stream(tmp_path):
    w = World(tmp_path, StreamConfig(batch_size=97, partitions=3))
    lines = generate_events(5000, seed=11, bad_rate=0.05, out_of_order_rate=0.05, late_rate=0.01,
                            lateness_s=3600)
    from headwater.stream.loader import to_record

    with w.log.transaction() as tx:
        tx.append("customer_events", [to_record(line) for line in lines])
    c = w.processor().run(until_idle=True)
    assert c["in"] == 5000 == c["processed"] + c["dead_lettered"] + c["late"]
    assert c["dead_lettered"] > 150 and c["late"] > 20
    assert len(w.topic("customer_events_dlq")) == c["dead_lettered"]
    assert len(w.topic("customer_events_late")) == c["late"]


class Flaky:
    """A handler that fails ``times`` times with ``error`` before delegating to the real rule."""

    def __init__(self, times: int, error: Exception) -> None:
        self.times, self.error, self.calls = times, error, 0

    def __call__(self, ev, st, cfg):
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return DEFAULT_HANDLERS["refund_issued"](ev, st, cfg)


def retrier(sleeps: list[float], attempts: int = 4) -> ExponentialBackoff:
    return ExponentialBackoff(max_attempts=attempts, base_delay_s=0.1, multiplier=2, jitter=0, sleep=sleeps.append)


def test_retryable_error_is_retried_with_backoff_then_succeeds(tmp_path):
    sleeps: list[float] = []
    flaky = Flaky(2, RetryableError("warehouse timeout"))
    w = World(tmp_path, handlers=DEFAULT_HANDLERS | {"refund_issued": flaky}, retrier=retrier(sleeps))
    counts = w.feed(refund("E1", 1, at(0), "900"))
    assert counts["processed"] == 1 and counts["dead_lettered"] == 0
    assert sleeps == [0.1, 0.2]  # exponential, injected: no real sleeping
    assert len(w.alerts()) == 1
    errors = w.topic("processing_errors")
    assert [(e["attempt"], e["outcome"], e["retryable"]) for e in errors] == [(1, "retried", True),
                                                                             (2, "retried", True)]


def test_retryable_error_exhausts_attempts_then_dead_letters(tmp_path):
    sleeps: list[float] = []
    flaky = Flaky(99, RetryableError("still down"))
    w = World(tmp_path, handlers=DEFAULT_HANDLERS | {"refund_issued": flaky}, retrier=retrier(sleeps, 3))
    counts = w.feed(refund("E1", 1, at(0), "900"))
    assert counts["dead_lettered"] == 1 and counts["processed"] == 0 and flaky.calls == 3
    assert sleeps == [0.1, 0.2]
    [letter] = w.topic("customer_events_dlq")
    assert letter["attempts"] == 3 and letter["retryable"] and "still down" in letter["reason"]
    assert w.alerts() == []


def test_permanent_error_is_dead_lettered_at_once(tmp_path):
    sleeps: list[float] = []
    flaky = Flaky(1, DataError("order 7 unknown"))
    w = World(tmp_path, handlers=DEFAULT_HANDLERS | {"refund_issued": flaky}, retrier=retrier(sleeps))
    counts = w.feed(refund("E1", 1, at(0), "900"), refund("E2", 1, at(0), "900"))
    assert counts["dead_lettered"] == 1 and counts["processed"] == 1 and sleeps == []
    [letter] = w.topic("customer_events_dlq")
    assert letter["attempts"] == 1 and not letter["retryable"] and letter["error_type"] == "DataError"


def test_backoff_is_capped_and_jittered_deterministically():
    b = ExponentialBackoff(base_delay_s=1, multiplier=3, max_delay_s=5, jitter=0.1)
    delays = [b.delay(n) for n in range(1, 6)]
    assert 0.9 <= delays[0] <= 1.1 and 2.7 <= delays[1] <= 3.3 and all(4.5 <= d <= 5.5 for d in delays[2:])
    with pytest.raises(RetriesExhausted):
        ExponentialBackoff(max_attempts=2, sleep=lambda s: None).call(lambda: (_ for _ in ()).throw(
            RetryableError("x")))


def test_dlq_list_show_and_replay_once(tmp_path):
    w = World(tmp_path)
    w.feed(GOOD, BAD["malformed JSON"], BAD["unknown event_type 'page_viewed'"])
    dlq = LogDeadLetterQueue(w.log)
    letters = dlq.list()
    assert len(letters) == 2
    assert dlq.get(letters[0].letter_id) == letters[0] and dlq.get("nope") is None
    assert dlq.replay() == 2
    assert dlq.replay() == 0  # the replay consumer committed its position
    counts = w.processor().run(until_idle=True)
    assert counts["in"] == 5 and counts["dead_lettered"] == 4  # still bad: dead-lettered again, not lost
    assert dlq.replay([letters[0].letter_id]) == 1


def test_dead_letter_json_is_the_flat_sorted_record_and_round_trips():
    letter = DeadLetter(letter_id="customer_events:1:7", source="customer_events", reason='bad "x" é',
                        error_type="InvalidEvent", payload='{"a": 1}', attempts=2, failed_at="2024-03-01T00:00:00Z",
                        retryable=True, key=None, event_id="E1")
    assert letter.to_json() == json.dumps(dataclasses.asdict(letter), separators=(",", ":"), sort_keys=True)
    assert letter.to_json().startswith('{"attempts":2,"error_type":"InvalidEvent","event_id":"E1"')
    assert DeadLetter.from_json(letter.to_json()) == letter


def test_an_event_time_outside_years_1_to_9999_in_utc_is_dead_lettered(tmp_path):
    # valid ISO text with an offset, but not a time the rules (in UTC) can hold: it used to fail inside
    # the refund handler (Python) or crash the processor (compiled core)
    w = World(tmp_path)
    line = refund("E1", 1, "9999-12-31T23:59:59-01:00", "900.00")
    counts = w.feed(line, ticket("E2", 1, at(0)))
    assert counts == counts | {"in": 2, "processed": 1, "dead_lettered": 1, "alerts": 0}
    [letter] = w.topic("customer_events_dlq")
    assert letter["payload"] == line and "outside years 1-9999 in UTC" in letter["reason"]
