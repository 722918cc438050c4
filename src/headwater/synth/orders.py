"""Orders: a thinned Poisson process per customer, so volume follows customers, weekdays and hours.

Each customer orders at its own gamma-distributed rate between signup and churn; a day-of-week
weight thins the candidates (weekends busier), the hour comes from a daily profile, and basket
values are lognormal around the customer's own mean (heavy tail). About 0.2% of orders sit exactly
on midnight so day-boundary bugs show up. Order ids follow time, like an autoincrement key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headwater.synth.customers import Customers
from headwater.synth.spec import DAY_S, WorldSpec, rng_for

# Monday..Sunday, mean 1; thinning keeps a candidate with probability weight / max(weight)
WEEKDAY_WEIGHT = np.array([0.92, 0.88, 0.9, 0.94, 1.06, 1.2, 1.1])
HOURLY_WEIGHT = np.array(
    [2, 1, 1, 0.5, 0.5, 0.7, 1.5, 3, 4.5, 5, 5, 5.5, 6.5, 6, 5, 5, 5.5, 6, 7, 8, 8.5, 7.5, 5.5, 3.5]
)
MIDNIGHT_SHARE = 0.002
CANCELLED_SHARE = 0.05
REFUNDED_SHARE = 0.025
BASKET_SIGMA = 0.65
MIN_CENTS, MAX_CENTS = 199, 2_500_000
STATUS_COMPLETED, STATUS_REFUNDED, STATUS_CANCELLED = 0, 1, 2  # index into ORDER_STATUSES


@dataclass(frozen=True)
class Orders:
    """Clean orders sorted by time; ``order_id[i] == i + 1``."""

    order_id: np.ndarray  # int64
    customer_id: np.ndarray  # int64
    order_s: np.ndarray  # int64 Unix seconds
    cents: np.ndarray  # int64 total amount in cents (> 0)
    status: np.ndarray  # int8 index into ORDER_STATUSES
    updated_s: np.ndarray  # int64: order time, cancellation time or refund time

    def __len__(self) -> int:
        return len(self.order_id)


def expected_orders(customers: Customers, spec: WorldSpec) -> float:
    """Expected order count of a world (thinning keeps the mean, so it is rate x active days)."""
    lo, hi = customers.active_window(spec)
    return float(np.sum(customers.orders_per_day * (hi - lo) / DAY_S))


def generate_orders(customers: Customers, spec: WorldSpec) -> Orders:
    rng = rng_for(spec, "orders")
    lo, hi = customers.active_window(spec)
    boost = WEEKDAY_WEIGHT.max()
    per_customer = rng.poisson(customers.orders_per_day * (hi - lo) / DAY_S * boost)
    who = np.repeat(np.arange(len(customers)), per_customer)
    t = lo[who] + (rng.random(len(who)) * (hi - lo)[who]).astype(np.int64)
    day = t // DAY_S
    keep = rng.random(len(who)) < WEEKDAY_WEIGHT[(day + 3) % 7] / boost  # 1970-01-01 was a Thursday
    who, day = who[keep], day[keep]
    n = len(who)

    hour = rng.choice(24, size=n, p=HOURLY_WEIGHT / HOURLY_WEIGHT.sum())
    tod = hour * 3600 + rng.integers(0, 3600, n)
    midnight = rng.random(n) < MIDNIGHT_SHARE
    if n and not midnight.any():
        midnight[0] = True
    tod[midnight] = 0
    order_s = day * DAY_S + tod

    cents = np.exp(customers.basket_mu[who] + BASKET_SIGMA * rng.standard_normal(n)) * 100
    cents = np.clip(np.rint(cents), MIN_CENTS, MAX_CENTS).astype(np.int64)

    u = rng.random(n)
    status = np.full(n, STATUS_COMPLETED, dtype=np.int8)
    status[u < CANCELLED_SHARE + REFUNDED_SHARE] = STATUS_REFUNDED
    status[u < CANCELLED_SHARE] = STATUS_CANCELLED
    refund_s = order_s + (rng.gamma(2.0, 3.0, n) * DAY_S).astype(np.int64) + DAY_S
    cancel_s = order_s + rng.integers(300, 2 * DAY_S, n)
    # a refund that would happen after the range has not happened yet: the order is still completed
    status[(status == STATUS_REFUNDED) & (refund_s >= spec.end_s)] = STATUS_COMPLETED
    updated_s = np.select(
        [status == STATUS_REFUNDED, status == STATUS_CANCELLED],
        [refund_s, np.minimum(cancel_s, spec.end_s - 1)],
        order_s,
    )

    order = np.argsort(order_s, kind="stable")
    return Orders(
        order_id=np.arange(1, n + 1, dtype=np.int64),
        customer_id=customers.customer_id[who][order],
        order_s=order_s[order],
        cents=cents[order],
        status=status[order],
        updated_s=updated_s[order],
    )
