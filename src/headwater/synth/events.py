"""Customer events for the stream: the same orders and tickets, as a time-ordered JSONL log.

Event ids and timestamps match the source data: an ``order_placed`` carries the order's id, amount and
order time, a ``ticket_created`` the ticket's id and creation time, a ``refund_issued`` the refund
time (the order's ``updated_at``) and the full order amount. Cancelled orders produce no
``order_placed``: they never became revenue, so stream totals reconcile with batch metrics, which
also exclude them. Events are built from the clean world; bad records are injected into this file
independently of the corruption of the source tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from headwater.domain.enums import CUSTOMER_EVENT_TYPES, TICKET_CATEGORIES, TICKET_PRIORITIES
from headwater.synth import text
from headwater.synth.bad_records import BadRecordLog, allocate, mask_of, replace_rows, truncate
from headwater.synth.orders import STATUS_CANCELLED, STATUS_REFUNDED, Orders
from headwater.synth.spec import MAX_LISTED_IDS, WorldSpec, rng_for
from headwater.synth.tickets import Tickets

CUSTOMER_EVENTS = "customer_events"
PLACED, TICKET, REFUND = (
    CUSTOMER_EVENT_TYPES.index(t) for t in ("order_placed", "ticket_created", "refund_issued")
)
EVENT_BAD_KINDS = (
    "negative_refund_amount",
    "malformed_json",
    "missing_required_field",
    "unknown_event_type",
    "wrong_type",
)
MISSING_FIELDS = ("customer_id", "timestamp", "payload")  # rotated by missing_required_field
UNKNOWN_EVENT_TYPE = "order_shipped"
WRONG_CUSTOMER_ID = '"abc"'
CHUNK_ROWS = 1_000_000


@dataclass(frozen=True)
class CustomerEvents:
    """Events in file order; line ``i + 1`` holds event ``E{i+1:09d}``."""

    event_type: np.ndarray  # int8 index into CUSTOMER_EVENT_TYPES
    customer_id: np.ndarray
    ts_s: np.ndarray
    order_id: np.ndarray  # 0 for ticket events
    cents: np.ndarray  # 0 for ticket events
    payload: pa.Array  # JSON text

    def __len__(self) -> int:
        return len(self.event_type)


def _money_payload(order_id: np.ndarray, cents: np.ndarray) -> pa.Array:
    return text.json_objects([("order_id", text.ints(order_id)), ("amount", text.Quoted(text.money(cents)))])


def build_events(orders: Orders, tickets: Tickets) -> CustomerEvents:
    placed = orders.status != STATUS_CANCELLED
    refunded = orders.status == STATUS_REFUNDED
    n_placed, n_tickets, n_refunds = int(placed.sum()), len(tickets), int(refunded.sum())
    ticket_payload = text.json_objects(
        [
            ("ticket_id", text.Quoted(text.padded_ids("T", tickets.number, 8))),
            ("priority", text.Quoted(pa.array(TICKET_PRIORITIES).take(pa.array(tickets.priority)))),
            ("category", text.Quoted(pa.array(TICKET_CATEGORIES).take(pa.array(tickets.category)))),
        ]
    )
    event_type = np.concatenate(
        [np.full(n_placed, PLACED), np.full(n_tickets, TICKET), np.full(n_refunds, REFUND)]
    ).astype(np.int8)
    ts_s = np.concatenate([orders.order_s[placed], tickets.created_s, orders.updated_s[refunded]])
    order_id = np.concatenate(
        [orders.order_id[placed], np.zeros(n_tickets, np.int64), orders.order_id[refunded]]
    )
    cents = np.concatenate([orders.cents[placed], np.zeros(n_tickets, np.int64), orders.cents[refunded]])
    payload = pa.concat_arrays(
        [
            _money_payload(orders.order_id[placed], orders.cents[placed]),
            ticket_payload,
            _money_payload(orders.order_id[refunded], orders.cents[refunded]),
        ]
    )
    customer_id = np.concatenate(
        [orders.customer_id[placed], tickets.customer_id, orders.customer_id[refunded]]
    )
    order = np.lexsort((event_type, ts_s))  # by time, ties: placed before ticket before refund
    return CustomerEvents(
        event_type=event_type[order],
        customer_id=customer_id[order],
        ts_s=ts_s[order],
        order_id=order_id[order],
        cents=cents[order],
        payload=payload.take(pa.array(order)),
    )


def event_lines(
    events: CustomerEvents, spec: WorldSpec, log: BadRecordLog, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pa.Array]:
    """Choose and log the bad events now; render lines lazily, ``chunk_rows`` at a time.

    Rendering in chunks keeps memory flat for a 10M-event log (a whole-file array of lines and its
    intermediates would need several GiB).
    """
    rng = rng_for(spec, "bad_records.customer_events")
    n = len(events)
    bad = allocate(
        rng,
        n,
        spec.bad_records,
        EVENT_BAD_KINDS,
        eligible={"negative_refund_amount": events.event_type == REFUND},
    )
    for kind, rows in bad.items():
        first = rows[:MAX_LISTED_IDS] + 1
        log.record(CUSTOMER_EVENTS, kind, len(rows), text.padded_ids("E", first, 9), first.tolist())
    masks = {kind: mask_of(n, rows) for kind, rows in bad.items()}
    missing = bad["missing_required_field"]
    omit = {key: mask_of(n, missing[k :: len(MISSING_FIELDS)]) for k, key in enumerate(MISSING_FIELDS)}
    return (_render(events, masks, omit, a, min(a + chunk_rows, n)) for a in range(0, n, chunk_rows))


def _render(
    events: CustomerEvents, masks: dict[str, np.ndarray], omit: dict[str, np.ndarray], a: int, b: int
) -> pa.Array:
    """Lines ``a..b`` (newline-terminated bytes) with the bad rows of that slice rewritten."""
    local = {kind: np.flatnonzero(mask[a:b]) for kind, mask in masks.items()}
    negative = local["negative_refund_amount"]
    order_id, cents = events.order_id[a:b], events.cents[a:b]
    payload = replace_rows(
        events.payload.slice(a, b - a), negative, _money_payload(order_id[negative], -cents[negative])
    )
    type_code = np.where(masks["unknown_event_type"][a:b], len(CUSTOMER_EVENT_TYPES), events.event_type[a:b])
    types = pa.array([*CUSTOMER_EVENT_TYPES, UNKNOWN_EVENT_TYPE]).take(pa.array(type_code))
    wrong = local["wrong_type"]
    customer_id = replace_rows(
        text.ints(events.customer_id[a:b]), wrong, pa.array([WRONG_CUSTOMER_ID] * len(wrong))
    )
    lines = text.json_objects(
        [
            ("event_id", text.Quoted(text.padded_ids("E", np.arange(a + 1, b + 1), 9))),
            ("event_type", text.Quoted(types)),
            ("customer_id", customer_id),
            ("timestamp", text.Quoted(text.iso(events.ts_s[a:b]))),
            ("payload", payload),
        ],
        omit={key: mask[a:b] for key, mask in omit.items()},
    )
    return text.as_lines(truncate(lines, local["malformed_json"], keep_chars=50))


def write_events(path: Path, chunks: Iterable[pa.Array]) -> int:
    """Replace the events file (written aside, then renamed); returns the number of lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    written = 0
    with open(tmp, "wb") as fh:
        for lines in chunks:
            fh.write(text.contiguous_bytes(lines, 0, len(lines)))
            written += len(lines)
    tmp.replace(path)
    return written
