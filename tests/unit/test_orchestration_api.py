"""The public surface of headwater.orchestration is pinned: changing it is a deliberate act."""

from __future__ import annotations

import headwater.orchestration as orch

PUBLIC = {
    "BackfillReport",
    "Clock",
    "LandingFlagSensor",
    "ManualClock",
    "NotifyDownstream",
    "OffsetClock",
    "Pipeline",
    "RunSensor",
    "RunStore",
    "Scheduler",
    "SchedulerReport",
    "Sensor",
    "SensorTimeout",
    "SkipTask",
    "SqlSensor",
    "StepCounts",
    "SystemClock",
    "Task",
    "TaskContext",
    "TaskOptions",
    "TaskTimeout",
    "backfill",
    "get_pipeline",
    "load_pipelines",
    "run_id_for",
    "run_pipeline_range",
}


def test_public_api_is_pinned() -> None:
    assert set(orch.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(orch, name) is not None
