"""Support tickets: a low background rate plus a burst in the month before a customer lapses.

The burst is the signal behind the at-risk alert (>= 3 tickets in 30 days, or >= 2 high priority):
pre-churn tickets are more often high priority and about billing or returns. Resolution times are
lognormal (high priority faster); some tickets stay open, and any that would resolve after the
range ends are still open at its end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headwater.domain.enums import TICKET_CATEGORIES, TICKET_PRIORITIES
from headwater.synth.customers import Customers
from headwater.synth.spec import DAY_S, WorldSpec, rng_for

BASE_PER_YEAR = 1.2
PRECHURN_DAYS = 30
PRECHURN_PER_DAY = 0.06
HOURLY_WEIGHT = np.array(
    [0.5, 0.3, 0.2, 0.2, 0.2, 0.4, 1, 2, 4, 6, 7, 7, 6, 6, 6.5, 6.5, 6, 5, 4, 3.5, 3, 2.5, 1.5, 1]
)
# rows: background, pre-churn; columns follow TICKET_CATEGORIES / TICKET_PRIORITIES
CATEGORY_P = np.array([[0.24, 0.30, 0.22, 0.12, 0.12], [0.34, 0.16, 0.16, 0.10, 0.24]])
PRIORITY_P = np.array([[0.47, 0.42, 0.11], [0.30, 0.45, 0.25]])
RESOLVE_MEDIAN_HOURS = np.array([30.0, 16.0, 5.0])  # by priority low, medium, high
RESOLVE_SIGMA = 1.0
NEVER_RESOLVED_SHARE = 0.09

assert CATEGORY_P.shape[1] == len(TICKET_CATEGORIES) and PRIORITY_P.shape[1] == len(TICKET_PRIORITIES)


@dataclass(frozen=True)
class Tickets:
    """Clean tickets sorted by creation time; ticket number ``i + 1`` is ``T{i+1:08d}``."""

    number: np.ndarray  # int64 1..N
    customer_id: np.ndarray  # int64
    created_s: np.ndarray  # int64 Unix seconds
    category: np.ndarray  # int8 index into TICKET_CATEGORIES
    priority: np.ndarray  # int8 index into TICKET_PRIORITIES
    resolved_s: np.ndarray  # int64, -1 when still open

    def __len__(self) -> int:
        return len(self.number)


def _window_draws(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, per_day: np.ndarray | float):
    counts = rng.poisson(per_day * (hi - lo) / DAY_S)
    who = np.repeat(np.arange(len(lo)), counts)
    day = (lo[who] + (rng.random(len(who)) * (hi - lo)[who]).astype(np.int64)) // DAY_S
    return who, day


def generate_tickets(customers: Customers, spec: WorldSpec) -> Tickets:
    rng = rng_for(spec, "support_tickets")
    lo, hi = customers.active_window(spec)
    base_who, base_day = _window_draws(rng, lo, hi, BASE_PER_YEAR / 365.0)
    pre_lo = np.maximum(customers.churn_s - PRECHURN_DAYS * DAY_S, lo)
    pre_who, pre_day = _window_draws(rng, pre_lo, np.maximum(hi, pre_lo), PRECHURN_PER_DAY)

    who = np.concatenate([base_who, pre_who])
    day = np.concatenate([base_day, pre_day])
    kind = np.concatenate([np.zeros(len(base_who), np.int8), np.ones(len(pre_who), np.int8)])
    n = len(who)
    hour = rng.choice(24, size=n, p=HOURLY_WEIGHT / HOURLY_WEIGHT.sum())
    created_s = day * DAY_S + hour * 3600 + rng.integers(0, 3600, n)

    u_cat, u_pri = rng.random(n), rng.random(n)
    category = (u_cat[:, None] > np.cumsum(CATEGORY_P, axis=1)[kind]).sum(axis=1).astype(np.int8)
    priority = (u_pri[:, None] > np.cumsum(PRIORITY_P, axis=1)[kind]).sum(axis=1).astype(np.int8)
    category = np.minimum(category, len(TICKET_CATEGORIES) - 1)
    priority = np.minimum(priority, len(TICKET_PRIORITIES) - 1)

    hours = np.exp(np.log(RESOLVE_MEDIAN_HOURS[priority]) + RESOLVE_SIGMA * rng.standard_normal(n))
    resolved_s = created_s + np.maximum((hours * 3600).astype(np.int64), 60)
    still_open = (rng.random(n) < NEVER_RESOLVED_SHARE) | (resolved_s >= spec.end_s)
    resolved_s[still_open] = -1

    order = np.argsort(created_s, kind="stable")
    return Tickets(
        number=np.arange(1, n + 1, dtype=np.int64),
        customer_id=customers.customer_id[who][order],
        created_s=created_s[order],
        category=category[order],
        priority=priority[order],
        resolved_s=resolved_s[order],
    )
