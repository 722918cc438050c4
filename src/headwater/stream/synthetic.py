"""Seeded synthetic customer-event streams for the stream tests and benchmarks.

Same seed, same lines: the crash test and the benchmark compare runs over identical input without
depending on the project's main generator. Lines follow the generator's JSONL contract; optional
fractions of bad records, out-of-order events (within the allowed lateness) and late events.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BAD_KINDS = ("malformed_json", "missing_field", "wrong_type", "unknown_type", "negative_refund")


def generate_events(n: int, *, seed: int = 0, customers: int = 5000, start: str = "2024-01-01T00:00:00",
                    mean_gap_s: float = 30.0, bad_rate: float = 0.0, out_of_order_rate: float = 0.0,
                    late_rate: float = 0.0, lateness_s: int = 6 * 3600, ticket_share: float = 0.3,
                    high_share: float = 0.2, refund_share: float = 0.08) -> list[str]:
    """``n`` JSONL lines in (mostly) time order; customers drawn with a skew so some are busy."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(mean_gap_s, n)
    secs = np.cumsum(gaps).astype(np.int64)
    shift = np.zeros(n, dtype=np.int64)
    ooo = rng.random(n) < out_of_order_rate
    shift[ooo] = rng.integers(1, max(2, lateness_s // 2), int(ooo.sum()))
    late = rng.random(n) < late_rate
    shift[late] = rng.integers(lateness_s * 2, lateness_s * 2 + 10 * 86400, int(late.sum()))
    ts = np.datetime64(start, "s") + (secs - shift).astype("timedelta64[s]")
    stamps = np.datetime_as_string(ts, unit="s")
    weights = rng.pareto(2.5, customers) + 1.0  # a few busy customers, a long tail of quiet ones
    cust = rng.choice(customers, n, p=weights / weights.sum()).astype(np.int64) + 1
    kind = rng.random(n)
    amounts = np.round(rng.lognormal(4.3, 0.9, n), 2)
    refunds = np.round(rng.lognormal(4.0, 1.4, n), 2)
    high = rng.random(n) < high_share
    prio_other = rng.integers(0, 2, n)
    cats = rng.integers(0, 5, n)
    orders = rng.integers(1, 10_000_000, n)
    bad = rng.random(n) < bad_rate
    bad_kind = rng.integers(0, len(BAD_KINDS), n)
    categories = ("billing", "shipping", "product", "account", "returns")
    lines = []
    for i in range(n):
        eid = f"E{i + 1:09d}"
        if kind[i] < ticket_share:
            etype = "ticket_created"
            prio = "high" if high[i] else ("low", "medium")[prio_other[i]]
            payload = {"ticket_id": f"T{i + 1:09d}", "priority": prio, "category": categories[cats[i]]}
        elif kind[i] < ticket_share + refund_share:
            etype = "refund_issued"
            payload = {"order_id": int(orders[i]), "amount": f"{refunds[i]:.2f}"}
        else:
            etype = "order_placed"
            payload = {"order_id": int(orders[i]), "amount": f"{amounts[i]:.2f}"}
        event = {"event_id": eid, "event_type": etype, "customer_id": int(cust[i]),
                 "timestamp": stamps[i] + "Z", "payload": payload}
        if bad[i]:
            lines.append(_spoil(event, BAD_KINDS[bad_kind[i]]))
        else:
            lines.append(json.dumps(event, separators=(",", ":")))
    return lines


def _spoil(event: dict, kind: str) -> str:
    if kind == "malformed_json":
        return json.dumps(event)[:-7]
    if kind == "missing_field":
        event.pop("customer_id")
    elif kind == "wrong_type":
        event["customer_id"] = "not-a-number"
    elif kind == "unknown_type":
        event["event_type"] = "page_viewed"
    else:
        event["event_type"] = "refund_issued"
        event["payload"] = {"order_id": 1, "amount": "-12.50"}
    return json.dumps(event, separators=(",", ":"))


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
