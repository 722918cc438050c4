"""Validating one raw event: a compiled fast path for the common valid case, Pydantic for the rest.

The reference is Pydantic: the envelopes below mirror :class:`headwater.domain.records.CustomerEvent`
field for field and reuse the domain payload models (``OrderPlaced``, ``TicketCreated``,
``RefundIssued``); a union discriminated by ``event_type`` lets pydantic-core parse the JSON and check
envelope and payload in one call. A test pins that it accepts and rejects exactly what
``CustomerEvent`` + ``typed_payload()`` do.

:func:`decode_event` is what the processor calls (about 8 µs of its hot path went to Pydantic). It
first tries msgspec structs that accept only a *canonical subset* of what Pydantic accepts: integer
ids, non-empty event id, known literals, no extra fields, timestamps ``YYYY-MM-DDTHH:MM:SSZ``, amounts
``123.45`` (two decimals). On that subset both give the same values; anything else (every invalid
event, and valid but unusual spellings such as ``"amount": 12.5`` or ``+02:00`` offsets) goes through
Pydantic, so acceptance and the reasons of dead letters are Pydantic's alone. A test proves the two
paths equal on valid events and on every kind of invalid one.
"""

from __future__ import annotations

import re
from contextlib import suppress
from datetime import UTC
from decimal import Decimal
from functools import partial
from typing import Annotated, ClassVar, Literal, NamedTuple

import msgspec
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from headwater.domain.records import OrderPlaced, RefundIssued, TicketCreated
from headwater.errors import DataError


class InvalidEvent(DataError):
    """A record that is not a valid customer event; ``reason`` names the first problem."""


# -- the reference: Pydantic ---------------------------------------------------------------------
class _Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=1)
    customer_id: int
    timestamp: AwareDatetime


class OrderPlacedEvent(_Envelope):
    event_type: Literal["order_placed"]
    payload: OrderPlaced


class TicketCreatedEvent(_Envelope):
    event_type: Literal["ticket_created"]
    payload: TicketCreated


class RefundIssuedEvent(_Envelope):
    event_type: Literal["refund_issued"]
    payload: RefundIssued


TypedEvent = OrderPlacedEvent | TicketCreatedEvent | RefundIssuedEvent
_ADAPTER: TypeAdapter[TypedEvent] = TypeAdapter(Annotated[TypedEvent, Field(discriminator="event_type")])
_DATETIME: TypeAdapter[AwareDatetime] = TypeAdapter(AwareDatetime)


def describe(exc: ValidationError) -> str:
    """One line naming the first problem, e.g. ``missing field 'customer_id'``."""
    err = exc.errors()[0]
    kind = err["type"]
    loc = list(err["loc"])
    if kind == "json_invalid":
        return f"malformed JSON: {err['msg']}"
    if kind == "union_tag_not_found":
        return "missing field 'event_type'"
    if kind == "union_tag_invalid":
        return f"unknown event_type {err.get('ctx', {}).get('tag')!r}"
    if not loc and kind in ("model_attributes_type", "model_type", "dict_type"):
        return f"not a JSON object: {str(err.get('input'))[:40]}"
    prefix = ""
    if loc and loc[0] in ("order_placed", "ticket_created", "refund_issued"):
        tag = loc.pop(0)
        if loc and loc[0] == "payload" and len(loc) > 1:
            prefix = f"invalid {tag} payload: "
            loc.pop(0)
    where = ".".join(str(p) for p in loc)
    if kind == "missing":
        return f"{prefix}missing field {where!r}"
    if kind == "extra_forbidden":
        return f"{prefix}unexpected field {where!r}"
    return f"{prefix}field {where!r}: {err['msg']} (got {err.get('input')!r})"


def parse_event(raw: str | bytes) -> TypedEvent:
    """Validate one raw JSON event with Pydantic; raises :class:`InvalidEvent` with a one-line reason."""
    try:
        return _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise InvalidEvent(describe(exc)) from exc


def parse_envelope(obj: object) -> str | None:
    """Check only the envelope of a decoded event (HTTP ingest); returns the problem or None.

    The payload is deliberately not checked here: a bad payload is accepted and dead-lettered by
    the processor with its reason, so nothing a client sent is lost.
    """
    if not isinstance(obj, dict):
        return "not a JSON object"
    probe = {k: obj[k] for k in ("event_id", "customer_id", "timestamp") if k in obj}
    try:
        _Envelope.model_validate(probe)
    except ValidationError as exc:
        return describe(exc)
    etype = obj.get("event_type")
    if etype is None:
        return "missing field 'event_type'"
    if etype not in ("order_placed", "ticket_created", "refund_issued"):
        return f"unknown event_type {etype!r}"
    return None


# -- what the rules see ----------------------------------------------------------------------------
_MONEY = re.compile(r"(0|[1-9][0-9]{0,9})\.[0-9]{2}")  # canonical Money (ge=0): <= 12 digits, 2 decimals
_cents: dict[str, int | None] = {}  # amount text -> cents if canonical, else None (a stream has few amounts)


def canonical_cents(text: str) -> int | None:
    """Cents of a canonical amount text (``12.50``: the fast path's subset), else None; cached.

    A dictionary hit instead of msgspec running a Python regex per amount (about a third of decoding).
    """
    cents = _cents.get(text, _INVALID)
    if cents == _INVALID:
        cents = int(text.replace(".", "")) if _MONEY.fullmatch(text) else None
        if len(_cents) >= 100_000:
            _cents.clear()
        _cents[text] = cents
    return cents


class OrderPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """An ``order_placed`` payload as the rules see it (fields of the domain ``OrderPlaced``).

    The amount is kept as its text: canonical (fast path) or ``str(Decimal)`` (Pydantic path).
    ``amount`` gives back the exact Decimal Pydantic gives, and no Decimal is made on the hot path.
    ``gc=False`` (here and below): these structs hold only strings and ints, so they can be in no
    reference cycle, and the collector need not track the two made per event.
    """

    order_id: int
    amount_text: str = msgspec.field(name="amount")

    @property
    def amount(self) -> Decimal:
        return Decimal(self.amount_text)

    @property
    def cents(self) -> int:
        """``int(amount * 100)``: from the cache for canonical text, else through Decimal."""
        cents = _cents.get(self.amount_text)
        return int(self.amount * 100) if cents is None else cents


class TicketPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """A ``ticket_created`` payload as the rules see it (fields of the domain ``TicketCreated``)."""

    ticket_id: str
    priority: Literal["low", "medium", "high"]
    category: Literal["billing", "shipping", "product", "account", "returns"]


class RefundPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """A ``refund_issued`` payload as the rules see it (fields of the domain ``RefundIssued``)."""

    order_id: int
    amount_text: str = msgspec.field(name="amount")

    @property
    def amount(self) -> Decimal:
        return Decimal(self.amount_text)


Payload = OrderPayload | TicketPayload | RefundPayload


class Event(NamedTuple):
    """A validated customer event as the rules see it (``ts_ms``: event time in epoch milliseconds).

    A NamedTuple: one is built per event, and it is the cheapest immutable record.
    """

    event_id: str
    event_type: str
    customer_id: int
    ts_ms: int
    payload: Payload


# -- the fast path: msgspec on the canonical subset ----------------------------------------------
class _Wire(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="event_type", gc=False):
    event_type: ClassVar[str]
    event_id: Annotated[str, msgspec.Meta(min_length=1)]
    customer_id: int
    timestamp: str


class _WireOrder(_Wire, tag="order_placed", gc=False):
    event_type: ClassVar[str] = "order_placed"
    payload: OrderPayload


class _WireTicket(_Wire, tag="ticket_created", gc=False):
    event_type: ClassVar[str] = "ticket_created"
    payload: TicketPayload


class _WireRefund(_Wire, tag="refund_issued", gc=False):
    event_type: ClassVar[str] = "refund_issued"
    payload: RefundPayload


_FAST = msgspec.json.Decoder(_WireOrder | _WireTicket | _WireRefund)
_new_event = partial(tuple.__new__, Event)  # Event from a 5-tuple without a Python-level __new__
_IN_HOUR = {f":{m:02d}:{s:02d}Z": (m * 60 + s) * 1000 for m in range(60) for s in range(60)}  # ":MM:SSZ" -> ms
_HOUR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}")
_INVALID = -1  # cached for an hour Pydantic rejects (real hours are multiples of 3,600,000 ms); also "unknown"
_hours: dict[str, int] = {}  # "YYYY-MM-DDTHH" -> epoch ms as Pydantic reads it, or _INVALID


def _hour_ms(prefix: str) -> int:
    """Epoch ms of an hour as Pydantic reads it, cached (a stream has few distinct hours)."""
    ms = _INVALID
    if _HOUR.fullmatch(prefix):
        with suppress(ValidationError):
            ms = int(_DATETIME.validate_json(f'"{prefix}:00:00Z"').timestamp() * 1000)
    if len(_hours) >= 100_000:
        _hours.clear()
    _hours[prefix] = ms
    return ms


def reference_decode(raw: str | bytes) -> Event:
    """The Pydantic path, the reference the fast path must equal; raises :class:`InvalidEvent`."""
    env = parse_event(raw)
    p = env.payload
    payload: Payload
    if isinstance(p, TicketCreated):
        payload = TicketPayload(p.ticket_id, p.priority, p.category)
    elif isinstance(p, OrderPlaced):
        payload = OrderPayload(p.order_id, str(p.amount))
    else:
        payload = RefundPayload(p.order_id, str(p.amount))
    try:  # the rules and alerts work in UTC: a time that leaves datetime's years there is not usable
        env.timestamp.astimezone(UTC)
    except OverflowError:
        raise InvalidEvent(f"field 'timestamp': {env.timestamp.isoformat()} is outside years 1-9999 in UTC") from None
    return Event(env.event_id, env.event_type, env.customer_id, int(env.timestamp.timestamp() * 1000), payload)


def fast_decode(raw: str | bytes) -> Event | None:
    """The msgspec path: the event if it is in the canonical subset, else None (not a verdict)."""
    try:
        w = _FAST.decode(raw)
    except msgspec.DecodeError:  # includes msgspec.ValidationError
        return None
    ts = w.timestamp  # canonical is YYYY-MM-DDTHH:MM:SSZ: a cached hour plus the ms of ":MM:SSZ"
    in_hour = _IN_HOUR.get(ts[13:])
    if in_hour is None:
        return None
    hour = _hours.get(ts[:13])
    if hour is None:
        hour = _hour_ms(ts[:13])
    if hour == _INVALID:
        return None
    p = w.payload
    if type(p) is not TicketPayload:  # an amount: canonical, and > 0 for a refund
        cents = _cents.get(p.amount_text, _INVALID)  # the cache's hit without a call
        if cents == _INVALID:
            cents = canonical_cents(p.amount_text)
        if cents is None or (cents == 0 and type(p) is RefundPayload):
            return None
    return _new_event((w.event_id, w.event_type, w.customer_id, hour + in_hour, p))


def decode_event(raw: str | bytes) -> Event:
    """Validate one raw JSON event (fast path, else Pydantic); raises :class:`InvalidEvent`."""
    event = fast_decode(raw)
    return reference_decode(raw) if event is None else event
