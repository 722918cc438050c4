"""The compiled core (``headwater_core``, built from ``native/``): the processor's hot path in Rust.

Python stays the reference: :mod:`.rules`, :mod:`.events` and :mod:`.state` define what the core
does, and tests run the same streams through both and compare every output and every state byte.
The core takes the canonical events (nearly all of a real stream) and hands every other record back
to the processor, which validates it with Pydantic and dead-letters or applies it.

``HEADWATER_STREAM_ENGINE`` chooses: ``auto`` (the default: the core when it is installed),
``native`` (the core or an error) or ``python``.
"""

from __future__ import annotations

import math
import os
from decimal import Decimal
from fractions import Fraction
from types import ModuleType
from typing import Any

from headwater.errors import ConfigError
from headwater.stream.config import RuleConfig
from headwater.stream.rules import AlertRecord, due_after, refund_alert, risk_alert, vip_alert
from headwater.stream.state import STATE_FORMAT

ENGINE_ENV = "HEADWATER_STREAM_ENGINE"
ENGINES = ("auto", "native", "python")
_I64 = (-(2**63), 2**63 - 1)

# The core's statuses (``Core.run`` / ``Core.apply``) and alert kinds, as numbered in native/src/lib.rs.
DONE, UNDECIDED, LATE = 0, 1, 2
PROCESSED, DUPLICATE = 0, 1
ORDER, TICKET, REFUND = 0, 1, 2
_AT_RISK, _VIP = 0, 2  # 1: a large refund


def engine() -> str:
    value = os.environ.get(ENGINE_ENV, "auto")
    if value not in ENGINES:
        raise ConfigError(f"{ENGINE_ENV} must be one of {', '.join(ENGINES)} (got {value!r})")
    return value


def load() -> ModuleType | None:
    """The compiled module if the engine setting allows it and it is installed (and matches), else None."""
    choice = engine()
    if choice == "python":
        return None
    try:
        import headwater_core
    except ImportError as exc:
        if choice == "native":
            raise ConfigError(f"{ENGINE_ENV}=native, but the compiled core is not installed "
                              f"(pip install ./native): {exc}") from exc
        return None
    if STATE_FORMAT[0] != headwater_core.STATE_FORMAT:
        raise ConfigError(f"the installed compiled core writes state format {headwater_core.STATE_FORMAT}, "
                          f"this Headwater format {STATE_FORMAT[0]}: rebuild it (pip install ./native)")
    return headwater_core


def _i64(value: int) -> int:
    return min(max(value, _I64[0]), _I64[1])


def new_core(module: ModuleType, cfg: RuleConfig) -> Any:
    """A ``Core`` with the rules' thresholds. A refund's cents are above the threshold exactly when they
    exceed ``floor(threshold * 100)``, computed exactly (a Decimal product would round at the context's
    28 digits): the Decimal comparison of the rules, for two-decimal amounts."""
    return module.Core(cfg.risk_window_ms, cfg.risk_ticket_count, cfg.risk_high_count, cfg.vip_window_ms,
                       _i64(cfg.vip_spend_cents), cfg.lateness_ms,
                       _i64(math.floor(Fraction(cfg.large_refund_threshold) * 100)), due_after(cfg))


def alert_record(fact: tuple, cfg: RuleConfig) -> AlertRecord:
    """The alert for one of the core's facts ``(offset, kind, customer, trigger id, ts_ms, count, high,
    order_id, amount)``, worded by :mod:`.rules`."""
    _, kind, customer_id, trigger, ts_ms, count, high, order_id, amount = fact
    if kind == _AT_RISK:
        return risk_alert(customer_id, trigger, ts_ms, count, high, cfg)
    if kind == _VIP:
        return vip_alert(customer_id, trigger, ts_ms, cfg)
    return refund_alert(customer_id, trigger, ts_ms, Decimal(amount), order_id, cfg)  # a large refund
