"""SLAs: a pipeline promises its data within ``sla`` after the data interval ends.

A run's deadline is ``interval_end + sla``. Its status is ``pending`` until it succeeds (``met`` if by
the deadline) or the deadline passes unfinished or it finishes late (``missed``). Backfill runs carry
no SLA: re-processing history cannot be late.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def sla_deadline(interval_end: datetime, sla: timedelta | None, trigger: str) -> datetime | None:
    if sla is None or trigger == "backfill":
        return None
    return interval_end + sla


def sla_status(deadline: datetime | None, now: datetime, succeeded_at: datetime | None) -> str | None:
    """``met``/``missed``/``pending`` (None when the run has no SLA)."""
    if deadline is None:
        return None
    if succeeded_at is not None:
        return "met" if succeeded_at <= deadline else "missed"
    return "missed" if now > deadline else "pending"
