"""The record types of the customer-analytics case and their Arrow schemas."""

from headwater.domain.enums import (
    CUSTOMER_EVENT_TYPES,
    MARKETING_EVENT_TYPES,
    ORDER_STATUSES,
    TICKET_CATEGORIES,
    TICKET_PRIORITIES,
)
from headwater.domain.records import (
    Alert,
    CustomerEvent,
    MarketingEvent,
    Order,
    SupportTicket,
)

__all__ = [
    "CUSTOMER_EVENT_TYPES",
    "MARKETING_EVENT_TYPES",
    "ORDER_STATUSES",
    "RAW_SCHEMAS",
    "TICKET_CATEGORIES",
    "TICKET_PRIORITIES",
    "Alert",
    "CustomerEvent",
    "MarketingEvent",
    "Order",
    "SupportTicket",
]


def __getattr__(name: str):
    """Arrow schemas load on first use: importing pyarrow costs ~0.25 s that most commands never need."""
    if name == "RAW_SCHEMAS":
        from headwater.domain.schemas import RAW_SCHEMAS

        return RAW_SCHEMAS
    raise AttributeError(f"module 'headwater.domain' has no attribute {name!r}")
