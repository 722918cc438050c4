"""The offline feature store: the latest features per customer, served from its own DuckDB file.

Two tables in ``HEADWATER_HOME/features/features.duckdb``:

- ``customer_features_history``: one partition per snapshot date, copied from the warehouse's
  ``customer_metrics`` (delete + insert of the day in one transaction: re-runs change nothing);
- ``customer_features``: one row per customer, the newest snapshot seen for it. A day's update only
  replaces customers whose stored snapshot is not newer, so backfills in any order (even ``--reverse``)
  end in the same table.

The feature columns are whatever ``customer_metrics`` holds, so a new metric becomes a feature
without touching this module.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from headwater.config import Settings
from headwater.errors import SourceNotReady, StorageError
from headwater.orchestration.run_store import StepCounts
from headwater.storage.warehouse import DuckDBWarehouse

HISTORY, LATEST = "customer_features_history", "customer_features"


def feature_store_path(settings: Settings) -> Path:
    return Path(settings.home) / "features" / "features.duckdb"


class FeatureStore:
    """Offline feature tables keyed by ``customer_id``; see the module docstring."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        try:
            if not read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise StorageError(f"cannot open feature store {self.path}: {exc}") from exc

    def close(self) -> None:
        self.con.close()

    def write_snapshot(self, day: date, snapshot: pa.Table) -> int:
        """Replace ``day`` in the history and refresh the latest row of the customers it holds."""
        if "snapshot_date" not in snapshot.column_names or "customer_id" not in snapshot.column_names:
            raise StorageError("a feature snapshot needs snapshot_date and customer_id columns")
        cur = self.con.cursor()
        try:
            cur.register("incoming", snapshot)
            cur.execute("BEGIN TRANSACTION")
            self._ensure_tables_on(cur)
            # Table names are module constants; values are parameters.
            cur.execute(f"DELETE FROM {HISTORY} WHERE snapshot_date = ?", [day])  # noqa: S608
            cur.execute(f"INSERT INTO {HISTORY} BY NAME SELECT * FROM incoming")  # noqa: S608
            cur.execute(
                f"DELETE FROM {LATEST} WHERE snapshot_date <= ? "  # noqa: S608
                "AND customer_id IN (SELECT customer_id FROM incoming)",
                [day],
            )
            cur.execute(
                f"INSERT INTO {LATEST} BY NAME SELECT * FROM incoming "  # noqa: S608
                f"WHERE customer_id NOT IN (SELECT customer_id FROM {LATEST})"
            )
            cur.execute("COMMIT")
        except duckdb.Error as exc:
            cur.execute("ROLLBACK")
            raise StorageError(f"cannot write features for {day}: {exc}", partition=str(day)) from exc
        finally:
            cur.close()
        return snapshot.num_rows

    def _ensure_tables_on(self, cur: duckdb.DuckDBPyConnection) -> None:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {HISTORY} AS SELECT * FROM incoming LIMIT 0")  # noqa: S608
        cur.execute(f"CREATE TABLE IF NOT EXISTS {LATEST} AS SELECT * FROM incoming LIMIT 0")  # noqa: S608

    def latest(self, customer_id: int) -> dict[str, Any] | None:
        """The newest features of one customer (what an online model would read)."""
        try:
            rows = self.con.sql(f"SELECT * FROM {LATEST} WHERE customer_id = ?", params=[customer_id])  # noqa: S608
            table = rows.to_arrow_table()
        except duckdb.CatalogException:
            return None
        return table.to_pylist()[0] if table.num_rows else None

    def read_latest(self) -> pa.Table:
        try:
            return self.con.sql(f"SELECT * FROM {LATEST} ORDER BY customer_id").to_arrow_table()  # noqa: S608
        except duckdb.CatalogException:
            return pa.table({})


def update_feature_store(settings: Settings, day: date) -> StepCounts:
    """Copy the warehouse's ``customer_metrics`` snapshot of ``day`` into the feature store."""
    if not Path(settings.warehouse).exists():
        raise SourceNotReady(f"no warehouse at {settings.warehouse} yet", dataset="customer_metrics")
    wh = DuckDBWarehouse(settings.warehouse, read_only=True)
    try:
        snapshot = wh.query("SELECT * FROM customer_metrics WHERE snapshot_date = ? ORDER BY customer_id", [day])
    finally:
        wh.close()
    store = FeatureStore(feature_store_path(settings))
    try:
        written = store.write_snapshot(day, snapshot)
    finally:
        store.close()
    return StepCounts("update_feature_store", rows_in=snapshot.num_rows, rows_out=written)
