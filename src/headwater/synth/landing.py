"""Landing-zone drops: ``<dataset>/date=YYYY-MM-DD/part-0000.jsonl`` then an empty ``_SUCCESS`` flag.

Every day of the range gets a folder and a flag, even with no records, so a sensor can tell
"nothing happened" from "not delivered yet". A record lands in the drop of the day it was created.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

from headwater.domain.enums import MARKETING_EVENT_TYPES, TICKET_CATEGORIES, TICKET_PRIORITIES
from headwater.synth import text
from headwater.synth.bad_records import (
    BadRecordLog,
    allocate,
    corrupt_utf8,
    insert_copies,
    mask_of,
    truncate,
)
from headwater.synth.marketing import MarketingEvents
from headwater.synth.spec import DAY_S, MAX_LISTED_IDS, WorldSpec, rng_for
from headwater.synth.tickets import Tickets

SUPPORT_TICKETS = "support_tickets"
MARKETING_EVENTS = "marketing_events"
PART_FILE = "part-0000.jsonl"
SUCCESS_FLAG = "_SUCCESS"

TICKET_BAD_KINDS = (
    "duplicate_ticket_id",
    "invalid_utf8",
    "malformed_json",
    "null_required_field",
    "resolved_before_created",
    "unknown_priority",
)
TICKET_NULLABLE_REQUIRED = ("customer_id", "created_at", "category")  # rotated by null_required_field
UNKNOWN_PRIORITY = "urgent"
MARKETING_BAD_KINDS = (
    "duplicate_event_id",
    "invalid_utf8",
    "malformed_json",
    "null_customer_id",
    "unknown_event_type",
)
UNKNOWN_MARKETING_TYPE = "sms_open"


def ticket_lines(tickets: Tickets, spec: WorldSpec, log: BadRecordLog) -> tuple[pa.Array, np.ndarray]:
    """Rendered lines (large_binary, newline-terminated) and each line's drop day (days since epoch)."""
    rng = rng_for(spec, "bad_records.support_tickets")
    n = len(tickets)
    bad = allocate(rng, n, spec.bad_records, TICKET_BAD_KINDS)
    ids = text.padded_ids("T", tickets.number, 8)

    resolved_s = np.where(tickets.resolved_s < 0, tickets.created_s, tickets.resolved_s)
    still_open = tickets.resolved_s < 0
    early = bad["resolved_before_created"]
    resolved_s[early] = tickets.created_s[early] - rng.integers(60, 3 * DAY_S, len(early))
    still_open[early] = False
    nulls = bad["null_required_field"]
    null_mask = {
        key: mask_of(n, nulls[k :: len(TICKET_NULLABLE_REQUIRED)])
        for k, key in enumerate(TICKET_NULLABLE_REQUIRED)
    }
    priority = pa.array([*TICKET_PRIORITIES, UNKNOWN_PRIORITY]).take(
        pa.array(np.where(mask_of(n, bad["unknown_priority"]), len(TICKET_PRIORITIES), tickets.priority))
    )
    category = pa.array(TICKET_CATEGORIES).take(pa.array(tickets.category))
    lines = text.json_objects(
        [
            ("ticket_id", text.Quoted(ids)),
            ("customer_id", text.nullable(text.ints(tickets.customer_id), null_mask["customer_id"])),
            ("created_at", text.nullable(text.quoted(text.iso(tickets.created_s)), null_mask["created_at"])),
            ("category", text.nullable(text.quoted(category), null_mask["category"])),
            ("priority", text.Quoted(priority)),
            ("resolved_at", text.nullable(text.quoted(text.iso(resolved_s)), still_open)),
        ]
    )
    lines = truncate(lines, bad["malformed_json"])
    lines = corrupt_utf8(lines, bad["invalid_utf8"], at=len('{"ticket_id": "T'))
    lines, day, position, copy_position = insert_copies(
        rng, text.as_lines(lines), tickets.created_s // DAY_S, bad["duplicate_ticket_id"]
    )
    _record(log, SUPPORT_TICKETS, bad, ids, day, position, {"duplicate_ticket_id": copy_position})
    return lines, day


def marketing_lines(
    events: MarketingEvents, spec: WorldSpec, log: BadRecordLog
) -> tuple[pa.Array, np.ndarray]:
    rng = rng_for(spec, "bad_records.marketing_events")
    n = len(events)
    bad = allocate(rng, n, spec.bad_records, MARKETING_BAD_KINDS)
    ids = text.padded_ids("M", events.number, 9)
    types = pa.array([*MARKETING_EVENT_TYPES, UNKNOWN_MARKETING_TYPE]).take(
        pa.array(
            np.where(mask_of(n, bad["unknown_event_type"]), len(MARKETING_EVENT_TYPES), events.event_type)
        )
    )
    lines = text.json_objects(
        [
            ("event_id", text.Quoted(ids)),
            (
                "customer_id",
                text.nullable(text.ints(events.customer_id), mask_of(n, bad["null_customer_id"])),
            ),
            ("event_type", text.Quoted(types)),
            ("event_ts", text.Quoted(text.iso(events.event_s))),
            ("campaign_id", text.Quoted(text.padded_ids("C", events.campaign, 4))),
        ]
    )
    lines = truncate(lines, bad["malformed_json"])
    lines = corrupt_utf8(lines, bad["invalid_utf8"], at=len('{"event_id": "M'))
    lines, day, position, copy_position = insert_copies(
        rng, text.as_lines(lines), events.event_s // DAY_S, bad["duplicate_event_id"]
    )
    _record(log, MARKETING_EVENTS, bad, ids, day, position, {"duplicate_event_id": copy_position})
    return lines, day


def _record(
    log: BadRecordLog,
    dataset: str,
    bad: dict[str, np.ndarray],
    ids: pa.Array,
    day: np.ndarray,
    position: np.ndarray,
    copy_position: dict[str, np.ndarray],
) -> None:
    """Log each kind with its ids and ``date=.../part-0000.jsonl:LINE`` locations (first ones only)."""
    for kind, rows in bad.items():
        rows = rows[:MAX_LISTED_IDS]
        at = copy_position[kind][:MAX_LISTED_IDS] if kind in copy_position else position[rows]
        first_of_day = np.searchsorted(day, day[at], side="left")
        names = text.dates(day[at] * DAY_S).to_pylist()
        where = [f"date={d}/{PART_FILE}:{p - f + 1}" for d, p, f in zip(names, at, first_of_day, strict=True)]
        log.record(dataset, kind, len(bad[kind]), ids.take(pa.array(rows)), where)


def write_daily_drops(
    landing_dir: Path, dataset: str, lines: pa.Array, day: np.ndarray, spec: WorldSpec
) -> int:
    """Replace ``landing_dir/dataset`` with one folder per day; returns the number of lines written."""
    root = Path(landing_dir) / dataset
    shutil.rmtree(root, ignore_errors=True)
    first_day = spec.start_s // DAY_S
    all_days = np.arange(first_day, first_day + spec.days + 1)
    bounds = np.searchsorted(day, all_days, side="left")
    names = text.dates(all_days[:-1] * DAY_S).to_pylist()
    for k, name in enumerate(names):
        folder = root / f"date={name}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / PART_FILE, "wb") as fh:
            fh.write(text.contiguous_bytes(lines, int(bounds[k]), int(bounds[k + 1])))
        (folder / SUCCESS_FLAG).write_bytes(b"")
    return int(bounds[-1] - bounds[0])
