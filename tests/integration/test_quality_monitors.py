"""Batch monitors on a generated world with injected anomalies: each anomaly is caught on its day,
and no other day raises an alarm (the no-false-alarm check on normal days)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from headwater.config import Settings
from headwater.orchestration.run_store import RunStore
from headwater.pipelines import daily
from headwater.quality.monitors import Check, psi, volume_band
from headwater.quality.validate import level_of, monitor_checks, score
from headwater.synth import WorldSpec, generate_world

START = date(2024, 3, 4)
DAYS = 36
DROP, SPIKE, DRIFT = START + timedelta(29), START + timedelta(31), START + timedelta(33)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory) -> dict[date, list[Check]]:
    settings = Settings(home=tmp_path_factory.mktemp("monitors"))
    spec = WorldSpec(customers=2400, days=DAYS, start=START, seed=5,
                     anomalies={"volume_drop": DROP, "null_spike": SPIKE, "amount_drift": DRIFT})
    generate_world(settings, spec)
    store = RunStore(settings.run_store)
    out = {}
    try:
        for k in range(DAYS):
            day = START + timedelta(k)
            run_id = daily.run_id_for(day)
            for step in (daily.extract_orders, daily.ingest_support_tickets, daily.ingest_marketing_events):
                step(settings, day, run_id, store)
            out[day] = monitor_checks(settings, store, day)
    finally:
        store.close()
    return out


def status(checks: list[Check], name: str) -> str:
    return next(c.status for c in checks if c.name == name)


def test_volume_drop_is_caught(monitored):
    assert status(monitored[DROP], "volume:orders") == "critical"


def test_null_spike_is_caught(monitored):
    check = next(c for c in monitored[SPIKE] if c.name == "null_rate:orders.customer_id")
    assert check.status == "critical" and check.observed > 0.2


def test_amount_drift_is_caught(monitored):
    assert status(monitored[DRIFT], "drift:orders.total_amount") == "critical"


def test_anomalies_make_the_score_critical(monitored):
    for day in (DROP, SPIKE, DRIFT):
        value, _ = score(monitored[day])
        assert level_of(value) == "critical", day


def test_normal_days_raise_no_alarm_and_warm_up_first(monitored):
    first = monitored[START]
    assert status(first, "volume:orders") == "warmup" and status(first, "drift:orders.total_amount") == "warmup"
    alarms = {
        (day, c.name, c.status, c.detail)
        for day, checks in monitored.items()
        if day not in (DROP, SPIKE, DRIFT)
        for c in checks
        if c.status in ("warn", "critical") and not c.name.startswith("duration:")  # wall clock: machine-dependent
    }
    assert alarms == set()
    normal = [score(checks)[0] for day, checks in monitored.items() if day not in (DROP, SPIKE, DRIFT)]
    assert min(normal) >= 0.95


def test_volume_band_follows_a_trend_and_ignores_an_outlier():
    day = date(2024, 1, 20)
    history = [((day - timedelta(k)).isoformat(), 2000.0 - 50 * k) for k in range(1, 15)]  # +50/day growth
    history[3] = (history[3][0], 200.0)  # one broken day in the window
    pred, (lo_w, hi_w), (lo_c, _) = volume_band(history, day)
    assert pred == pytest.approx(2000.0)
    assert lo_w == pytest.approx(1400.0) and hi_w == pytest.approx(3200.0)  # -30% down, +60% up
    assert lo_c == pytest.approx(1000.0)
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0
    assert psi([0.5, 0.5], [0.9, 0.1]) > 0.25
