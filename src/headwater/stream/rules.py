"""The alert rules, in event time: pure functions of (event, customer state, thresholds).

They never read the wall clock: a replay of last month's events gives last month's alerts.

**customer_at_risk** — the at-risk *condition* holds at a ticket when, counting the customer's
tickets in the 30 days up to and including it (timestamps in ``(t - 30d, t]``, ties ordered by
event id), there are >= 3 tickets or >= 2 high-priority ones. An *episode* is a maximal run of
consecutive tickets (in event-time order) at which the condition holds. Exactly one alert is raised
per episode, on its first ticket. **Re-arm rule**: the episode ends at the first later ticket at which
the condition no longer holds (e.g. after a quiet spell long enough for old tickets to leave the
window); the next ticket at which it holds again opens a new episode and alerts again. So a customer
who keeps opening tickets gets one alert, not one per ticket.

Out-of-order tickets (within the allowed lateness) are inserted at their event-time place and the
condition is recomputed for the tickets after them, so the alerts equal those of an in-order run
as long as the late ticket arrives before its episode alerted. Alerts are raised on the information
at hand (milliseconds, not after the lateness bound) and never retracted or moved: if the episode
already alerted, the existing alert stands (no second one); if a late ticket merges two episodes
that both alerted, both alerts stand.

**large_refund** — a refund whose amount is strictly above the threshold (setting
``large_refund_threshold``), one alert per refund event.

**vip_escalation** — a high-priority ticket from a customer whose orders in the 90 days up to the
ticket (``(t - 90d, t]``) sum to >= the VIP threshold: route it to a senior agent now. An order
that arrives late re-checks the high-priority tickets after it, so the result does not depend on
arrival order either.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from headwater.domain.records import Alert
from headwater.stream.config import RuleConfig
from headwater.stream.events import Event, OrderPayload, RefundPayload, TicketPayload
from headwater.stream.state import COND, EID, HIGH, RISK, TS, VIP, CustomerState

AT_RISK = "customer_at_risk"
LARGE_REFUND = "large_refund"
VIP_ESCALATION = "vip_escalation"
ALERT_TYPES = (AT_RISK, LARGE_REFUND, VIP_ESCALATION)
NEVER = 2**63  # a due time no watermark reaches

ACTIONS = {
    AT_RISK: "Call the customer within 24 hours: review their open tickets and offer a goodwill gesture.",
    LARGE_REFUND: "Review the refund and contact the customer to understand what went wrong before they churn.",
    VIP_ESCALATION: "Route the ticket to a senior agent now and call back within 1 hour: high-value customer.",
}


# The stream's alert: the domain ``Alert``'s fields, built from its definition so the two cannot drift,
# as a msgspec struct (building and serialising a Pydantic model cost ~20 µs per alert, this ~3 µs).
# ``encode_alert(a)`` is byte-identical to ``Alert(...).model_dump_json()`` (a test pins it).
AlertRecord = msgspec.defstruct(
    "AlertRecord", [(n, f.annotation) if f.is_required() else (n, f.annotation, f.default)
                    for n, f in Alert.model_fields.items()], frozen=True, module=__name__)
encode_alert = msgspec.json.Encoder().encode

Handler = Callable[[Event, CustomerState, RuleConfig], list[AlertRecord]]


def alert_id(alert_type: str, customer_id: int, trigger_event_id: str) -> str:
    """Deterministic id: the same trigger always yields the same alert, across crashes and replays."""
    digest = hashlib.sha256(f"{alert_type}|{customer_id}|{trigger_event_id}".encode()).hexdigest()
    return f"{alert_type[:4]}-{digest[:20]}"


def _alert(alert_type: str, customer_id: int, trigger_id: str, ts_ms: int, reason: str) -> AlertRecord:
    return AlertRecord(alert_id(alert_type, customer_id, trigger_id), alert_type, customer_id, reason,
                       datetime.fromtimestamp(ts_ms / 1000, UTC), ACTIONS[alert_type])


# The alerts' wording, one definition for these rules and for the compiled core (which returns facts).
def risk_alert(customer_id: int, trigger_id: str, ts_ms: int, count: int, high: int, cfg: RuleConfig) -> AlertRecord:
    reason = (f"{count} support tickets ({high} high priority) within {cfg.risk_window_days} days "
              f"(thresholds: {cfg.risk_ticket_count} tickets or {cfg.risk_high_count} high priority)")
    return _alert(AT_RISK, customer_id, trigger_id, ts_ms, reason)


def vip_alert(customer_id: int, trigger_id: str, ts_ms: int, cfg: RuleConfig) -> AlertRecord:
    reason = (f"high-priority ticket from a customer whose orders in the last {cfg.vip_window_days} days "
              f"reach the VIP threshold of {cfg.vip_spend_threshold}")
    return _alert(VIP_ESCALATION, customer_id, trigger_id, ts_ms, reason)


def refund_alert(customer_id: int, trigger_id: str, ts_ms: int, amount: Decimal, order_id: int,
                 cfg: RuleConfig) -> AlertRecord:
    reason = f"refund of {amount} on order {order_id} exceeds {cfg.large_refund_threshold}"
    return _alert(LARGE_REFUND, customer_id, trigger_id, ts_ms, reason)


def _window_counts(tickets: list[list], i: int, window_ms: int) -> tuple[int, int]:
    """(tickets, high-priority tickets) among tickets[..i] within (ts_i - window, ts_i]."""
    lo = tickets[i][TS] - window_ms
    count = high = 0
    j = i
    while j >= 0 and tickets[j][TS] > lo:
        count += 1
        high += tickets[j][HIGH]
        j -= 1
    return count, high


def _holds(tickets: list[list], i: int, cfg: RuleConfig) -> bool:
    """Whether the at-risk condition holds at tickets[i]; stops as soon as it is decided (O(threshold))."""
    lo = tickets[i][TS] - cfg.risk_window_ms
    need, need_high = cfg.risk_ticket_count, cfg.risk_high_count
    count = high = 0
    j = i
    while j >= 0 and tickets[j][TS] > lo:
        count += 1
        high += tickets[j][HIGH]
        if count >= need or high >= need_high:
            return True
        j -= 1
    return False


def on_ticket(ev: Event, st: CustomerState, cfg: RuleConfig) -> list[AlertRecord]:
    """Insert the ticket in event-time order, update the at-risk episodes, check VIP escalation."""
    p = ev.payload
    assert isinstance(p, TicketPayload)
    high = p.priority == "high"
    tickets = st.tickets
    ts, eid = ev.ts_ms, ev.event_id
    k = len(tickets)
    if k and (tickets[-1][TS] > ts or (tickets[-1][TS] == ts and tickets[-1][EID] > eid)):  # out of order
        k = bisect_right([(t[TS], t[EID]) for t in tickets], (ts, eid))
    ticket = [ts, eid, high, False, False, False]
    if k == len(tickets):  # in order, the common case: only the new ticket's condition is new
        tickets.append(ticket)
        ticket[COND] = _holds(tickets, k, cfg)
        # O(1) thanks to the invariant "after every event, every episode has alerted": a ticket that
        # continues an episode needs nothing; only one that opens an episode can alert
        opens = ticket[COND] and not (tickets[k - 1][COND] if k else st.tail_cond)
        alerts = _episode_alerts(ev.customer_id, st, k, k, cfg) if opens else []
    else:
        tickets.insert(k, ticket)
        end = ts + cfg.risk_window_ms
        last = k
        for i in range(k, len(tickets)):
            if tickets[i][TS] >= end:
                break
            tickets[i][COND] = _holds(tickets, i, cfg)
            last = i
        alerts = _episode_alerts(ev.customer_id, st, k, last, cfg)
    if high:
        alert = _vip_check(ev.customer_id, st, tickets[k], cfg)
        if alert:
            alerts.append(alert)
    return alerts


def _episode_alerts(customer_id: int, st: CustomerState, first: int, last: int, cfg: RuleConfig) -> list[AlertRecord]:
    """Raise one alert for each episode overlapping tickets[first..last] that has none yet."""
    tickets = st.tickets
    alerts: list[AlertRecord] = []
    i = first
    while i <= last:
        if not tickets[i][COND]:
            i += 1
            continue
        start = i
        while start > 0 and tickets[start - 1][COND]:
            start -= 1
        end = i
        while end + 1 < len(tickets) and tickets[end + 1][COND]:
            end += 1
        alerted = any(t[RISK] for t in tickets[start:end + 1]) or (start == 0 and st.tail_cond)
        if not alerted:
            trigger = tickets[start]
            trigger[RISK] = True
            count, high = _window_counts(tickets, start, cfg.risk_window_ms)
            alerts.append(risk_alert(customer_id, trigger[EID], trigger[TS], count, high, cfg))
        i = end + 1
    return alerts


def _spend_cents(st: CustomerState, ts_ms: int, window_ms: int, enough: int) -> int:
    """Order total in (ts - window, ts], summed newest first and stopped once it reaches ``enough``."""
    ots, cents = st.orders_ts, st.orders_cents
    lo = ts_ms - window_ms
    i = len(ots) - 1
    while i >= 0 and ots[i] > ts_ms:
        i -= 1
    total = 0
    while i >= 0 and ots[i] > lo:
        total += cents[i]
        if total >= enough:
            break
        i -= 1
    return total


def _vip_check(customer_id: int, st: CustomerState, ticket: list, cfg: RuleConfig) -> AlertRecord | None:
    if ticket[VIP] or not ticket[HIGH]:
        return None
    threshold = cfg.vip_spend_cents
    if _spend_cents(st, ticket[TS], cfg.vip_window_ms, threshold) < threshold:
        return None
    ticket[VIP] = True
    return vip_alert(customer_id, ticket[EID], ticket[TS], cfg)


def on_order(ev: Event, st: CustomerState, cfg: RuleConfig) -> list[AlertRecord]:
    """Remember the order for the VIP look-back; a late order re-checks high tickets after it."""
    p = ev.payload
    assert isinstance(p, OrderPayload)
    ts, amount = ev.ts_ms, p.cents
    ots, cents = st.orders_ts, st.orders_cents
    if ots and ots[-1] > ts:
        k = bisect_right(ots, ts)
        ots.insert(k, ts)
        cents.insert(k, amount)
    else:
        ots.append(ts)
        cents.append(amount)
    tickets = st.tickets
    if not tickets or tickets[-1][TS] < ts:  # the common, in-order case: no ticket to re-check
        return []
    alerts: list[AlertRecord] = []
    i = len(tickets) - 1
    while i >= 0 and tickets[i][TS] >= ev.ts_ms:
        if tickets[i][TS] < ev.ts_ms + cfg.vip_window_ms:
            alert = _vip_check(ev.customer_id, st, tickets[i], cfg)
            if alert:
                alerts.append(alert)
        i -= 1
    alerts.reverse()
    return alerts


def large_refund(ev: Event, cfg: RuleConfig) -> list[AlertRecord]:
    """Alert on a refund strictly above the threshold: needs no state (the compiled core's glue calls it too)."""
    p = ev.payload
    assert isinstance(p, RefundPayload)
    if p.amount <= cfg.large_refund_threshold:
        return []
    return [refund_alert(ev.customer_id, ev.event_id, ev.ts_ms, p.amount, p.order_id, cfg)]


def on_refund(ev: Event, st: CustomerState, cfg: RuleConfig) -> list[AlertRecord]:
    """The refund handler: :func:`large_refund`."""
    return large_refund(ev, cfg)


DEFAULT_HANDLERS: dict[str, Handler] = {
    "ticket_created": on_ticket,
    "order_placed": on_order,
    "refund_issued": on_refund,
}


def evict(st: CustomerState, watermark_ms: int, cfg: RuleConfig) -> None:
    """Forget the tickets and orders no accepted event (ts >= watermark - lateness) can look back to.

    Valid at any watermark up to the partition's: it only drops what is out of every window. Sets
    ``st.due_ms`` to the exact watermark at which the oldest ticket or order falls due, so the
    processor calls it only then. Event ids are :func:`forget_seen`'s.
    """
    floor = watermark_ms - cfg.lateness_ms
    tickets = st.tickets
    if tickets and tickets[0][TS] <= floor - cfg.risk_window_ms:
        cut = floor - cfg.risk_window_ms
        n = 0
        while n < len(tickets) and tickets[n][TS] <= cut:
            t = tickets[n]
            if t[COND]:
                st.tail_alerted = (st.tail_alerted and st.tail_cond) or bool(t[RISK])
                st.tail_cond = True
            else:
                st.tail_cond = st.tail_alerted = False
            n += 1
        del tickets[:n]
    ots = st.orders_ts
    if ots and ots[0] <= floor - cfg.vip_window_ms:
        n = bisect_right(ots, floor - cfg.vip_window_ms)  # sorted: the first n are due
        del ots[:n]
        del st.orders_cents[:n]
    due = NEVER
    if tickets:
        due = tickets[0][TS] + cfg.risk_window_ms + cfg.lateness_ms
    if ots:
        due = min(due, ots[0] + cfg.vip_window_ms + cfg.lateness_ms)
    st.due_ms = due


def forget_seen(st: CustomerState, watermark_ms: int, cfg: RuleConfig) -> None:
    """Drop the event ids older than the lateness window: an event that old is late, never a duplicate.

    The processor counts an id as a duplicate only while it is inside the window, so when this
    runs changes no result; it runs on every changed customer before a checkpoint, at the
    watermark of the customer's latest event, so the stored state depends on no batch boundary.
    """
    seen = st.seen
    if seen:  # one pass: nearly every changed customer has an id older than the window
        floor = watermark_ms - cfg.lateness_ms
        st.seen = {eid: ts for eid, ts in seen.items() if ts >= floor}


def due_after(cfg: RuleConfig) -> int:
    """How long after an item's event time eviction may first drop it (``due_ms`` lower bounds)."""
    return min(cfg.risk_window_ms, cfg.vip_window_ms) + cfg.lateness_ms


def expiry_horizon_ms(cfg: RuleConfig) -> int:
    """A customer's whole state is evictable once the watermark passes ``last_ms`` + this horizon.

    Conservative: every item is at most as recent as the customer's last event, and none is looked
    back to after the longest window plus the allowed lateness.
    """
    return max(cfg.risk_window_ms, cfg.vip_window_ms) + cfg.lateness_ms
