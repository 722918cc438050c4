"""Typed, frozen settings of the stream processor; paths derive from ``Settings.home``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from pathlib import Path

from headwater.config import Settings
from headwater.errors import ConfigError

DAY_MS = 86_400_000
MAX_WINDOW_DAYS = 36_500  # bounds that keep every event-time sum far inside 64 bits (the compiled core's integers)
MAX_LATENESS_S = 366 * 86_400


@dataclass(frozen=True)
class RuleConfig:
    """Thresholds of the alert rules (see :mod:`headwater.stream.rules` for their semantics).

    The ``*_ms`` values are cached properties: the rules read them on every event.
    """

    risk_window_days: int = 30
    risk_ticket_count: int = 3
    risk_high_count: int = 2
    large_refund_threshold: Decimal = Decimal("500.00")
    vip_window_days: int = 90
    vip_spend_threshold: Decimal = Decimal("1000.00")
    allowed_lateness_s: int = 3600

    def __post_init__(self) -> None:
        if self.risk_ticket_count < 2 or self.risk_high_count < 2:
            raise ConfigError("at-risk thresholds must be >= 2 tickets (a single ticket is not an episode)")
        if not (1 <= self.risk_window_days <= MAX_WINDOW_DAYS and 1 <= self.vip_window_days <= MAX_WINDOW_DAYS):
            raise ConfigError(f"rule windows must be 1 to {MAX_WINDOW_DAYS} days")
        if not 0 <= self.allowed_lateness_s <= MAX_LATENESS_S:
            raise ConfigError(f"allowed lateness must be 0 to {MAX_LATENESS_S} s (a year)")
        if not (self.large_refund_threshold.is_finite() and self.vip_spend_threshold.is_finite()):
            raise ConfigError("the refund and VIP thresholds must be finite amounts")

    @cached_property
    def risk_window_ms(self) -> int:
        return self.risk_window_days * DAY_MS

    @cached_property
    def vip_window_ms(self) -> int:
        return self.vip_window_days * DAY_MS

    @cached_property
    def lateness_ms(self) -> int:
        return self.allowed_lateness_s * 1000

    @cached_property
    def vip_spend_cents(self) -> int:
        """Orders of >= this many cents reach the threshold: ``ceil(threshold * 100)``, exactly."""
        return math.ceil(Fraction(self.vip_spend_threshold) * 100)


@dataclass(frozen=True)
class StreamConfig:
    """Processor knobs: checkpoint every ``batch_size`` events or ``checkpoint_interval_s``, whichever first."""

    rules: RuleConfig = RuleConfig()
    group: str = "headwater-stream"
    batch_size: int = 5000
    checkpoint_interval_s: float = 1.0
    max_attempts: int = 5
    retry_base_delay_s: float = 0.05
    partitions: int = 4
    # Python's garbage-collector thresholds while ``Processor.run`` runs (restored after it); None
    # leaves them alone. The default (700, 10, 10) collects generation 0 every 700 net container
    # allocations and, through generation 1, scans the whole heap (the customers' ticket lists) often:
    # ~13% of the CPU per event and full-collection pauses of 20-60 ms. Almost all of the processor's
    # garbage is freed by reference counting, so collecting rarely costs little memory.
    gc_thresholds: tuple[int, int, int] | None = (50_000, 20, 100)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.checkpoint_interval_s <= 0 or self.max_attempts < 1:
            raise ConfigError("batch_size, checkpoint_interval_s and max_attempts must be positive")
        if self.gc_thresholds is not None and (len(self.gc_thresholds) != 3 or min(self.gc_thresholds) < 1):
            raise ConfigError("gc_thresholds must be three positive integers (or None)")


def log_path(settings: Settings) -> Path:
    """Where the embedded event log (and the processor's state) lives."""
    return settings.home / "stream" / "log.sqlite"


def stream_config(settings: Settings, **overrides: object) -> StreamConfig:
    """The processor configuration for ``settings`` (the large-refund threshold comes from there)."""
    threshold = Decimal(str(settings.large_refund_threshold)).quantize(Decimal("0.01"))
    rules = RuleConfig(large_refund_threshold=threshold)
    return StreamConfig(rules=rules, **overrides)  # type: ignore[arg-type]
