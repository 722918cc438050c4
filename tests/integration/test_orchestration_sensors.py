"""Sensors in reschedule mode: success, timeout with a clear reason, released workers, real sources."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta

from headwater.config import Settings
from headwater.orchestration import (
    LandingFlagSensor,
    ManualClock,
    Pipeline,
    RunSensor,
    Scheduler,
    Sensor,
    SqlSensor,
    run_id_for,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
RID = run_id_for("p", T0)


def daily(pid: str = "p") -> Pipeline:
    return Pipeline(pid, schedule="@daily", start_date=date(2024, 1, 1))


def sched(settings: Settings, *pipes: Pipeline, workers: int = 2) -> Scheduler:
    return Scheduler(
        settings, pipes, clock=ManualClock(T0 + timedelta(days=1, minutes=5)), max_workers=workers, channels=[]
    )


def test_sensor_succeeds_once_ready_and_releases_its_worker(settings: Settings) -> None:
    ran: list[str] = []
    ready_at = T0 + timedelta(days=1, minutes=35)
    p = daily()
    wait = p.add(
        Sensor(
            "wait",
            lambda ctx: (clock.now() >= ready_at, "upstream file"),
            poke_interval=timedelta(minutes=10),
            timeout=timedelta(hours=2),
        )
    )
    wait >> p.task(lambda ctx: ran.append("after"), task_id="after")
    p.task(lambda ctx: ran.append("independent"), task_id="independent")
    s = sched(settings, p, workers=1)  # one worker: the independent task runs while the sensor waits
    clock = s.clock
    assert s.run(once=True).finished == {RID: "success"}
    assert ran == ["independent", "after"]
    pokes = s.state.pokes(RID, "wait")
    assert [bool(r["ready"]) for r in pokes] == [False, False, False, True]  # 5, 15, 25 min: no; 35: yes
    ti = {r["task_id"]: r for r in s.state.task_instances(RID)}["wait"]
    assert ti["pokes"] == 4 and ti["try_number"] == 1  # rescheduling does not spend tries


def test_sensor_timeout_fails_the_run_with_the_reason(settings: Settings) -> None:
    p = daily()
    p.add(
        LandingFlagSensor(
            "wait_for_tickets",
            dataset="support_tickets",
            poke_interval=timedelta(minutes=15),
            timeout=timedelta(hours=1),
        )
    ) >> p.task(lambda ctx: None, task_id="ingest")
    s = sched(settings, p)
    assert s.run(once=True).finished == {RID: "failed"}
    run = s.state.get_run(RID)
    assert run is not None
    assert "wait_for_tickets" in run["error"] and "timed out after 1:00:00" in run["error"]
    assert "support_tickets/date=2024-01-01/_SUCCESS" in run["error"]
    assert len(s.state.pokes(RID, "wait_for_tickets")) == 5  # 0, 15, 30, 45, 60 minutes
    assert {r["task_id"]: r["state"] for r in s.state.task_instances(RID)}["ingest"] == "upstream_failed"


def test_landing_flag_sensor_sees_the_flag(settings: Settings) -> None:
    p = daily()
    sensor = LandingFlagSensor("wait", dataset="support_tickets")
    p.add(sensor)
    flag = sensor.flag_path(settings, "2024-01-01")
    flag.parent.mkdir(parents=True)
    flag.touch()
    s = sched(settings, p)
    assert s.run(once=True).finished == {RID: "success"}


def test_sql_sensor_waits_for_data_up_to_the_interval_end(settings: Settings) -> None:
    settings.source_db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(settings.source_db)
    con.execute("CREATE TABLE orders (order_id INTEGER, order_ts TEXT)")
    con.execute("INSERT INTO orders VALUES (1, '2024-01-01 10:00:00')")
    con.commit()

    def pipeline() -> Pipeline:
        p = daily()
        p.add(
            SqlSensor(
                "wait_for_orders",
                db=lambda s: s.source_db,
                sql="SELECT EXISTS (SELECT 1 FROM orders WHERE order_ts >= ?)",
                params=lambda ctx: [ctx.data_interval_end.strftime("%Y-%m-%d %H:%M:%S")],
                poke_interval=timedelta(minutes=30),
                timeout=timedelta(hours=1),
            )
        )
        return p

    s = sched(settings, pipeline())
    assert s.run(once=True).finished == {RID: "failed"}  # nothing at or after 2024-01-02 00:00 yet
    assert "query on oltp.sqlite with ['2024-01-02 00:00:00']" in (s.state.get_run(RID) or {})["error"]
    con.execute("INSERT INTO orders VALUES (2, '2024-01-02 00:00:01')")
    con.commit()
    con.close()
    s.state.requeue_run(RID, T0, ("failed",))
    s2 = sched(settings, pipeline())
    assert s2.run(once=True).finished == {RID: "success"}


def test_run_sensor_follows_another_pipeline(settings: Settings) -> None:
    upstream = daily("upstream")
    upstream.task(lambda ctx: None, task_id="produce")
    downstream = daily("downstream")
    downstream.add(RunSensor("wait_upstream", pipeline_id="upstream", poke_interval=timedelta(minutes=1)))
    s = sched(settings, upstream, downstream)
    report = s.run(once=True)
    assert report.finished == {run_id_for("upstream", T0): "success", run_id_for("downstream", T0): "success"}

    broken = daily("upstream")
    broken.task(lambda ctx: 1 / 0, task_id="produce")
    downstream2 = daily("downstream")
    downstream2.add(RunSensor("wait_upstream", pipeline_id="upstream", timeout=timedelta(days=1)))
    s2 = Scheduler(settings, [broken, downstream2], clock=ManualClock(T0 + timedelta(days=2, minutes=1)), channels=[])
    report = s2.run(once=True)
    day2 = T0 + timedelta(days=1)
    assert report.finished[run_id_for("upstream", day2)] == "failed"
    assert report.finished[run_id_for("downstream", day2)] == "failed"
    err = (s2.state.get_run(run_id_for("downstream", day2)) or {})["error"]
    assert "upstream run upstream__2024-01-02T00:00 failed" in err
