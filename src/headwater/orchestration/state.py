"""Orchestration tables in the run store: task instances, tries, sensor pokes, SLA misses.

They live in the ``orchestration`` migration namespace next to ``core`` (runs, step counts,
watermarks), so the batch code and the scheduler share one SQLite file. States::

    run:            queued -> running -> success | failed
    task instance:  scheduled -> running -> success | failed | skipped
                                        -> up_for_retry      -> running ...   (transient error)
                                        -> up_for_reschedule -> running ...   (sensor not ready)
                    scheduled -> upstream_failed | skipped                   (trigger rule)

Every transition is written before the scheduler acts on it, which is what makes a SIGKILL safe:
on restart, instances left ``running`` were interrupted and are scheduled again; ``success`` ones are
never re-run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from headwater.orchestration.run_store import RunStore, register_migrations

register_migrations(
    "orchestration",
    [
        "ALTER TABLE runs ADD COLUMN queued_at TEXT",
        "ALTER TABLE runs ADD COLUMN sla_deadline TEXT",
        "ALTER TABLE runs ADD COLUMN sla_status TEXT",
        "CREATE INDEX runs_by_state ON runs (state, pipeline_id)",
        """CREATE TABLE task_instances (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            task_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            state TEXT NOT NULL,
            try_number INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            max_retries INTEGER NOT NULL DEFAULT 0,
            pokes INTEGER NOT NULL DEFAULT 0,
            started_at TEXT,
            finished_at TEXT,
            duration_s REAL,
            next_attempt_at TEXT,
            first_poke_at TEXT,
            error TEXT,
            metrics TEXT,
            PRIMARY KEY (run_id, task_id)
        )""",
        """CREATE TABLE task_tries (
            run_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            try_number INTEGER NOT NULL,
            state TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            duration_s REAL,
            error TEXT,
            retry_delay_s REAL,
            PRIMARY KEY (run_id, task_id, try_number)
        )""",
        """CREATE TABLE sensor_pokes (
            run_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            poke_number INTEGER NOT NULL,
            poked_at TEXT NOT NULL,
            ready INTEGER NOT NULL,
            detail TEXT,
            PRIMARY KEY (run_id, task_id, poke_number)
        )""",
        """CREATE TABLE sla_misses (
            run_id TEXT PRIMARY KEY,
            pipeline_id TEXT NOT NULL,
            deadline TEXT NOT NULL,
            detected_at TEXT NOT NULL,
            notified INTEGER NOT NULL,
            detail TEXT
        )""",
    ],
)

TERMINAL_TASK_STATES = frozenset({"success", "failed", "skipped", "upstream_failed"})
ACTIVE_RUN_STATES = ("queued", "running")


def iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="milliseconds") if t is not None else None


def parse_ts(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class NewRun:
    run_id: str
    pipeline_id: str
    interval_start: datetime
    interval_end: datetime
    trigger: str
    sla_deadline: datetime | None


class OrchestrationStore:
    """Typed reads and writes of the orchestration tables on top of a :class:`RunStore`."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        store.migrate()  # the namespace may have been registered after the store was opened

    # -- runs -------------------------------------------------------------------------------
    def create_runs(self, runs: Sequence[NewRun], now: datetime) -> int:
        """Insert queued runs; existing run ids are left alone. Returns how many were new."""
        created = 0
        with self.store.transaction() as conn:
            for r in runs:
                cur = conn.execute(
                    "INSERT INTO runs (run_id, pipeline_id, logical_date, interval_start, interval_end, state, "
                    "trigger, started_at, queued_at, sla_deadline, sla_status) "
                    "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
                    (
                        r.run_id, r.pipeline_id, iso(r.interval_start), iso(r.interval_start),
                        iso(r.interval_end), r.trigger, iso(now), iso(now), iso(r.sla_deadline),
                        "pending" if r.sla_deadline else None,
                    ),
                )
                created += cur.rowcount
        return created

    def logical_dates(self, pipeline_id: str) -> set[str]:
        rows = self.store.query("SELECT logical_date FROM runs WHERE pipeline_id = ?", (pipeline_id,))
        return {r["logical_date"] for r in rows}

    def active_runs(self, pipeline_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = list(pipeline_ids)
        if not ids:
            return []
        rows = self.store.query(
            "SELECT * FROM runs WHERE state IN ('queued', 'running') AND trigger IN ('scheduled', 'backfill') "
            "AND pipeline_id IN (SELECT value FROM json_each(?)) ORDER BY logical_date",
            (json.dumps(ids),),
        )
        return [dict(r) for r in rows]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self.store.query("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return dict(rows[0]) if rows else None

    def list_runs(self, pipeline_id: str | None = None, last: int = 20) -> list[dict[str, Any]]:
        sql = (
            "SELECT r.*, (SELECT COUNT(*) FROM task_instances t WHERE t.run_id = r.run_id) AS tasks, "
            "(SELECT COUNT(*) FROM task_instances t WHERE t.run_id = r.run_id AND t.state = 'success') "
            "AS tasks_ok, (SELECT SUM(rows_out) FROM step_counts s WHERE s.run_id = r.run_id) AS rows_out "
            "FROM runs r WHERE (? IS NULL OR r.pipeline_id = ?) ORDER BY r.logical_date DESC, r.run_id LIMIT ?"
        )
        return [dict(r) for r in self.store.query(sql, (pipeline_id, pipeline_id, last))]

    def set_run_state(
        self, run_id: str, state: str, now: datetime, error: str | None = None, finished: bool = False
    ) -> None:
        with self.store.transaction() as conn:
            if state == "running":
                conn.execute(
                    "UPDATE runs SET state = 'running', started_at = ?, finished_at = NULL, error = NULL "
                    "WHERE run_id = ?",
                    (iso(now), run_id),
                )
            else:
                conn.execute(
                    "UPDATE runs SET state = ?, error = ?, finished_at = ? WHERE run_id = ?",
                    (state, error, iso(now) if finished else None, run_id),
                )

    def requeue_run(self, run_id: str, now: datetime, task_states: Sequence[str] | None) -> None:
        """Put a finished run back in the queue; reset the task instances in ``task_states`` (None: all)."""
        with self.store.transaction() as conn:
            if task_states is None:
                conn.execute("DELETE FROM task_instances WHERE run_id = ?", (run_id,))
            else:
                conn.execute(
                    "UPDATE task_instances SET state = 'scheduled', failures = 0, next_attempt_at = NULL, "
                    "first_poke_at = NULL, error = NULL WHERE run_id = ? "
                    "AND state IN (SELECT value FROM json_each(?))",
                    (run_id, json.dumps(list(task_states))),
                )
            conn.execute(
                "UPDATE runs SET state = 'queued', queued_at = ?, finished_at = NULL, error = NULL, "
                "sla_status = CASE WHEN sla_status = 'missed' THEN 'missed' "
                "WHEN sla_deadline IS NULL THEN NULL ELSE 'pending' END WHERE run_id = ?",
                (iso(now), run_id),
            )

    # -- task instances -----------------------------------------------------------------------
    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT * FROM task_instances WHERE run_id = ? ORDER BY rowid", (run_id,))
        return [dict(r) for r in rows]

    def insert_task_instances(self, run_id: str, tasks: Sequence[tuple[str, str, int]]) -> None:
        """(task_id, kind, max_retries) rows in state ``scheduled``; existing ones are kept."""
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO task_instances (run_id, task_id, kind, state, max_retries) "
                "VALUES (?, ?, ?, 'scheduled', ?) ON CONFLICT (run_id, task_id) DO NOTHING",
                [(run_id, tid, kind, retries) for tid, kind, retries in tasks],
            )

    def mark_running(self, rows: Sequence[tuple[str, str, int, bool]], now: datetime) -> None:
        """(run_id, task_id, try_number, first_poke) instances about to start, in one transaction."""
        t = iso(now)
        with self.store.transaction() as conn:
            conn.executemany(
                "UPDATE task_instances SET state = 'running', try_number = ?, started_at = ?, finished_at = NULL, "
                "next_attempt_at = NULL, first_poke_at = CASE WHEN ? THEN ? ELSE first_poke_at END "
                "WHERE run_id = ? AND task_id = ?",
                [(n, t, first, t, run_id, task_id) for run_id, task_id, n, first in rows],
            )
            conn.executemany(
                "INSERT INTO task_tries (run_id, task_id, try_number, state, started_at) "
                "VALUES (?, ?, ?, 'running', ?) ON CONFLICT (run_id, task_id, try_number) DO UPDATE SET "
                "state = 'running', started_at = excluded.started_at, finished_at = NULL, error = NULL",
                [(run_id, task_id, n, t) for run_id, task_id, n, _ in rows],
            )

    def finish_try(self, run_id: str, task_id: str, **outcome: Any) -> None:
        self.finish_tries([{"run_id": run_id, "task_id": task_id, **outcome}])

    def finish_tries(self, items: Sequence[dict[str, Any]]) -> None:
        """Record tries' outcomes (and sensor pokes) in one transaction. Each item has run_id, task_id,
        state, try_number, failures, now, duration_s and optionally error, next_attempt_at,
        retry_delay_s, metrics, poke=(number, ready, detail)."""
        with self.store.transaction() as conn:
            for o in items:
                state, poke, metrics = o["state"], o.get("poke"), o.get("metrics")
                now = iso(o["now"])
                conn.execute(
                    "UPDATE task_instances SET state = ?, failures = ?, finished_at = ?, duration_s = ?, "
                    "error = ?, next_attempt_at = ?, metrics = COALESCE(?, metrics), pokes = pokes + ? "
                    "WHERE run_id = ? AND task_id = ?",
                    (
                        state, o["failures"], now, o["duration_s"], o.get("error"), iso(o.get("next_attempt_at")),
                        json.dumps(metrics, default=str) if metrics else None, 1 if poke else 0,
                        o["run_id"], o["task_id"],
                    ),
                )
                conn.execute(
                    "UPDATE task_tries SET state = ?, finished_at = ?, duration_s = ?, error = ?, retry_delay_s = ? "
                    "WHERE run_id = ? AND task_id = ? AND try_number = ?",
                    (
                        "rescheduled" if state == "up_for_reschedule" else state, now, o["duration_s"],
                        o.get("error"), o.get("retry_delay_s"), o["run_id"], o["task_id"], o["try_number"],
                    ),
                )
                if poke is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO sensor_pokes (run_id, task_id, poke_number, poked_at, ready, detail) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (o["run_id"], o["task_id"], poke[0], now, int(poke[1]), poke[2]),
                    )

    def set_task_states(self, run_id: str, changes: Sequence[tuple[str, str, str | None]], now: datetime) -> None:
        """Trigger-rule outcomes (task_id, state, reason) decided without running the task."""
        with self.store.transaction() as conn:
            conn.executemany(
                "UPDATE task_instances SET state = ?, error = ?, finished_at = ? WHERE run_id = ? AND task_id = ?",
                [(state, reason, iso(now), run_id, tid) for tid, state, reason in changes],
            )

    def recover_interrupted(self, now: datetime) -> int:
        """Instances left ``running`` by a killed scheduler go back to ``scheduled``; their try is
        recorded as ``interrupted`` (it does not count as a failure). Call only while holding the lock."""
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE task_tries SET state = 'interrupted', finished_at = ? WHERE state = 'running'", (iso(now),)
            )
            cur = conn.execute(
                "UPDATE task_instances SET state = 'scheduled', error = 'interrupted (scheduler stopped)' "
                "WHERE state = 'running'"
            )
            return cur.rowcount

    def tries(self, run_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT * FROM task_tries WHERE run_id = ? AND (? IS NULL OR task_id = ?) ORDER BY task_id, try_number",
            (run_id, task_id, task_id),
        )
        return [dict(r) for r in rows]

    def pokes(self, run_id: str, task_id: str) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT * FROM sensor_pokes WHERE run_id = ? AND task_id = ? ORDER BY poke_number", (run_id, task_id)
        )
        return [dict(r) for r in rows]

    # -- SLA ----------------------------------------------------------------------------------
    def set_sla_status(self, run_id: str, status: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE runs SET sla_status = ? WHERE run_id = ?", (status, run_id))

    def record_sla_miss(
        self, run_id: str, pipeline_id: str, deadline: datetime, now: datetime, notified: bool, detail: str
    ) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE runs SET sla_status = 'missed' WHERE run_id = ?", (run_id,))
            conn.execute(
                "INSERT OR REPLACE INTO sla_misses (run_id, pipeline_id, deadline, detected_at, notified, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, pipeline_id, iso(deadline), iso(now), int(notified), detail),
            )

    def sla_misses(self, pipeline_id: str | None = None) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT * FROM sla_misses WHERE (? IS NULL OR pipeline_id = ?) ORDER BY deadline",
            (pipeline_id, pipeline_id),
        )
        return [dict(r) for r in rows]
