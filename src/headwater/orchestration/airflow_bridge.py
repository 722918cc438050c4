"""Runs a Headwater task inside Airflow (used by DAG files from :mod:`airflow_export`).

Airflow owns scheduling, retries and sensor rescheduling there; this module only turns Airflow's
context into a :class:`TaskContext` and runs one try. Our permanent errors become Airflow's
``AirflowFailException`` so they are not retried, exactly as in the embedded scheduler. Airflow is
imported lazily: the core never depends on it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from headwater.config import load_settings
from headwater.errors import is_retryable
from headwater.orchestration.context import TaskContext
from headwater.orchestration.executor import _record_result
from headwater.orchestration.registry import get_pipeline
from headwater.orchestration.run_store import RunStore
from headwater.orchestration.sensors import PokeResult


def _context(pipeline: str, task: str, files: list[str], af: dict[str, Any], store: RunStore) -> TaskContext:
    start: datetime = af.get("data_interval_start") or af["logical_date"]
    end: datetime = af.get("data_interval_end") or start
    ti = af.get("ti")
    return TaskContext(
        pipeline_id=pipeline,
        run_id=str(af.get("run_id")),
        task_id=task,
        try_number=int(getattr(ti, "try_number", 1) or 1),
        logical_date=af.get("logical_date") or start,
        data_interval_start=start,
        data_interval_end=end,
        settings=load_settings(),
        store=store,
        log=logging.LoggerAdapter(logging.getLogger(f"headwater.task.{pipeline}.{task}"), {}),
        params=dict(af.get("params") or {}),
    )


def _ensure_run(store: RunStore, ctx: TaskContext) -> None:
    """A run row for Airflow's run id (row counts reference it); Airflow owns its state, so ours
    says ``external``."""
    from headwater.orchestration.state import iso

    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO runs (run_id, pipeline_id, logical_date, interval_start, interval_end, state, trigger, "
            "started_at) VALUES (?, ?, ?, ?, ?, 'external', 'airflow', ?) ON CONFLICT (run_id) DO NOTHING",
            (
                ctx.run_id, ctx.pipeline_id, iso(ctx.logical_date), iso(ctx.data_interval_start),
                iso(ctx.data_interval_end), iso(ctx.data_interval_start),
            ),
        )


def _call(pipeline: str, task: str, files: list[str], af: dict[str, Any]) -> Any:
    p = get_pipeline(pipeline, [Path(f) for f in files])
    settings = load_settings()
    store = RunStore(settings.run_store)
    try:
        ctx = _context(pipeline, task, files, af, store)
        _ensure_run(store, ctx)
        try:
            result = p.tasks[task].execute(ctx)
        except Exception as exc:
            if not is_retryable(exc):
                from airflow.exceptions import AirflowFailException

                raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
            raise
        _record_result(ctx, result)
        return result
    finally:
        store.close()


def run_task(pipeline: str, task: str, files: list[str], **context: Any) -> Any:
    """PythonOperator callable: one try of the task; returns JSON-able metrics only."""
    result = _call(pipeline, task, files, context)
    return result if isinstance(result, dict) else None


def poke(pipeline: str, task: str, files: list[str], **context: Any) -> bool:
    """PythonSensor callable: one poke of the sensor."""
    result = _call(pipeline, task, files, context)
    return bool(result.ready) if isinstance(result, PokeResult) else bool(result)
