"""Arrow schemas of the raw zone: the shape every ingest produces, whatever the source."""

from __future__ import annotations

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")
MONEY = pa.decimal128(12, 2)

ORDERS = pa.schema(
    [
        pa.field("order_id", pa.int64(), nullable=False),
        pa.field("customer_id", pa.int64(), nullable=False),
        pa.field("order_ts", UTC_TS, nullable=False),
        pa.field("total_amount", MONEY, nullable=False),
        pa.field("status", pa.string(), nullable=False),
    ]
)

SUPPORT_TICKETS = pa.schema(
    [
        pa.field("ticket_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.int64(), nullable=False),
        pa.field("created_at", UTC_TS, nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("priority", pa.string(), nullable=False),
        pa.field("resolved_at", UTC_TS, nullable=True),
    ]
)

MARKETING_EVENTS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.int64(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("event_ts", UTC_TS, nullable=False),
        pa.field("campaign_id", pa.string(), nullable=False),
    ]
)

RAW_SCHEMAS: dict[str, pa.Schema] = {
    "orders": ORDERS,
    "support_tickets": SUPPORT_TICKETS,
    "marketing_events": MARKETING_EVENTS,
}
