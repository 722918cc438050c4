"""Orchestration: pipelines as DAGs, the embedded scheduler, sensors, backfill and the run store.

The public surface is re-exported here; :mod:`headwater.orchestration.run_store` stays importable on
its own for the batch code.
"""

import logging

from headwater.orchestration.backfill import BackfillReport, backfill, run_pipeline_range
from headwater.orchestration.clock import Clock, ManualClock, OffsetClock, SystemClock
from headwater.orchestration.context import TaskContext, TaskTimeout
from headwater.orchestration.notify import NotifyDownstream
from headwater.orchestration.pipeline import Pipeline, SkipTask, Task, TaskOptions
from headwater.orchestration.registry import get_pipeline, load_pipelines
from headwater.orchestration.run_store import RunStore, StepCounts
from headwater.orchestration.scheduler import Scheduler, SchedulerReport, run_id_for
from headwater.orchestration.sensors import LandingFlagSensor, RunSensor, Sensor, SensorTimeout, SqlSensor

for _name in ("headwater.scheduler", "headwater.task", "headwater.alerts", "headwater.orchestration"):
    logging.getLogger(_name).addHandler(logging.NullHandler())  # a library logs; the app decides where

__all__ = [
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
]
