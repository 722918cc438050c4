"""Export to Airflow: the generated DAG file mirrors the pipeline (checked on its syntax tree)."""

from __future__ import annotations

import ast
from datetime import date, timedelta

from headwater.orchestration import LandingFlagSensor, Pipeline, TaskOptions
from headwater.orchestration.airflow_export import render_airflow_dag
from headwater.pipelines.customer_analytics import customer_analytics


def calls(tree: ast.AST) -> dict[str, dict[str, object]]:
    """task_id -> {operator, keyword literals} for every operator call in the file."""
    out: dict[str, dict[str, object]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("Python"):
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            literals = {k: ast.literal_eval(v) for k, v in kw.items() if isinstance(v, ast.Constant)}
            out[str(literals["task_id"])] = {"operator": node.func.id, **literals}
    return out


def edges(tree: ast.AST) -> set[tuple[str, str]]:
    return {
        (n.left.id.removeprefix("t_"), n.right.id.removeprefix("t_"))
        for n in ast.walk(tree)
        if isinstance(n, ast.BinOp)
        and isinstance(n.op, ast.RShift)
        and isinstance(n.left, ast.Name)
        and isinstance(n.right, ast.Name)
    }


def test_export_mirrors_options_sensors_and_dependencies() -> None:
    p = Pipeline(
        "toy",
        schedule="*/30 * * * *",
        start_date=date(2024, 1, 1),
        max_active_runs=2,
        default_options=TaskOptions(retries=2, retry_delay=timedelta(seconds=5)),
        tags=["t"],
    )
    wait = p.add(LandingFlagSensor("wait", dataset="d", poke_interval=timedelta(minutes=2), timeout=timedelta(hours=1)))
    a = p.task(lambda ctx: None, task_id="a", retries=4)
    b = p.task(lambda ctx: None, task_id="b", trigger_rule="all_done", depends_on_past=True)
    wait >> a >> b
    source = render_airflow_dag(p)
    tree = ast.parse(source)  # valid Python
    ops = calls(tree)
    assert ops["wait"]["operator"] == "PythonSensor" and ops["wait"]["mode"] == "reschedule"
    assert ops["wait"]["poke_interval"] == 120.0 and ops["wait"]["timeout"] == 3600.0
    assert ops["a"]["operator"] == "PythonOperator" and ops["a"]["retries"] == 4
    assert ops["b"]["trigger_rule"] == "all_done" and ops["b"]["depends_on_past"] is True
    assert ops["b"]["retries"] == 2
    assert edges(tree) == {("wait", "a"), ("a", "b")}
    assert "schedule='*/30 * * * *'" in source and "max_active_runs=2" in source


def test_flagship_exports_every_task_and_edge() -> None:
    tree = ast.parse(render_airflow_dag(customer_analytics))
    assert set(calls(tree)) == set(customer_analytics.tasks)
    want = {(t, d) for t, task in customer_analytics.tasks.items() for d in task.downstream_ids}
    assert edges(tree) == want
