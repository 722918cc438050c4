"""Customers: who they are and their latent behaviour (segment, order rate, basket size, churn time).

The latent columns never reach the source database; they drive orders, tickets and marketing so that
the data carries real signal (lapsing customers raise tickets before they go quiet, loyal ones spend
more often), which is what the churn and CLV models downstream are supposed to find.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.synth import text
from headwater.synth.spec import DAY_S, WorldSpec, rng_for

SEGMENTS = ("loyal", "regular", "lapsing")
SEGMENT_SHARE = np.array([0.15, 0.35, 0.50])
ORDERS_PER_YEAR = np.array([200.0, 80.0, 36.0])  # gamma mean of each segment's order rate
RATE_SHAPE = np.array([3.0, 2.0, 1.2])  # smaller shape = more spread inside the segment
LIFETIME_DAYS = np.array([3 * 365.0, 365.0, 120.0])  # exponential mean time from signup to churn
BASKET_MEDIAN = np.array([62.0, 48.0, 38.0])  # median order value per segment (currency units)
EXISTING_SHARE = 0.45  # customers who signed up before the range starts
HISTORY_DAYS = 730

FIRST_NAMES = (
    "Ada",
    "Alan",
    "Amara",
    "Ben",
    "Carla",
    "Chen",
    "Dana",
    "Diego",
    "Elif",
    "Emma",
    "Farah",
    "Felix",
    "Grace",
    "Hana",
    "Ivan",
    "Jade",
    "Jonas",
    "Kai",
    "Lena",
    "Liam",
    "Maya",
    "Mateo",
    "Nina",
    "Noah",
    "Olga",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Sara",
    "Theo",
    "Uma",
    "Vera",
    "Wei",
    "Yara",
    "Zoe",
)
LAST_NAMES = (
    "Abe",
    "Baker",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Novak",
    "Okafor",
    "Patel",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Silva",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zhang",
)
COUNTRIES = ("US", "GB", "DE", "FR", "NL", "CA", "AU", "ES", "SE", "JP")
COUNTRY_SHARE = np.array([0.34, 0.14, 0.12, 0.09, 0.06, 0.07, 0.05, 0.06, 0.04, 0.03])


@dataclass(frozen=True)
class Customers:
    """Column arrays, index ``i`` is customer ``customer_id[i] == i + 1``."""

    customer_id: np.ndarray  # int64, 1..N
    signup_s: np.ndarray  # int64 Unix seconds, midnight of the signup day
    segment: np.ndarray  # int8 index into SEGMENTS
    orders_per_day: np.ndarray  # float64 rate while active
    churn_s: np.ndarray  # int64 Unix seconds after which the customer stops ordering
    basket_mu: np.ndarray  # float64 log-mean of order value
    engagement: np.ndarray  # float64 probability of opening a marketing email
    name: pa.Array
    email: pa.Array
    country: pa.Array

    def __len__(self) -> int:
        return len(self.customer_id)

    def active_window(self, spec: WorldSpec) -> tuple[np.ndarray, np.ndarray]:
        """[from, to) seconds in which each customer orders inside the range (may be empty)."""
        lo = np.maximum(self.signup_s, spec.start_s)
        hi = np.minimum(self.churn_s, spec.end_s)
        return lo, np.maximum(hi, lo)


def generate_customers(spec: WorldSpec) -> Customers:
    """Existing customers (signed up up to two years before) plus ones joining through the range."""
    rng = rng_for(spec, "customers")
    n = spec.customers
    existing = rng.random(n) < EXISTING_SHARE
    signup_day = np.where(
        existing,
        -rng.integers(1, HISTORY_DAYS + 1, n),
        rng.integers(0, spec.days, n),
    )
    signup_day = np.sort(signup_day)  # ids follow signup order, as an autoincrement key would
    signup_s = spec.start_s + signup_day.astype(np.int64) * DAY_S

    segment = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_SHARE).astype(np.int8)
    shape = RATE_SHAPE[segment]
    orders_per_day = rng.gamma(shape, ORDERS_PER_YEAR[segment] / shape) / 365.0
    lifetime_s = (rng.exponential(LIFETIME_DAYS[segment]) * DAY_S).astype(np.int64)
    churn_s = signup_s + lifetime_s
    basket_mu = np.log(BASKET_MEDIAN[segment]) + rng.normal(0.0, 0.35, n)
    engagement = np.clip(rng.beta(1.3, 10.0, n) * np.where(segment == 0, 1.6, 1.0), 0.0, 0.9)

    first = rng.integers(0, len(FIRST_NAMES), n)
    last = rng.integers(0, len(LAST_NAMES), n)
    country_idx = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_SHARE)
    first_arr = pa.array(FIRST_NAMES).take(pa.array(first))
    last_arr = pa.array(LAST_NAMES).take(pa.array(last))
    customer_id = np.arange(1, n + 1, dtype=np.int64)
    name = pc.binary_join_element_wise(first_arr, last_arr, " ")
    email = pc.binary_join_element_wise(
        pc.utf8_lower(first_arr), ".", pc.utf8_lower(last_arr), text.ints(customer_id), "@example.com", ""
    )
    return Customers(
        customer_id=customer_id,
        signup_s=signup_s,
        segment=segment,
        orders_per_day=orders_per_day,
        churn_s=churn_s,
        basket_mu=basket_mu,
        engagement=engagement,
        name=name,
        email=email,
        country=pa.array(COUNTRIES).take(pa.array(country_idx)),
    )
