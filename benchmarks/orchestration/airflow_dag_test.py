"""The same no-op DAGs run by Airflow's ``dag.test()``, for comparison with bench_overhead.py.

Needs its own virtualenv with Airflow (it is not a Headwater dependency)::

    python3 -m venv /tmp/airflow-venv && /tmp/airflow-venv/bin/pip install "apache-airflow==3.*"
    AIRFLOW_HOME=/tmp/afhome /tmp/airflow-venv/bin/airflow db migrate
    mkdir -p /tmp/afhome/dags && cp benchmarks/orchestration/airflow_dag_test.py /tmp/afhome/dags/
    AIRFLOW_HOME=/tmp/afhome /tmp/airflow-venv/bin/python /tmp/afhome/dags/airflow_dag_test.py

(Airflow 3's ``dag.test()`` only runs DAGs its DAG processor can find in a bundle, hence the copy
into the dags folder; the DAGs are module-level values for the same reason.)

``dag.test()`` runs one DAG run in-process against Airflow's metadata DB (SQLite here), the
closest Airflow equivalent of our ``scheduler --once`` for one interval.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def noop() -> None:
    return None


def wide_dag(width: int = 500) -> DAG:
    with DAG("bench_wide", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC), catchup=False) as dag:
        start = PythonOperator(task_id="start", python_callable=noop)
        end = PythonOperator(task_id="end", python_callable=noop)
        middle = [PythonOperator(task_id=f"t{i:03d}", python_callable=noop) for i in range(width)]
        start >> middle
        middle >> end
    return dag


def five_task_dag() -> DAG:
    with DAG("bench_five", schedule="@daily", start_date=datetime(2023, 1, 1, tzinfo=UTC), catchup=False) as dag:
        a, b, c, d, e = (PythonOperator(task_id=n, python_callable=noop) for n in "abcde")
        a >> [b, c]
        [b, c] >> d
        d >> e
    return dag


def two_task_dag() -> DAG:
    with DAG("bench_two", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC), catchup=False) as dag:
        EmptyOperator(task_id="a") >> PythonOperator(task_id="b", python_callable=noop)
    return dag


TWO, WIDE, FIVE = two_task_dag(), wide_dag(), five_task_dag()


def timed(dag: DAG, logical_date: datetime) -> float:
    t0 = time.perf_counter()
    dr = dag.test(logical_date=logical_date)
    elapsed = time.perf_counter() - t0
    assert str(dr.state) in ("success", "DagRunState.SUCCESS"), dr.state
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=3, help="logical dates of the 5-task DAG to run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    results = []
    t = timed(TWO, datetime(2024, 1, 1, tzinfo=UTC))
    results.append({"scenario": "2-task DAG, 1 run", "task_instances": 2, "s": round(t, 3),
                    "ms_per_task_instance": round(1000 * t / 2, 1)})
    t = timed(WIDE, datetime(2024, 1, 1, tzinfo=UTC))
    results.append({"scenario": "wide 502-task DAG, 1 run", "task_instances": 502, "s": round(t, 3),
                    "ms_per_task_instance": round(1000 * t / 502, 1)})
    times = [timed(FIVE, datetime(2023, 1, 1, tzinfo=UTC) + timedelta(days=i)) for i in range(args.days)]
    per_run = statistics.median(times)
    results.append({"scenario": f"5-task DAG, {args.days} daily runs (median per run)", "task_instances": 5,
                    "s": round(per_run, 3), "ms_per_task_instance": round(1000 * per_run / 5, 1),
                    "extrapolated_365_days_s": round(365 * per_run, 1)})
    for r in results:
        print(json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
