"""The pipeline model: wiring with >>, validation, options, trigger-rule decisions, inspection."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from headwater.errors import ConfigError
from headwater.orchestration import LandingFlagSensor, Pipeline, Task, TaskOptions
from headwater.orchestration.trigger_rules import decide


def noop(ctx) -> None:
    return None


def make() -> Pipeline:
    return Pipeline("p", schedule="@daily", start_date=date(2024, 1, 1), default_options=TaskOptions(retries=2))


def test_shift_operators_wire_tasks_and_lists() -> None:
    p = make()
    a, b, c, d = (p.task(noop, task_id=n) for n in "abcd")
    a >> [b, c]
    [b, c] >> d
    assert a.downstream_ids == {"b", "c"}
    assert d.upstream_ids == {"b", "c"}
    e = Task("e", noop)
    d << e  # e joins p through the wiring
    assert e.pipeline is p and "e" in d.upstream_ids
    order = p.topological_order()
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("e") < order.index("d")


def test_cycle_duplicate_and_foreign_tasks_are_rejected() -> None:
    p = make()
    a, b = p.task(noop, task_id="a"), p.task(noop, task_id="b")
    a >> b >> a
    with pytest.raises(ConfigError, match="cycle"):
        p.validate()
    with pytest.raises(ConfigError, match="already has"):
        p.add(Task("a", noop))
    q = Pipeline("q", start_date=date(2024, 1, 1))
    x = q.task(noop, task_id="x")
    with pytest.raises(ConfigError, match="different pipelines"):
        a >> x
    with pytest.raises(ConfigError):
        Pipeline("q", start_date=date(2024, 1, 1)).validate()  # no tasks


def test_options_merge_defaults_with_overrides_and_validate() -> None:
    p = make()
    t = p.task(noop, task_id="t", retry_delay=timedelta(seconds=5), max_retry_delay=timedelta(seconds=12))
    o = t.options()
    assert o.retries == 2  # from the pipeline
    assert [o.retry_wait(n) for n in (1, 2, 3, 4)] == [5, 10, 12, 12]
    assert TaskOptions(retry_delay=timedelta(seconds=5), exponential_backoff=False).retry_wait(3) == 5
    with pytest.raises(ConfigError, match="unknown options"):
        Task("u", noop, retires=3)
    with pytest.raises(ConfigError, match="trigger rule"):
        TaskOptions(trigger_rule="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        TaskOptions(jitter=2)
    with pytest.raises(ConfigError):
        Task("bad id!", noop)


def test_describe_is_json_and_carries_lineage_declarations() -> None:
    p = make()
    wait = p.add(LandingFlagSensor("wait", dataset="support_tickets", poke_interval=timedelta(minutes=5)))
    load = p.task(noop, task_id="load", inputs=["raw.support_tickets"], outputs=["warehouse.t"])
    wait >> load
    d = json.loads(json.dumps(p.describe()))
    assert d["schedule"] == "@daily" and d["catchup"] is True
    tasks = {t["task_id"]: t for t in d["tasks"]}
    assert tasks["wait"]["kind"] == "sensor" and tasks["wait"]["poke_interval_s"] == 300
    assert tasks["wait"]["inputs"] == ["landing.support_tickets"]
    assert tasks["load"]["upstream"] == ["wait"] and tasks["load"]["outputs"] == ["warehouse.t"]


@pytest.mark.parametrize(
    ("rule", "states", "expected"),
    [
        ("all_success", [], "run"),
        ("all_success", ["success", "running"], "wait"),
        ("all_success", ["success", "success"], "run"),
        ("all_success", ["failed", "running"], "upstream_failed"),
        ("all_success", ["success", "skipped"], "skipped"),
        ("all_done", ["failed", "upstream_failed", "success"], "run"),
        ("all_done", ["failed", "scheduled"], "wait"),
        ("none_failed", ["skipped", "success"], "run"),
        ("none_failed", ["failed", "success"], "upstream_failed"),
        ("one_success", ["success", "running"], "run"),
        ("one_success", ["failed", "skipped"], "upstream_failed"),
        ("one_failed", ["failed", "running"], "run"),
        ("one_failed", ["success", "success"], "skipped"),
    ],
)
def test_trigger_rules(rule: str, states: list[str], expected: str) -> None:
    assert decide(rule, states) == expected


def test_flagship_lineage_connects_sources_to_the_warehouse_and_features() -> None:
    from headwater.pipelines.customer_analytics import customer_analytics

    edges = customer_analytics.lineage()
    produced_by = {o: t for _, t, o in edges if o}
    # every dataset a task reads is produced by an upstream task of the DAG, or is an external input
    for i, t, _ in edges:
        if i and i in produced_by and produced_by[i] != t:
            order = customer_analytics.topological_order()
            assert order.index(produced_by[i]) < order.index(t), (i, t)
    assert produced_by["warehouse.customer_metrics"] == "load_warehouse"
    assert produced_by["features.customer_features"] == "update_feature_store"
    external = {i for i, _, _ in edges if i and i not in produced_by}
    assert external == {"source.orders", "landing.support_tickets", "landing.marketing_events"}
