"""Retry with exponential backoff: transient failures are retried, permanent ones are not.

Whether an error is transient is the error's own declaration (:func:`headwater.errors.is_retryable`),
never a guess from its message. Sleeping goes through an injected function, so tests never wait.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from headwater.errors import HeadwaterError, is_retryable

T = TypeVar("T")


class RetriesExhausted(HeadwaterError):
    """A retryable failure persisted through every allowed attempt; ``__cause__`` is the last one."""


class Retrier(Protocol):
    """Runs a call, retrying transient failures; returns (result, attempts used)."""

    def call(self, fn: Callable[[], T]) -> tuple[T, int]: ...


@dataclass
class ExponentialBackoff:
    """``max_attempts`` tries, waiting base * multiplier**(n-1) (capped, with +-jitter) between them.

    A permanent error is re-raised at once with ``attempts`` recorded on it; a transient one that
    outlives the attempts becomes :class:`RetriesExhausted`.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.05
    multiplier: float = 2.0
    max_delay_s: float = 5.0
    jitter: float = 0.1
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def delay(self, attempt: int) -> float:
        """Wait after failed attempt number ``attempt`` (1-based)."""
        raw = min(self.max_delay_s, self.base_delay_s * self.multiplier ** (attempt - 1))
        return max(0.0, raw * (1 + self.jitter * (2 * self.rng.random() - 1)))

    def call(self, fn: Callable[[], T]) -> tuple[T, int]:
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn(), attempt
            except Exception as exc:
                if not is_retryable(exc):
                    exc.attempts = attempt  # type: ignore[attr-defined]
                    raise
                if attempt >= self.max_attempts:
                    raise RetriesExhausted(
                        f"gave up after {attempt} attempts: {exc}", attempts=attempt,
                        error_type=type(exc).__name__) from exc
                self.sleep(self.delay(attempt))
