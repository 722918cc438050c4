"""Injected anomalies for monitor tests: a volume drop, a null spike, an amount drift on chosen days.

``WorldSpec(anomalies={"volume_drop": date, "null_spike": date, "amount_drift": date})``. Each draws
from its own random stream and only touches its day's orders, so a world without anomalies is
byte-identical to one generated before this module existed.

- ``volume_drop``: keeps ``VOLUME_KEPT`` of the day's orders (order ids renumbered to stay 1..n);
- ``amount_drift``: the day's basket values times ``DRIFT_FACTOR``;
- ``null_spike``: ``NULL_SHARE`` of the day's orders lose their customer_id in the source.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np

from headwater.synth.orders import MAX_CENTS, Orders
from headwater.synth.spec import DAY_S, WorldSpec, rng_for

ANOMALY_KINDS = ("volume_drop", "null_spike", "amount_drift")
VOLUME_KEPT = 0.3
DRIFT_FACTOR = 2.5
NULL_SHARE = 0.3


def _day_mask(orders: Orders, day: date) -> np.ndarray:
    d = (day - date(1970, 1, 1)).days
    return orders.order_s // DAY_S == d


def apply_order_anomalies(orders: Orders, spec: WorldSpec) -> Orders:
    """Volume drop and amount drift on the clean orders (no-op without anomalies)."""
    if "amount_drift" in spec.anomalies:
        mask = _day_mask(orders, spec.anomalies["amount_drift"])
        cents = orders.cents.copy()
        cents[mask] = np.minimum(np.rint(cents[mask] * DRIFT_FACTOR).astype(np.int64), MAX_CENTS)
        orders = replace(orders, cents=cents)
    if "volume_drop" in spec.anomalies:
        rng = rng_for(spec, "anomalies.volume_drop")
        mask = _day_mask(orders, spec.anomalies["volume_drop"])
        keep = ~mask | (rng.random(len(orders)) < VOLUME_KEPT)
        orders = Orders(
            order_id=np.arange(1, int(keep.sum()) + 1, dtype=np.int64),
            customer_id=orders.customer_id[keep],
            order_s=orders.order_s[keep],
            cents=orders.cents[keep],
            status=orders.status[keep],
            updated_s=orders.updated_s[keep],
        )
    return orders


def null_spike_rows(orders: Orders, spec: WorldSpec) -> np.ndarray:
    """Row positions whose customer_id the source loses on the null-spike day (empty without one)."""
    if "null_spike" not in spec.anomalies:
        return np.empty(0, dtype=np.int64)
    rng = rng_for(spec, "anomalies.null_spike")
    rows = np.flatnonzero(_day_mask(orders, spec.anomalies["null_spike"]))
    return rows[rng.random(len(rows)) < NULL_SHARE]
