"""What a running task receives: its logical date and data interval, settings, stores, log, metrics."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from headwater.config import Settings
from headwater.errors import RetryableError
from headwater.orchestration.run_store import RunStore, StepCounts


class TaskTimeout(RetryableError):
    """A try ran longer than its ``execution_timeout`` (transient: the next try may be faster)."""


@dataclass
class TaskContext:
    """Everything a task may depend on. Use ``logical_date``/``day``, never the wall clock, for data."""

    pipeline_id: str
    run_id: str
    task_id: str
    try_number: int
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    settings: Settings
    store: RunStore
    log: logging.LoggerAdapter[logging.Logger]
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def day(self) -> date:
        """The logical date as a date (daily pipelines)."""
        return self.logical_date.date()

    @property
    def ds(self) -> str:
        return self.logical_date.strftime("%Y-%m-%d")

    def lake(self) -> Any:
        """The lake (raw / staging / quarantine Parquet zones) under these settings."""
        from headwater.storage.lake import Lake

        return Lake(self.settings.lake_dir)

    def warehouse(self, read_only: bool = False) -> Any:
        """A warehouse handle; close it when done."""
        from headwater.storage.warehouse import DuckDBWarehouse

        return DuckDBWarehouse(self.settings.warehouse, read_only=read_only)

    def record(self, counts: StepCounts) -> None:
        """Account a step's rows in the run store (idempotent per run and step)."""
        self.store.record_step(self.run_id, counts)
        self.metrics[f"{counts.step}.rows_out"] = counts.rows_out

    def check_cancelled(self) -> None:
        """Long tasks call this between chunks so a timed-out try stops early."""
        if self.cancelled.is_set():
            raise TaskTimeout(f"task {self.task_id!r} cancelled after its execution timeout")
