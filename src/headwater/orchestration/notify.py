"""``NotifyDownstream``: a task that posts the run's summary (task states, row counts) to a URL.

Without a URL the summary is written to ``HEADWATER_HOME/outbox/<run_id>.json`` instead, so the
step always leaves evidence of what it would have sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from headwater.config import Settings
from headwater.orchestration.context import TaskContext
from headwater.orchestration.pipeline import Task


def run_summary(ctx: TaskContext) -> dict[str, Any]:
    """The run as downstream consumers see it: interval, task states so far, row counts per step."""
    tasks = ctx.store.query(
        "SELECT task_id, state, try_number, duration_s FROM task_instances WHERE run_id = ? ORDER BY rowid",
        (ctx.run_id,),
    )
    steps = ctx.store.step_counts(ctx.run_id)
    return {
        "pipeline_id": ctx.pipeline_id,
        "run_id": ctx.run_id,
        "logical_date": ctx.logical_date.isoformat(),
        "data_interval": [ctx.data_interval_start.isoformat(), ctx.data_interval_end.isoformat()],
        "tasks": {r["task_id"]: r["state"] for r in tasks if r["task_id"] != ctx.task_id},
        "row_counts": {
            c.step: {"in": c.rows_in, "out": c.rows_out, "filtered": c.filtered, "rejected": c.rejected}
            for c in steps
        },
    }


class NotifyDownstream(Task):
    """Posts :func:`run_summary` as JSON with retries (``url`` may depend on settings)."""

    kind = "notify"

    def __init__(
        self,
        task_id: str = "notify_downstream",
        *,
        url: str | Callable[[Settings], str | None] | None = None,
        attempts: int = 5,
        base_delay_s: float = 0.5,
        **kw: Any,
    ) -> None:
        super().__init__(task_id, None, **kw)
        self.url = url
        self.attempts = attempts
        self.base_delay_s = base_delay_s

    def resolve_url(self, settings: Settings) -> str | None:
        url = self.url(settings) if callable(self.url) else self.url
        if url:
            return url
        return settings.notify_url.get_secret_value() if settings.notify_url is not None else None

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        from headwater.monitoring.alerts import WebhookChannel

        payload = run_summary(ctx)
        url = self.resolve_url(ctx.settings)
        if url is None:
            outbox = Path(ctx.settings.home) / "outbox"
            outbox.mkdir(parents=True, exist_ok=True)
            target = outbox / f"{ctx.run_id.replace(':', '-')}.json"
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
            tmp.replace(target)
            return {"notified": str(target)}
        channel = WebhookChannel(url, attempts=self.attempts, base_delay_s=self.base_delay_s)
        try:
            attempts = channel.post(payload)
        finally:
            channel.close()
        return {"notified": url, "attempts": attempts}
