"""The DuckDB warehouse: partitions replaced from Arrow or from relations of its own session, atomically."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from headwater.errors import StorageError
from headwater.pipelines.daily import run_day
from headwater.storage.warehouse import DuckDBWarehouse

DAY = date(2024, 1, 2)


@pytest.fixture
def loaded(world, settings, store):
    world.customer(1).customer(2).order(1, "2024-01-01 10:00:00", 10).order(2, "2024-01-02 09:00:00", "5.50")
    world.write("2024-01-01", "2024-01-02")
    run_day(settings, date(2024, 1, 1), store)
    run_day(settings, DAY, store)
    return settings


def partition(wh: DuckDBWarehouse, table: str, column: str, day: date) -> pa.Table:
    return wh.query(f"SELECT * FROM {table} WHERE {column} = ? ORDER BY ALL", [day])  # noqa: S608 (test constants)


def test_a_failed_table_rolls_back_every_table_of_the_day(loaded):
    wh = DuckDBWarehouse(loaded.warehouse)
    try:
        metrics = partition(wh, "customer_metrics", "snapshot_date", DAY)
        sales = partition(wh, "daily_sales", "sales_date", DAY)
        assert metrics.num_rows == 2 and sales.num_rows == 1
        doubled = metrics.set_column(2, "total_revenue", pc.multiply(metrics["total_revenue"], 2))
        no_date = sales.set_column(0, "sales_date", pa.nulls(1, pa.date32()))  # NOT NULL in the contract
        with pytest.raises(StorageError, match="cannot load the warehouse for 2024-01-02"):
            wh.replace_partitions(DAY, {"customer_metrics": doubled, "daily_sales": no_date})
        # the customer_metrics delete and insert that did succeed were rolled back with the rest
        assert partition(wh, "customer_metrics", "snapshot_date", DAY).equals(metrics)
        assert partition(wh, "daily_sales", "sales_date", DAY).equals(sales)
    finally:
        wh.close()


def test_a_relation_of_the_warehouse_session_loads_without_leaving_duckdb(loaded):
    wh = DuckDBWarehouse(loaded.warehouse)
    try:
        before = partition(wh, "customer_metrics", "snapshot_date", DAY)
        rel = wh.con.sql(
            "SELECT * REPLACE (CAST($day AS DATE) AS snapshot_date) FROM customer_metrics WHERE snapshot_date = $src",
            params={"day": date(2024, 1, 3), "src": DAY},
        )
        assert wh.replace_partitions(date(2024, 1, 3), {"customer_metrics": rel}) == {"customer_metrics": 2}
        copied = partition(wh, "customer_metrics", "snapshot_date", date(2024, 1, 3))
        assert copied.drop_columns(["snapshot_date"]).equals(before.drop_columns(["snapshot_date"]))
        assert partition(wh, "customer_metrics", "snapshot_date", DAY).equals(before)  # other days untouched
        # no view was stored in the database file (inputs are registered, i.e. temporary)
        stored = wh.query("SELECT count(*) AS n FROM duckdb_views() WHERE NOT internal AND NOT temporary")
        assert stored["n"][0].as_py() == 0
    finally:
        wh.close()
