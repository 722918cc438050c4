"""Alerts and notifications against a real local HTTP server that fails on purpose."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from headwater.config import Settings
from headwater.errors import HeadwaterError
from headwater.monitoring import Alert, LogChannel, WebhookChannel
from headwater.orchestration import ManualClock, NotifyDownstream, Pipeline, Scheduler, Sensor, StepCounts, run_id_for

T0 = datetime(2024, 1, 1, tzinfo=UTC)
RID = run_id_for("p", T0)


class Hook:
    """A webhook endpoint: answers ``fail_first`` posts with 500, then 200; keeps every body."""

    def __init__(self, fail_first: int = 0, status: int = 500) -> None:
        self.fail_first, self.status = fail_first, status
        self.bodies: list[dict] = []
        self.codes: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                code = hook.status if len(hook.codes) < hook.fail_first else 200
                hook.codes.append(code)
                if code == 200:
                    hook.bodies.append(body)
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook(fail_first=2)
    yield h
    h.close()


def test_webhook_retries_after_500s_with_backoff(hook: Hook) -> None:
    sleeps: list[float] = []
    channel = WebhookChannel(hook.url, attempts=4, base_delay_s=1.0, sleep=sleeps.append)
    channel.send(Alert("sla_miss", "p", "r1", "late"))
    channel.close()
    assert hook.codes == [500, 500, 200]
    assert [b["run_id"] for b in hook.bodies] == ["r1"] and hook.bodies[0]["kind"] == "sla_miss"
    assert len(sleeps) == 2 and 0.9 <= sleeps[0] <= 1.1 and 1.8 <= sleeps[1] <= 2.2  # 1 s, 2 s (+-10%)


def test_webhook_gives_up_and_4xx_is_not_retried() -> None:
    always = Hook(fail_first=99)
    rejecting = Hook(fail_first=99, status=404)
    try:
        with pytest.raises(HeadwaterError, match="gave up after 3 attempts"):
            WebhookChannel(always.url, attempts=3, sleep=lambda s: None).send(Alert("x", "p", None, "m"))
        with pytest.raises(HeadwaterError, match="404"):
            WebhookChannel(rejecting.url, attempts=3, sleep=lambda s: None).send(Alert("x", "p", None, "m"))
        assert len(always.codes) == 3 and rejecting.codes == [404]
    finally:
        always.close()
        rejecting.close()


def test_sla_miss_is_recorded_and_sent(settings: Settings, hook: Hook, tmp_path) -> None:
    clock = ManualClock(T0 + timedelta(days=1))
    p = Pipeline("p", schedule="@daily", start_date=date(2024, 1, 1), sla=timedelta(hours=1))
    p.add(
        Sensor(
            "slow_source",
            lambda ctx: clock.now() >= T0 + timedelta(days=1, hours=2),
            poke_interval=timedelta(minutes=20),
            timeout=timedelta(hours=5),
        )
    )
    log_file = tmp_path / "alerts.jsonl"
    channels = [LogChannel(log_file), WebhookChannel(hook.url, base_delay_s=0.001)]
    s = Scheduler(settings, [p], clock=clock, channels=channels)
    assert s.run(once=True).finished == {RID: "success"}
    run = s.state.get_run(RID)
    assert run is not None and run["sla_status"] == "missed"
    (miss,) = s.state.sla_misses("p")
    assert miss["notified"] == 1 and "not done by its SLA deadline 2024-01-02T01:00:00" in miss["detail"]
    assert hook.codes == [500, 500, 200]  # delivered despite two failures
    assert hook.bodies[0]["kind"] == "sla_miss" and hook.bodies[0]["run_id"] == RID
    assert json.loads(log_file.read_text().splitlines()[0])["kind"] == "sla_miss"
    # the next day's run is on time: met, no new alert
    clock.advance(timedelta(days=1) - timedelta(hours=2))
    assert s.run(once=True).finished == {run_id_for("p", T0 + timedelta(days=1)): "success"}
    assert (s.state.get_run(run_id_for("p", T0 + timedelta(days=1))) or {})["sla_status"] == "met"
    assert len(hook.bodies) == 1


def test_notify_downstream_posts_the_run_summary(settings: Settings, hook: Hook) -> None:
    p = Pipeline("p", schedule="@daily", start_date=date(2024, 1, 1))
    p.task(lambda ctx: StepCounts("load", 10, 8, filtered=2), task_id="load") >> p.add(
        NotifyDownstream(url=hook.url, base_delay_s=0.001)
    )
    s = Scheduler(settings, [p], clock=ManualClock(T0 + timedelta(days=1)), channels=[])
    assert s.run(once=True).finished == {RID: "success"}
    (body,) = hook.bodies
    assert body["run_id"] == RID and body["tasks"] == {"load": "success"}
    assert body["row_counts"] == {"load": {"in": 10, "out": 8, "filtered": 2, "rejected": 0}}
    assert body["data_interval"] == ["2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00"]
    ti = {r["task_id"]: r for r in s.state.task_instances(RID)}["notify_downstream"]
    assert json.loads(ti["metrics"])["attempts"] == 3


def test_notify_without_url_writes_the_outbox(settings: Settings) -> None:
    p = Pipeline("p", schedule="@daily", start_date=date(2024, 1, 1))
    p.add(NotifyDownstream())
    s = Scheduler(settings, [p], clock=ManualClock(T0 + timedelta(days=1)), channels=[])
    assert s.run(once=True).finished == {RID: "success"}
    (out,) = (settings.home / "outbox").glob("*.json")
    assert json.loads(out.read_text())["run_id"] == RID
