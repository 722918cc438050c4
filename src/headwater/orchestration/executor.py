"""Running one try of a task instance on a worker thread and classifying its outcome.

The worker decides the next state from the error's own marker (:func:`headwater.errors.is_retryable`):
transient errors become ``up_for_retry`` while retries remain, anything else ``failed``. It does not
touch scheduling state; the scheduler records the outcome (single writer).
"""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from headwater.errors import is_retryable
from headwater.orchestration.context import TaskContext, TaskTimeout
from headwater.orchestration.pipeline import SkipTask, Task, TaskOptions
from headwater.orchestration.run_store import StepCounts
from headwater.orchestration.sensors import PokeResult, Sensor, SensorTimeout
from headwater.orchestration.tasklogs import capturing, log_path

log = logging.getLogger("headwater.orchestration")


@dataclass
class Outcome:
    """What one try produced; ``next_attempt_at`` is set for retries and sensor reschedules."""

    state: str
    duration_s: float
    error: str | None = None
    retry_delay_s: float | None = None
    next_attempt_at: datetime | None = None
    poke: tuple[int, bool, str | None] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def _call_with_timeout(task: Task, ctx: TaskContext, timeout: timedelta | None) -> Any:
    """Run ``task.execute``; with a timeout it runs on a helper thread we stop waiting for.

    Python cannot kill a thread: on timeout ``ctx.cancelled`` is set (cooperative tasks call
    ``ctx.check_cancelled()``) and the try fails with :class:`TaskTimeout`. Tasks are idempotent, so a
    late finish of the abandoned try is harmless.
    """
    if timeout is None:
        return task.execute(ctx)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = task.execute(ctx)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    context = contextvars.copy_context()  # keeps the try's log capture in the helper thread
    helper = threading.Thread(target=context.run, args=(target,), name=f"task-{task.task_id}", daemon=True)
    helper.start()
    helper.join(timeout.total_seconds())
    if helper.is_alive():
        ctx.cancelled.set()
        raise TaskTimeout(f"task {task.task_id!r} exceeded its execution timeout of {timeout}")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _record_result(ctx: TaskContext, result: Any) -> None:
    items = result if isinstance(result, list | tuple) else [result]
    for item in items:
        if isinstance(item, StepCounts):
            ctx.record(item)
    if isinstance(result, dict):
        ctx.metrics.update(result)


def _callback(name: str, opts: TaskOptions, ctx: TaskContext, error: BaseException | None) -> None:
    fn = getattr(opts, name)
    if fn is None:
        return
    try:
        fn(ctx, error)
    except Exception:  # a broken callback must not change the task's outcome
        ctx.log.exception("%s callback of %s failed", name, ctx.task_id)


def run_try(
    task: Task,
    ctx: TaskContext,
    *,
    failures: int,
    pokes: int,
    first_poke_at: datetime | None,
    now: datetime,
    rng: random.Random,
) -> Outcome:
    """Execute one try and classify it. ``now`` is the scheduler clock at submission."""
    with capturing(log_path(ctx.settings.home, ctx.run_id, ctx.task_id, ctx.try_number)):
        return _run_try(task, ctx, failures=failures, pokes=pokes, first_poke_at=first_poke_at, now=now, rng=rng)


def _run_try(
    task: Task,
    ctx: TaskContext,
    *,
    failures: int,
    pokes: int,
    first_poke_at: datetime | None,
    now: datetime,
    rng: random.Random,
) -> Outcome:
    opts = task.options()
    started = time.perf_counter()
    try:
        result = _call_with_timeout(task, ctx, opts.execution_timeout)
    except SkipTask as exc:
        return Outcome("skipped", time.perf_counter() - started, error=str(exc) or "skipped")
    except Exception as exc:
        duration = time.perf_counter() - started
        message = f"{type(exc).__name__}: {exc}"
        if is_retryable(exc) and failures < opts.retries:
            delay = opts.retry_wait(failures + 1)
            if opts.jitter:
                delay *= 1 + opts.jitter * (2 * rng.random() - 1)
            ctx.log.warning("try %d failed (%s); retrying in %.3fs", ctx.try_number, message, delay)
            _callback("on_retry", opts, ctx, exc)
            return Outcome(
                "up_for_retry", duration, error=message, retry_delay_s=delay,
                next_attempt_at=now + timedelta(seconds=delay),
            )
        kind = "transient, retries exhausted" if is_retryable(exc) else "permanent"
        ctx.log.error("try %d failed (%s): %s", ctx.try_number, kind, message)
        if not isinstance(exc, SensorTimeout) and not is_retryable(exc):
            ctx.log.debug("%s", "".join(traceback.format_exception(exc)))
        _callback("on_failure", opts, ctx, exc)
        return Outcome("failed", duration, error=message, metrics=dict(ctx.metrics))
    duration = time.perf_counter() - started
    if isinstance(task, Sensor) and isinstance(result, PokeResult):
        poke = (pokes + 1, result.ready, result.detail)
        if result.ready:
            _callback("on_success", opts, ctx, None)
            return Outcome("success", duration, poke=poke, metrics={"pokes": pokes + 1})
        waited = now - (first_poke_at or now)
        if waited >= task.timeout:
            error = (
                f"SensorTimeout: sensor {task.task_id!r} timed out after {task.timeout} "
                f"({pokes + 1} pokes); still missing: {result.detail or 'condition not met'}"
            )
            _callback("on_failure", opts, ctx, SensorTimeout(error))
            return Outcome("failed", duration, error=error, poke=poke)
        return Outcome(
            "up_for_reschedule", duration, poke=poke, next_attempt_at=now + task.poke_interval,
            error=None,
        )
    _record_result(ctx, result)
    _callback("on_success", opts, ctx, None)
    return Outcome("success", duration, metrics=dict(ctx.metrics))
