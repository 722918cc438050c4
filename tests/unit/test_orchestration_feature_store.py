"""The offline feature table: per-day history, latest row per customer, any write order."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa

from headwater.storage.feature_store import FeatureStore


def snap(day: date, rows: dict[int, float]) -> pa.Table:
    return pa.table(
        {
            "snapshot_date": pa.array([day] * len(rows), pa.date32()),
            "customer_id": pa.array(list(rows), pa.int64()),
            "estimated_clv": pa.array(list(rows.values()), pa.float64()),
        }
    )


DAYS = {
    date(2024, 1, 1): {1: 10.0, 2: 20.0},
    date(2024, 1, 2): {1: 11.0, 3: 30.0},
    date(2024, 1, 3): {2: 22.0},
}


def latest(fs: FeatureStore) -> list[tuple]:
    return [(r["customer_id"], r["snapshot_date"], r["estimated_clv"]) for r in fs.read_latest().to_pylist()]


def test_latest_features_do_not_depend_on_write_order(tmp_path: Path) -> None:
    expected = [(1, date(2024, 1, 2), 11.0), (2, date(2024, 1, 3), 22.0), (3, date(2024, 1, 2), 30.0)]
    for name, order in (("forward", sorted(DAYS)), ("reverse", sorted(DAYS, reverse=True))):
        fs = FeatureStore(tmp_path / name / "features.duckdb")
        for day in order:
            assert fs.write_snapshot(day, snap(day, DAYS[day])) == len(DAYS[day])
        assert latest(fs) == expected, name
        fs.close()


def test_rewriting_a_day_replaces_it(tmp_path: Path) -> None:
    fs = FeatureStore(tmp_path / "features.duckdb")
    for day in sorted(DAYS):
        fs.write_snapshot(day, snap(day, DAYS[day]))
    fs.write_snapshot(date(2024, 1, 3), snap(date(2024, 1, 3), {2: 25.0}))
    fs.write_snapshot(date(2024, 1, 3), snap(date(2024, 1, 3), {2: 25.0}))  # twice: no duplicates
    assert fs.latest(2) == {"snapshot_date": date(2024, 1, 3), "customer_id": 2, "estimated_clv": 25.0}
    assert fs.latest(99) is None
    n = fs.con.execute("SELECT count(*) FROM customer_features_history WHERE snapshot_date = ?", [date(2024, 1, 3)])
    assert n.fetchone() == (1,)
    fs.close()
