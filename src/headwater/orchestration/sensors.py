"""Sensors: tasks that wait for a condition, releasing their worker between pokes (reschedule mode).

Each poke is one short try on a worker; "not yet" puts the instance in ``up_for_reschedule`` until
``poke_interval`` has passed on the scheduler's clock, so a hundred waiting sensors hold no thread.
After ``timeout`` since the first poke the sensor fails its run with a reason saying what was missing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from headwater.config import Settings
from headwater.errors import ConfigError, SourceError
from headwater.orchestration.context import TaskContext
from headwater.orchestration.pipeline import Task


@dataclass(frozen=True)
class PokeResult:
    ready: bool
    detail: str | None = None


class SensorTimeout(SourceError):
    """A sensor waited longer than its ``timeout`` (permanent for this run)."""


class Sensor(Task):
    """Base sensor: override :meth:`poke` or pass ``poke=fn(ctx) -> bool | (bool, detail)``."""

    kind = "sensor"

    def __init__(
        self,
        task_id: str,
        poke: Callable[[TaskContext], bool | tuple[bool, str]] | None = None,
        *,
        poke_interval: timedelta = timedelta(seconds=60),
        timeout: timedelta = timedelta(hours=6),
        **kw: Any,
    ) -> None:
        super().__init__(task_id, None, **kw)
        if poke_interval <= timedelta(0) or timeout <= timedelta(0):
            raise ConfigError(f"sensor {task_id!r}: poke_interval and timeout must be positive")
        self._poke_fn = poke
        self.poke_interval = poke_interval
        self.timeout = timeout

    def poke(self, ctx: TaskContext) -> bool | tuple[bool, str]:
        if self._poke_fn is None:
            raise ConfigError(f"sensor {self.task_id!r} has no poke function")
        return self._poke_fn(ctx)

    def execute(self, ctx: TaskContext) -> PokeResult:
        out = self.poke(ctx)
        return PokeResult(*out) if isinstance(out, tuple) else PokeResult(bool(out))

    def describe(self) -> dict[str, Any]:
        return super().describe() | {
            "poke_interval_s": self.poke_interval.total_seconds(),
            "timeout_s": self.timeout.total_seconds(),
        }


class LandingFlagSensor(Sensor):
    """Waits for ``landing_dir/<dataset>/date=<ds>/_SUCCESS``: the drop for the interval is complete."""

    def __init__(self, task_id: str, *, dataset: str, flag: str = "_SUCCESS", **kw: Any) -> None:
        kw.setdefault("outputs", ())
        super().__init__(task_id, inputs=kw.pop("inputs", (f"landing.{dataset}",)), **kw)
        self.dataset = dataset
        self.flag = flag

    def flag_path(self, settings: Settings, ds: str) -> Path:
        return Path(settings.landing_dir) / self.dataset / f"date={ds}" / self.flag

    def poke(self, ctx: TaskContext) -> tuple[bool, str]:
        path = self.flag_path(ctx.settings, ctx.ds)
        return path.exists(), f"flag {path}"


class SqlSensor(Sensor):
    """Runs a parameterised query on a SQLite source; ready when the first column of the first row is
    truthy. ``params(ctx)`` builds the parameters from the interval, e.g. the interval end::

        SqlSensor("wait_for_orders", db=lambda s: s.source_db,
                  sql="SELECT EXISTS (SELECT 1 FROM orders WHERE order_ts >= ?)",
                  params=lambda ctx: [ctx.data_interval_end.strftime("%Y-%m-%d %H:%M:%S")])
    """

    def __init__(
        self,
        task_id: str,
        *,
        sql: str,
        db: Callable[[Settings], Path],
        params: Callable[[TaskContext], Sequence[Any]] = lambda ctx: (),
        **kw: Any,
    ) -> None:
        super().__init__(task_id, **kw)
        self.sql = sql
        self.db = db
        self.params = params

    def poke(self, ctx: TaskContext) -> tuple[bool, str]:
        path = Path(self.db(ctx.settings))
        if not path.exists():
            return False, f"database {path} does not exist yet"
        params = list(self.params(ctx))
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
            try:
                row = conn.execute(self.sql, params).fetchone()
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:  # locked or table not created yet: not ready
            return False, f"query failed: {exc}"
        except sqlite3.Error as exc:
            raise SourceError(f"sensor {self.task_id!r}: {exc}", database=str(path)) from exc
        return bool(row and row[0]), f"query on {path.name} with {params}"


class RunSensor(Sensor):
    """Waits for another pipeline's run for the same logical date (shifted by ``delta``) to succeed.

    Fails at once (no point waiting) when that run ended ``failed``.
    """

    def __init__(self, task_id: str, *, pipeline_id: str, delta: timedelta = timedelta(0), **kw: Any) -> None:
        super().__init__(task_id, **kw)
        self.upstream_pipeline = pipeline_id
        self.delta = delta

    def poke(self, ctx: TaskContext) -> tuple[bool, str]:
        from headwater.orchestration.state import iso

        target = iso(ctx.logical_date - self.delta)
        rows = ctx.store.query(
            "SELECT run_id, state FROM runs WHERE pipeline_id = ? AND logical_date = ?",
            (self.upstream_pipeline, target),
        )
        if not rows:
            return False, f"no run of {self.upstream_pipeline} for {target}"
        state = rows[0]["state"]
        if state == "failed":
            raise SourceError(
                f"upstream run {rows[0]['run_id']} failed", pipeline=self.upstream_pipeline, logical_date=target
            )
        return state == "success", f"run {rows[0]['run_id']} is {state}"
