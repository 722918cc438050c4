"""Pydantic models of single records: what the stream validates event by event.

Batch data never goes through these (it is checked columnar in SQL); they define the same fields.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Money = Annotated[Decimal, Field(max_digits=12, decimal_places=2)]
Priority = Literal["low", "medium", "high"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Order(_Record):
    order_id: int
    customer_id: int
    order_ts: AwareDatetime
    total_amount: Annotated[Money, Field(ge=0)]
    status: Literal["completed", "refunded", "cancelled"]


class SupportTicket(_Record):
    ticket_id: str
    customer_id: int
    created_at: AwareDatetime
    category: Literal["billing", "shipping", "product", "account", "returns"]
    priority: Priority
    resolved_at: AwareDatetime | None = None


class MarketingEvent(_Record):
    event_id: str
    customer_id: int
    event_type: Literal["email_open", "email_click", "campaign_view"]
    event_ts: AwareDatetime
    campaign_id: str


class OrderPlaced(_Record):
    order_id: int
    amount: Annotated[Money, Field(ge=0)]


class TicketCreated(_Record):
    ticket_id: str
    priority: Priority
    category: Literal["billing", "shipping", "product", "account", "returns"]


class RefundIssued(_Record):
    order_id: int
    amount: Annotated[Money, Field(gt=0)]


PAYLOADS: dict[str, type[_Record]] = {
    "order_placed": OrderPlaced,
    "ticket_created": TicketCreated,
    "refund_issued": RefundIssued,
}


class CustomerEvent(_Record):
    """Envelope of a stream event; ``payload`` is checked against ``PAYLOADS[event_type]``."""

    event_id: str = Field(min_length=1)
    event_type: Literal["order_placed", "ticket_created", "refund_issued"]
    customer_id: int
    timestamp: AwareDatetime
    payload: dict

    def typed_payload(self) -> OrderPlaced | TicketCreated | RefundIssued:
        return PAYLOADS[self.event_type].model_validate(self.payload)  # type: ignore[return-value]


class Alert(_Record):
    alert_id: str
    alert_type: str
    customer_id: int
    reason: str
    event_timestamp: datetime
    recommended_action: str
    snapshot_date: date | None = None
