"""``generate_world``: build every dataset of a synthetic world and describe it in ``world.json``.

Generation is columnar (NumPy/Arrow) end to end; the only row-wise step is SQLite's executemany.
Each dataset draws from its own random stream, so changing one does not shift the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from headwater.config import Settings
from headwater.domain.enums import (
    CUSTOMER_EVENT_TYPES,
    MARKETING_EVENT_TYPES,
    ORDER_STATUSES,
    TICKET_PRIORITIES,
)
from headwater.synth import landing
from headwater.synth.anomalies import apply_order_anomalies
from headwater.synth.bad_records import BadRecordLog
from headwater.synth.customers import SEGMENTS, Customers, generate_customers
from headwater.synth.events import CUSTOMER_EVENTS, build_events, event_lines, write_events
from headwater.synth.marketing import MarketingEvents, generate_marketing
from headwater.synth.oltp import write_source_db
from headwater.synth.orders import Orders, expected_orders, generate_orders
from headwater.synth.spec import DAY_S, GENERATOR_VERSION, WorldManifest, WorldSpec
from headwater.synth.tickets import Tickets, generate_tickets

Progress = Callable[[str, float], None]
MANIFEST_FILE = "world.json"

# share of the total work each stage roughly takes, for a smooth progress bar
_STAGES = {"model": 0.1, "source_db": 0.6, "support_tickets": 0.05, "marketing_events": 0.05, "events": 0.2}


def estimate_orders(spec: WorldSpec) -> int:
    """Expected number of orders for ``spec`` (cheap: draws the customers only)."""
    return round(expected_orders(generate_customers(spec), spec))


def _counts(codes: np.ndarray, names: tuple[str, ...]) -> dict[str, int]:
    tally = np.bincount(codes.astype(np.int64), minlength=len(names))
    return {name: int(tally[k]) for k, name in enumerate(names)}


def _stats(
    spec: WorldSpec,
    customers: Customers,
    orders: Orders,
    tickets: Tickets,
    marketing: MarketingEvents,
    events,
) -> dict[str, dict[str, int]]:
    return {
        "customers": {
            **_counts(customers.segment, SEGMENTS),
            "signed_up_before_start": int((customers.signup_s < spec.start_s).sum()),
            "churned_before_end": int((customers.churn_s < spec.end_s).sum()),
        },
        "orders": {
            **_counts(orders.status, ORDER_STATUSES),
            "at_midnight": int((orders.order_s % DAY_S == 0).sum()),
        },
        "support_tickets": {
            **_counts(tickets.priority, TICKET_PRIORITIES),
            "open_at_end": int((tickets.resolved_s < 0).sum()),
        },
        "marketing_events": _counts(marketing.event_type, MARKETING_EVENT_TYPES),
        CUSTOMER_EVENTS: _counts(events.event_type, CUSTOMER_EVENT_TYPES),
    }


def generate_world(settings: Settings, spec: WorldSpec, progress: Progress | None = None) -> WorldManifest:
    """Replace the world under ``settings`` with the one ``spec`` describes; returns its manifest.

    Writes ``settings.source_db`` (SQLite customers/orders), daily drops of support tickets and
    marketing events under ``settings.landing_dir``, the customer-event log ``settings.events_file``
    and ``settings.home / "world.json"``. The same spec always produces byte-identical files.
    ``progress(stage, fraction_of_total)`` is called as the work advances.
    """
    report = progress or (lambda _stage, _fraction: None)
    done = 0.0

    def stage_progress(stage: str) -> Callable[[float], None]:
        return lambda fraction: report(stage, min(1.0, done + _STAGES[stage] * fraction))

    log = BadRecordLog()
    report("model", 0.0)
    customers = generate_customers(spec)
    orders = apply_order_anomalies(generate_orders(customers, spec), spec)
    tickets = generate_tickets(customers, spec)
    marketing = generate_marketing(customers, spec)
    done += _STAGES["model"]
    report("model", done)

    home = Path(settings.home)
    (home / MANIFEST_FILE).unlink(missing_ok=True)  # a half-written world must not look complete
    Path(settings.events_file).unlink(missing_ok=True)
    write_source_db(settings.source_db, customers, orders, spec, log, stage_progress("source_db"))
    done += _STAGES["source_db"]

    lines: dict[str, int] = {"customers": len(customers), "orders": len(orders)}
    for dataset, render, data in (
        (landing.SUPPORT_TICKETS, landing.ticket_lines, tickets),
        (landing.MARKETING_EVENTS, landing.marketing_lines, marketing),
    ):
        rendered, day = render(data, spec, log)
        lines[dataset] = landing.write_daily_drops(settings.landing_dir, dataset, rendered, day, spec)
        done += _STAGES[dataset]
        report(dataset, done)

    events = build_events(orders, tickets)
    lines[CUSTOMER_EVENTS] = write_events(settings.events_file, event_lines(events, spec, log))
    done += _STAGES["events"]

    manifest = WorldManifest(
        spec=spec.to_dict(),
        generator_version=GENERATOR_VERSION,
        range_start=spec.start.isoformat(),
        range_end_exclusive=spec.end.isoformat(),
        rows={
            "customers": len(customers),
            "orders": len(orders),
            landing.SUPPORT_TICKETS: len(tickets),
            landing.MARKETING_EVENTS: len(marketing),
            CUSTOMER_EVENTS: len(events),
        },
        lines=lines,
        stats=_stats(spec, customers, orders, tickets, marketing, events),
        bad_records=log.as_dict(),
        files={
            "source_db": str(settings.source_db),
            "landing_dir": str(settings.landing_dir),
            "events_file": str(settings.events_file),
        },
    )
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / (MANIFEST_FILE + ".tmp")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, home / MANIFEST_FILE)
    report("done", 1.0)
    return manifest
