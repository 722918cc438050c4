"""Closed value sets of the domain: one definition, used by the generator, the gates and the stream."""

from typing import Final

ORDER_STATUSES: Final = ("completed", "refunded", "cancelled")
CANCELLED: Final = "cancelled"
TICKET_PRIORITIES: Final = ("low", "medium", "high")
TICKET_CATEGORIES: Final = ("billing", "shipping", "product", "account", "returns")
MARKETING_EVENT_TYPES: Final = ("email_open", "email_click", "campaign_view")
CUSTOMER_EVENT_TYPES: Final = ("order_placed", "ticket_created", "refund_issued")
