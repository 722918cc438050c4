"""Loader idempotence, replay equals live, demo_run summary, bounded state on a long stream, CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from headwater.cli import app
from headwater.config import Settings
from headwater.errors import ConfigError, DataError, SourceError
from headwater.stream import demo_run, replay
from headwater.stream.config import StreamConfig, log_path
from headwater.stream.jobs import open_log
from headwater.stream.loader import load_file
from headwater.stream.log import iter_topic
from headwater.stream.processor import sqlite_processor
from headwater.stream.sqlite_log import SqliteLog
from headwater.stream.state import SqliteStateStore
from headwater.stream.synthetic import generate_events, write_jsonl

pytestmark = pytest.mark.usefixtures("engine")  # each test on both engines (tests/unit/conftest.py)


@pytest.fixture
def home(tmp_path) -> Settings:
    return Settings(home=tmp_path / "hw")


def test_loader_is_idempotent_and_resumes(tmp_path):
    lines = generate_events(300, seed=1, bad_rate=0.1)
    path = write_jsonl(tmp_path / "e.jsonl", lines[:200])
    log = SqliteLog(tmp_path / "log.sqlite")
    log.open()
    assert load_file(log, path).appended == 200
    assert load_file(log, path).appended == 0
    with path.open("a") as fh:
        fh.write("\n".join(lines[200:]) + "\n")
    r = load_file(log, path)
    assert (r.appended, r.already_loaded) == (100, 200)
    assert [rec.value for rec in iter_topic(log, "customer_events")].__len__() == 300
    path.write_text("x\n")
    with pytest.raises(DataError):
        load_file(log, path)
    with pytest.raises(SourceError):
        load_file(log, tmp_path / "missing.jsonl")


def test_demo_run_summary_conserves_and_shows_alerts(home, tmp_path):
    path = write_jsonl(tmp_path / "e.jsonl", generate_events(3000, seed=9, bad_rate=0.03, late_rate=0.01,
                                                             lateness_s=3600))
    s = demo_run(home, path)
    assert s["events_in"] == 3000 == s["processed"] + s["dead_lettered"] + s["late"] and s["conserved"]
    assert s["dead_lettered"] > 0 and s["late"] > 0 and s["alerts"] == sum(s["alerts_by_type"].values()) > 0
    assert {"alert_id", "alert_type", "customer_id", "reason", "event_timestamp",
            "recommended_action"} <= set(s["sample_alerts"][0])
    again = demo_run(home, path)
    assert again["events_in"] == 3000 and again["loaded_now"] == 0 and again["alerts"] == s["alerts"]


def test_replay_from_the_beginning_matches_live(home, tmp_path):
    demo_run(home, write_jsonl(tmp_path / "e.jsonl", generate_events(4000, seed=4, bad_rate=0.02,
                                                                     out_of_order_rate=0.05, lateness_s=3600)))
    result = replay(home)
    assert result.matches and result.counts == result.live_counts and result.replay_alerts > 20
    with pytest.raises(ConfigError):
        replay(home)  # the output exists: a replay never overwrites silently
    assert replay(home, force=True).matches


def test_state_stays_bounded_on_a_long_stream(tmp_path):
    # two years of events for 800 customers: state must plateau, not grow with history
    lines = generate_events(80_000, seed=5, customers=800, mean_gap_s=790.0)
    log = SqliteLog(tmp_path / "log.sqlite")
    log.open()
    load_file(log, write_jsonl(tmp_path / "e.jsonl", lines))
    config = StreamConfig(batch_size=2000)
    proc = sqlite_processor(log, config)
    proc.open()
    store = SqliteStateStore(log, config.group)
    sizes = []
    for _ in range(8):
        proc.run(until_idle=True, max_events=10_000)
        sizes.append((proc.cached_state_items(), store.stats()[1]))
    items = [s[0] for s in sizes]
    stored = [s[1] for s in sizes]
    assert max(items[3:]) < 1.25 * min(items[3:]), items  # a plateau after the first 90-day window
    assert max(stored[3:]) < 1.25 * min(stored[3:]), stored
    assert items[-1] < 80_000 / 4  # far below the history (every event kept would be 80k items)


runner = CliRunner()


def test_cli_end_to_end(home, tmp_path, engine):
    path = write_jsonl(tmp_path / "e.jsonl", generate_events(500, seed=2, bad_rate=0.05))
    h = ["--home", str(home.home)]
    r = runner.invoke(app, ["events", "load", str(path), *h])
    assert r.exit_code == 0 and "loaded 500 new event(s)" in r.output
    r = runner.invoke(app, ["stream", "run", "--until-idle", "--quiet", *h])
    assert r.exit_code == 0 and "in 500" in r.output and f"engine {engine}" in r.output
    r = runner.invoke(app, ["events", "tail", "customer_alerts", "--from-beginning", "--json", *h])
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert rows and all(row["topic"] == "customer_alerts" and "alert_id" in row["value"] for row in rows)
    r = runner.invoke(app, ["events", "tail", "customer_alrets", *h])
    assert r.exit_code != 0 and "unknown topic 'customer_alrets'" in str(r.exception)
    r = runner.invoke(app, ["dlq", "list", "--json", *h])
    letters = [json.loads(line) for line in r.output.splitlines()]
    assert letters and all(lt["reason"] for lt in letters)
    r = runner.invoke(app, ["dlq", "show", letters[0]["letter_id"], *h])
    assert json.loads(r.output)["payload"] == letters[0]["payload"]
    r = runner.invoke(app, ["events", "produce", "customer_events", *h], input='{"event_id": "X"}\n')
    assert r.exit_code == 0 and "appended 1 record(s)" in r.output
    r = runner.invoke(app, ["stream", "replay", "--from-beginning", *h])
    assert r.exit_code == 0 and "replay matches live" in r.output
    r = runner.invoke(app, ["events", "retention", "customer_events_dlq", "--max-records", "2", *h])
    assert r.exit_code == 0 and "deleted" in r.output
    r = runner.invoke(app, ["dlq", "list", "--json", *h])
    assert len(r.output.splitlines()) <= 2 * 4  # at most 2 per partition are retained
    r = runner.invoke(app, ["stream", "status", "--json", *h])
    assert json.loads(r.output)["conserved"] is True
    log = open_log(home)
    assert log.path == log_path(home)
    log.close()
