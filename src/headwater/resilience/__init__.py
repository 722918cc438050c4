"""Resilience building blocks shared by the stream and batch sides: retries and dead letters."""

from headwater.resilience.dlq import DeadLetter, DeadLetterQueue
from headwater.resilience.retry import ExponentialBackoff, Retrier, RetriesExhausted

__all__ = ["DeadLetter", "DeadLetterQueue", "ExponentialBackoff", "RetriesExhausted", "Retrier"]
