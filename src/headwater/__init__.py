"""Headwater: fresh, trustworthy customer analytics from raw orders, tickets and events.

The public API is re-exported here and pinned by a test. Names are resolved lazily (PEP 562), so
``import headwater`` stays cheap and a command that needs only settings never imports Arrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from headwater.config import Settings, load_settings
from headwater.errors import (
    ConfigError,
    DataError,
    HeadwaterError,
    RetryableError,
    SchemaChangeError,
    SourceError,
    SourceNotReady,
    StorageError,
)

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    # orchestration: declare pipelines, run them
    "Pipeline": "headwater.orchestration",
    "Task": "headwater.orchestration",
    "TaskOptions": "headwater.orchestration",
    "TaskContext": "headwater.orchestration",
    "Sensor": "headwater.orchestration",
    "LandingFlagSensor": "headwater.orchestration",
    "SqlSensor": "headwater.orchestration",
    "RunSensor": "headwater.orchestration",
    "Scheduler": "headwater.orchestration",
    "backfill": "headwater.orchestration",
    "RunStore": "headwater.orchestration.run_store",
    "StepCounts": "headwater.orchestration.run_store",
    # the batch pipeline and its storage
    "run_day": "headwater.pipelines.daily",
    "run_range": "headwater.pipelines.daily",
    "Lake": "headwater.storage.lake",
    "DuckDBWarehouse": "headwater.storage.warehouse",
    # synthetic worlds
    "WorldSpec": "headwater.synth",
    "generate_world": "headwater.synth",
}

__all__ = [
    "ConfigError",
    "DataError",
    "HeadwaterError",
    "RetryableError",
    "SchemaChangeError",
    "Settings",
    "SourceError",
    "SourceNotReady",
    "StorageError",
    "__version__",
    "load_settings",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from headwater.orchestration import (  # noqa: F401
        LandingFlagSensor,
        Pipeline,
        RunSensor,
        Scheduler,
        Sensor,
        SqlSensor,
        Task,
        TaskContext,
        TaskOptions,
        backfill,
    )
    from headwater.orchestration.run_store import RunStore, StepCounts  # noqa: F401
    from headwater.pipelines.daily import run_day, run_range  # noqa: F401
    from headwater.storage.lake import Lake  # noqa: F401
    from headwater.storage.warehouse import DuckDBWarehouse  # noqa: F401
    from headwater.synth import WorldSpec, generate_world  # noqa: F401
