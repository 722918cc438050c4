"""Export a pipeline to an Airflow DAG file: the same definition, run by Airflow instead.

The generated file holds no logic of its own: each Airflow task calls
:func:`headwater.orchestration.airflow_bridge.run_task` (or ``poke`` for sensors), which loads our
pipeline by id and runs the very same task object with a context built from Airflow's. Schedule,
start date, catchup, max active runs, tags, retries with exponential backoff, execution timeouts,
trigger rules, ``depends_on_past``, sensor poke interval / timeout (reschedule mode) and the
dependencies map one to one::

    headwater airflow-export customer_analytics --out dags/customer_analytics.py
"""

from __future__ import annotations

from datetime import timedelta

from headwater.orchestration.pipeline import Pipeline
from headwater.orchestration.sensors import Sensor


def _td(value: timedelta | None) -> str:
    return "None" if value is None else f"timedelta(seconds={value.total_seconds()!r})"


def _py_id(task_id: str) -> str:
    return "t_" + "".join(c if c.isalnum() else "_" for c in task_id)


def render_airflow_dag(pipeline: Pipeline, pipeline_files: tuple[str, ...] = ()) -> str:
    """Python source of an Airflow 3 DAG file equivalent to ``pipeline``."""
    p = pipeline.validate()
    schedule = (
        "None" if p.schedule is None
        else _td(p.schedule_spec) if isinstance(p.schedule_spec, timedelta)
        else repr(p.schedule.expression)
    )
    d = p.default_options
    lines = [
        f'"""Airflow DAG generated from the Headwater pipeline {p.pipeline_id!r}; do not edit, re-export."""',
        "",
        "from datetime import datetime, timedelta",
        "",
        "from airflow.providers.standard.operators.python import PythonOperator",
        "from airflow.providers.standard.sensors.python import PythonSensor",
        "from airflow.sdk import DAG",
        "",
        "from headwater.orchestration.airflow_bridge import poke, run_task",
        "",
        f"PIPELINE = {p.pipeline_id!r}",
        f"PIPELINE_FILES = {list(pipeline_files)!r}",
        "",
        "with DAG(",
        "    dag_id=PIPELINE,",
        f"    schedule={schedule},",
        f"    start_date=datetime.fromisoformat({p.start_date.isoformat()!r}),",
        f"    end_date={'None' if p.end_date is None else f'datetime.fromisoformat({p.end_date.isoformat()!r})'},",
        f"    catchup={p.catchup!r},",
        f"    max_active_runs={p.max_active_runs!r},",
        f"    tags={list(p.tags)!r},",
        f"    description={p.description!r},",
        "    default_args={",
        f"        'retries': {d.retries!r},",
        f"        'retry_delay': {_td(d.retry_delay)},",
        f"        'retry_exponential_backoff': {d.exponential_backoff!r},",
        f"        'max_retry_delay': {_td(d.max_retry_delay)},",
        f"        'execution_timeout': {_td(d.execution_timeout)},",
        "    },",
        ") as dag:",
    ]
    for tid in p.topological_order():
        task = p.tasks[tid]
        o = task.options()
        common = (
            f"task_id={tid!r}, retries={o.retries!r}, retry_delay={_td(o.retry_delay)}, "
            f"retry_exponential_backoff={o.exponential_backoff!r}, max_retry_delay={_td(o.max_retry_delay)}, "
            f"execution_timeout={_td(o.execution_timeout)}, trigger_rule={o.trigger_rule!r}, "
            f"depends_on_past={o.depends_on_past!r}, op_kwargs={{'pipeline': PIPELINE, 'task': {tid!r}, "
            f"'files': PIPELINE_FILES}}"
        )
        if isinstance(task, Sensor):
            lines.append(
                f"    {_py_id(tid)} = PythonSensor({common}, python_callable=poke, mode='reschedule', "
                f"poke_interval={task.poke_interval.total_seconds()!r}, timeout={task.timeout.total_seconds()!r})"
            )
        else:
            lines.append(f"    {_py_id(tid)} = PythonOperator({common}, python_callable=run_task)")
    for tid in p.topological_order():
        for down in sorted(p.tasks[tid].downstream_ids):
            lines.append(f"    {_py_id(tid)} >> {_py_id(down)}")
    return "\n".join(lines) + "\n"
