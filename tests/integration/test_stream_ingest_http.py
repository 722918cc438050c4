"""POST /events: good and bad batches through TestClient, and one real uvicorn server on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from headwater.config import Settings
from headwater.serving.ingest import create_app
from headwater.stream.config import StreamConfig, log_path
from headwater.stream.log import iter_topic
from headwater.stream.processor import sqlite_processor
from headwater.stream.sqlite_log import SqliteLog


def ev(eid: str, **over: object) -> dict:
    base = {"event_id": eid, "event_type": "ticket_created", "customer_id": 7, "timestamp": "2024-03-01T10:00:00Z",
            "payload": {"ticket_id": "T" + eid, "priority": "high", "category": "billing"}}
    return base | over


@pytest.fixture
def client(tmp_path: Path):
    with TestClient(create_app(tmp_path / "log.sqlite")) as c:
        yield c


def process(path: Path) -> tuple[dict, SqliteLog]:
    log = SqliteLog(path)
    log.open()
    proc = sqlite_processor(log, StreamConfig())
    proc.open()
    return proc.run(until_idle=True), log


def test_good_batch_is_appended(client, tmp_path):
    r = client.post("/events", json=[ev("E1"), ev("E2", timestamp="2024-03-02T10:00:00Z")])
    assert r.status_code == 202 and r.json()["accepted"] == 2
    counts, log = process(tmp_path / "log.sqlite")
    assert counts["processed"] == 2 and counts["alerts"] == 1  # two high-priority tickets: at risk


@pytest.mark.parametrize(("event", "problem"), [
    ({k: v for k, v in ev("E2").items() if k != "customer_id"}, "missing field 'customer_id'"),
    (ev("E2", customer_id="x"), "field 'customer_id'"),
    (ev("E2", timestamp="yesterday"), "field 'timestamp'"),
    (ev("E2", event_type="page_viewed"), "unknown event_type 'page_viewed'"),
    ({k: v for k, v in ev("E2").items() if k != "event_type"}, "missing field 'event_type'"),
    (ev("", ), "field 'event_id'"),
    ("not an object", "not a JSON object"),
])
def test_bad_envelope_rejects_the_whole_batch_naming_the_problem(client, tmp_path, event, problem):
    r = client.post("/events", json=[ev("E1"), event])
    assert r.status_code == 400
    assert r.json()["error"].startswith(f"event 1: {problem}") and r.json()["index"] == 1
    log = SqliteLog(tmp_path / "log.sqlite")
    log.open()
    assert list(iter_topic(log, "customer_events")) == []  # nothing appended, not even the good one


@pytest.mark.parametrize(("body", "status"), [(b"{not json", 400), (b'{"a": 1}', 400), (b"[]", 400)])
def test_bad_bodies(client, body, status):
    r = client.post("/events", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and r.json()["error"]


def test_bad_payload_is_accepted_then_dead_lettered(client, tmp_path):
    bad = ev("E2", payload={"ticket_id": "T", "priority": "urgent", "category": "billing"})
    r = client.post("/events", json=[ev("E1"), bad])
    assert r.status_code == 202 and r.json()["accepted"] == 2
    counts, log = process(tmp_path / "log.sqlite")
    assert counts["in"] == 2 and counts["processed"] == 1 and counts["dead_lettered"] == 1
    [letter] = [json.loads(r.value) for r in iter_topic(log, "customer_events_dlq")]
    assert letter["event_id"] == "E2" and "priority" in letter["reason"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_uvicorn_server_on_loopback(tmp_path):
    settings = Settings(home=tmp_path / "hw")
    port = _free_port()
    env = os.environ | {"HEADWATER_HOME": str(settings.home)}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "headwater.serving.ingest:app_from_env", "--factory",
                               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.1)
        batch = [ev(f"E{i}", customer_id=i % 3, timestamp=f"2024-03-01T10:00:{i:02d}Z") for i in range(30)]
        assert httpx.post(base + "/events", json=batch, timeout=10).status_code == 202
        r = httpx.post(base + "/events", json=[{"event_id": "E99"}], timeout=10)
        assert r.status_code == 400 and "missing field" in r.json()["error"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    counts, log = process(log_path(settings))
    assert counts["in"] == 30 and counts["processed"] == 30
    assert sorted(json.loads(r.value)["customer_id"] for r in iter_topic(log, "customer_alerts")) == [0, 1, 2]
