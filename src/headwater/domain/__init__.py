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
from headwater.domain.schemas import RAW_SCHEMAS

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
