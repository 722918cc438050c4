"""Data contracts: one declaration per dataset, from which the row gate, schema evolution and the
warehouse output checks are all derived.

A :class:`Contract` lists its columns (logical type, nullability, enum, inclusive range), the
primary key, contextual rules (SQL predicates that need more than one column or the data interval),
and a freshness bound. ``kind="raw"`` contracts describe what a source delivers (the ``wire`` type
is what the source sends: timestamps arrive as text); ``kind="warehouse"`` ones describe an output
table. Logical types: ``int32 int64 float32 float64 decimal(p,s) string bool date timestamp``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Literal

from headwater.domain import enums

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


@dataclass(frozen=True)
class Rule:
    """A row rule: ``violated`` is a SQL boolean over the typed columns (``raw_<name>`` for the text);
    parameters are ``$name`` placeholders bound at run time."""

    name: str
    violated: str


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = False
    enum: tuple[str, ...] | None = None
    min: float | int | None = None  # inclusive
    max: float | int | None = None  # inclusive
    parse: str | None = None  # SQL typing the raw text column when the default cast does not fit
    doc: str = ""

    @property
    def wire(self) -> str:
        """The type the source delivers: dates and timestamps come as text."""
        return "string" if self.type in ("date", "timestamp") else self.type


@dataclass(frozen=True)
class Contract:
    dataset: str
    kind: Literal["raw", "warehouse"]
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    rules: tuple[Rule, ...] = ()
    freshness: timedelta | None = None  # newest record at most this old at the interval end
    freshness_column: str | None = None
    source_only: tuple[str, ...] = ()  # source columns used by the extract, not part of the data
    absent: tuple[str, ...] = field(default=())  # approved removals: treated as all-null and nullable
    version: int = 1
    doc: str = ""

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def with_absent(self, columns: tuple[str, ...]) -> Contract:
        """The contract after approved column removals: those columns become nullable and absent."""
        if not columns:
            return self
        cols = tuple(replace(c, nullable=True) if c.name in columns else c for c in self.columns)
        return replace(self, columns=cols, absent=tuple(sorted(set(self.absent) | set(columns))))


# --- type algebra -----------------------------------------------------------------------------------
def decimal_parts(type_: str) -> tuple[int, int] | None:
    m = _DECIMAL.match(type_)
    return (int(m.group(1)), int(m.group(2))) if m else None


def sql_type(type_: str) -> str:
    dec = decimal_parts(type_)
    if dec:
        return f"DECIMAL({dec[0]}, {dec[1]})"
    return {
        "int32": "INTEGER",
        "int64": "BIGINT",
        "float32": "FLOAT",
        "float64": "DOUBLE",
        "string": "VARCHAR",
        "bool": "BOOLEAN",
        "date": "DATE",
        "timestamp": "TIMESTAMPTZ",
    }[type_]


# Safe widenings: every value of the old type is exactly representable in the new one.
SAFE_WIDENINGS: dict[str, tuple[str, ...]] = {
    "int32": ("int64", "float64", "decimal(p>=10+s,s)"),
    "int64": ("decimal(p>=19+s,s)",),
    "float32": ("float64",),
    "decimal(p,s)": ("decimal(p2,s2) with s2>=s and p2-s2>=p-s", "float64 only if p<=15"),
    "date": ("timestamp",),
}


def is_safe_widening(old: str, new: str) -> bool:
    """True when every ``old`` value converts to ``new`` without loss (the table above)."""
    if old == new:
        return False
    if (old, new) in {("int32", "int64"), ("int32", "float64"), ("float32", "float64"), ("date", "timestamp")}:
        return True
    old_dec, new_dec = decimal_parts(old), decimal_parts(new)
    if new_dec and old in ("int32", "int64"):
        digits = 10 if old == "int32" else 19
        return new_dec[0] - new_dec[1] >= digits
    if old_dec and new_dec:
        return new_dec[1] >= old_dec[1] and new_dec[0] - new_dec[1] >= old_dec[0] - old_dec[1]
    if old_dec and new == "float64":
        return old_dec[0] <= 15
    return False


def conforms(expected: str, observed: str) -> bool:
    """True when data of the ``observed`` wire type fits the ``expected`` one without a schema change."""
    if observed in (expected, "null"):
        return True
    if expected in ("int64", "float64") and observed == "int32":
        return True
    if expected == "float64" and observed in ("int64", "float32"):  # JSON numbers: ints are valid floats
        return True
    if expected == "decimal" or observed == "decimal":  # an unparameterised NUMERIC on either side
        return (decimal_parts(expected) is not None or expected == "decimal") and (
            decimal_parts(observed) is not None or observed == "decimal"
        )
    exp_dec, obs_dec = decimal_parts(expected), decimal_parts(observed)
    if exp_dec and obs_dec:  # narrower or equal decimals fit
        return obs_dec[1] <= exp_dec[1] and obs_dec[0] - obs_dec[1] <= exp_dec[0] - exp_dec[1]
    # JSON numbers into a decimal: each value is checked by the gate's type rule
    return bool(exp_dec) and observed in ("int32", "int64", "float64")


# --- the contracts of the flagship pipeline ---------------------------------------------------------
_ORDER_TS = "CAST(TRY_STRPTIME(order_ts, '%Y-%m-%d %H:%M:%S') AS TIMESTAMPTZ)"

ORDERS = Contract(
    dataset="orders",
    kind="raw",
    doc="Non-cancelled orders of the OLTP source, one row per order, in the interval of their order_ts.",
    columns=(
        Column("order_id", "int64", doc="source primary key"),
        Column("customer_id", "int64", doc="references customers"),
        Column("order_ts", "timestamp", parse=_ORDER_TS, doc="'YYYY-MM-DD HH:MM:SS' UTC"),
        Column("total_amount", "decimal(12,2)", min=0, max=1_000_000, doc="order total, currency units"),
        Column("status", "string", enum=enums.ORDER_STATUSES),
    ),
    key=("order_id",),
    rules=(
        Rule("reference:customer_id", "customer_id IS NOT NULL AND NOT _customer_known"),
        Rule("range:order_ts", "order_ts < $interval_start OR order_ts >= $interval_end"),
    ),
    freshness=timedelta(days=1),
    freshness_column="order_ts",
    source_only=("updated_at",),
)

SUPPORT_TICKETS = Contract(
    dataset="support_tickets",
    kind="raw",
    doc="Daily JSONL drop of support tickets, one line per ticket created that day.",
    columns=(
        Column("ticket_id", "string"),
        Column("customer_id", "int64"),
        Column("created_at", "timestamp"),
        Column("category", "string", enum=enums.TICKET_CATEGORIES),
        Column("priority", "string", enum=enums.TICKET_PRIORITIES),
        Column("resolved_at", "timestamp", nullable=True, doc="null while the ticket is open"),
    ),
    key=("ticket_id",),
    rules=(
        Rule("reference:customer_id", "customer_id IS NOT NULL AND NOT _customer_known"),
        Rule("order:resolved_at", "resolved_at < created_at"),
        Rule("range:created_at", "created_at >= $interval_end"),
    ),
    freshness=timedelta(days=3),
    freshness_column="created_at",
)

MARKETING_EVENTS = Contract(
    dataset="marketing_events",
    kind="raw",
    doc="Daily JSONL drop of marketing events (email opens/clicks, campaign views).",
    columns=(
        Column("event_id", "string"),
        Column("customer_id", "int64"),
        Column("event_type", "string", enum=enums.MARKETING_EVENT_TYPES),
        Column("event_ts", "timestamp"),
        Column("campaign_id", "string"),
    ),
    key=("event_id",),
    rules=(
        Rule("reference:customer_id", "customer_id IS NOT NULL AND NOT _customer_known"),
        Rule("range:event_ts", "event_ts >= $interval_end"),
    ),
    freshness=timedelta(days=14),  # campaign-driven: a week or more between campaigns is normal
    freshness_column="event_ts",
)

_MONEY = "decimal(18,2)"
CUSTOMER_METRICS = Contract(
    dataset="customer_metrics",
    kind="warehouse",
    doc="One row per customer with a non-cancelled order, per snapshot date.",
    columns=(
        Column("snapshot_date", "date"),
        Column("customer_id", "int64"),
        Column("total_revenue", _MONEY, min=0),
        Column("avg_order_value", _MONEY, min=0),
        Column("order_count", "int64", min=1),
        Column("first_order_date", "date"),
        Column("last_order_date", "date"),
        Column("days_since_last_order", "int32", min=0),
        Column("customer_lifetime_days", "int32", min=1),
        Column("estimated_clv", _MONEY, min=0),
        Column("churn_risk", "float64", min=0, max=1),
        Column("churn_risk_level", "string", enum=("low", "medium", "high")),
        Column("tickets_30d", "int64", min=0),
        Column("tickets_90d", "int64", min=0),
        Column("high_priority_tickets_30d", "int64", min=0),
        Column("open_tickets", "int64", min=0),
        Column("mean_resolution_hours_90d", "float64", nullable=True, min=0),
        Column("email_opens_30d", "int64", min=0),
        Column("email_clicks_30d", "int64", min=0),
        Column("campaign_views_30d", "int64", min=0),
        Column("click_rate_30d", "float64", nullable=True, min=0),
    ),
    key=("snapshot_date", "customer_id"),
    rules=(
        Rule("order:first_last_order_date", "first_order_date > last_order_date"),
        Rule("range:last_order_date", "last_order_date > snapshot_date"),
        Rule("consistency:tickets_30d_le_90d", "tickets_30d > tickets_90d"),
    ),
    freshness=timedelta(days=0),
    freshness_column="snapshot_date",
)

DAILY_SALES = Contract(
    dataset="daily_sales",
    kind="warehouse",
    doc="One row per sales day: the day's non-cancelled orders.",
    columns=(
        Column("sales_date", "date"),
        Column("order_count", "int64", min=0),
        Column("revenue", _MONEY, min=0),
        Column("unique_customers", "int64", min=0),
        Column("refunded_orders", "int64", min=0),
        Column("new_customers", "int64", min=0),
    ),
    key=("sales_date",),
    rules=(Rule("consistency:customers_le_orders", "unique_customers > order_count"),),
    freshness=timedelta(days=0),
    freshness_column="sales_date",
)

CONTRACTS: dict[str, Contract] = {
    c.dataset: c for c in (ORDERS, SUPPORT_TICKETS, MARKETING_EVENTS, CUSTOMER_METRICS, DAILY_SALES)
}
RAW_DATASETS = tuple(name for name, c in CONTRACTS.items() if c.kind == "raw")
WAREHOUSE_TABLES = tuple(name for name, c in CONTRACTS.items() if c.kind == "warehouse")


def contract(dataset: str) -> Contract:
    from headwater.errors import ConfigError

    try:
        return CONTRACTS[dataset]
    except KeyError:
        raise ConfigError(f"no contract for dataset {dataset!r} (known: {', '.join(CONTRACTS)})") from None


# --- rule derivation (one definition: the gate and the output checks both use this) -----------------
def enum_param(column: str) -> str:
    return f"enum_{column}"


def column_rules(c: Contract) -> tuple[list[Rule], dict[str, object]]:
    """Enum and range rules of the columns as SQL predicates, and the parameters they bind."""
    rules: list[Rule] = []
    params: dict[str, object] = {}
    for col in c.columns:
        if col.enum is not None:
            params[enum_param(col.name)] = list(col.enum)
            rules.append(Rule(f"enum:{col.name}", f"NOT list_contains(${enum_param(col.name)}, {col.name})"))
        bounds = []
        if col.min is not None:
            params[f"min_{col.name}"] = col.min
            bounds.append(f"{col.name} < ${'min_' + col.name}")
        if col.max is not None:
            params[f"max_{col.name}"] = col.max
            bounds.append(f"{col.name} > ${'max_' + col.name}")
        if bounds:
            rules.append(Rule(f"range:{col.name}", " OR ".join(bounds)))
    return rules, params
