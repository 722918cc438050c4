"""The pipeline model: tasks and sensors wired with ``>>`` into a DAG, declared first and run later.

A :class:`Pipeline` is a plain value: it can be inspected (:meth:`Pipeline.describe`), validated,
drawn, exported to Airflow, and run by the embedded scheduler. Nothing runs when it is declared::

    pipe = Pipeline("sales", schedule="@daily", start_date=date(2024, 1, 1), sla=timedelta(hours=6))

    @pipe.task(outputs=["raw.orders"], retries=3)
    def extract(ctx): ...

    wait = pipe.add(LandingFlagSensor("wait_for_tickets", dataset="support_tickets"))
    [wait, extract] >> pipe.task(load)
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

from headwater.errors import ConfigError
from headwater.orchestration.schedule import Schedule, make_schedule, to_utc

if TYPE_CHECKING:
    from headwater.orchestration.context import TaskContext

TriggerRule = Literal["all_success", "all_done", "none_failed", "one_success", "one_failed"]
TRIGGER_RULES: tuple[str, ...] = get_args(TriggerRule)
Callback = Callable[["TaskContext", BaseException | None], None]
_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


class SkipTask(Exception):  # noqa: N818 - control flow, not an error
    """Raise inside a task to mark it ``skipped`` (downstream ``all_success`` tasks skip too)."""


@dataclass(frozen=True)
class TaskOptions:
    """How a task instance is run; pipeline defaults merged with per-task overrides.

    Retries apply to *retryable* errors only (:func:`headwater.errors.is_retryable`): a ``DataError``
    fails at once. The wait before retry ``n`` is ``retry_delay * 2**(n-1)`` (or constant without
    ``exponential_backoff``), capped at ``max_retry_delay``, then spread by ``+-jitter`` (a fraction).
    """

    retries: int = 0
    retry_delay: timedelta = timedelta(seconds=30)
    exponential_backoff: bool = True
    max_retry_delay: timedelta = timedelta(minutes=30)
    jitter: float = 0.0
    execution_timeout: timedelta | None = None
    trigger_rule: TriggerRule = "all_success"
    depends_on_past: bool = False  # run only once this task succeeded in the previous interval's run
    on_success: Callback | None = None
    on_failure: Callback | None = None
    on_retry: Callback | None = None

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"jitter must be a fraction in [0, 1], got {self.jitter}")
        if self.trigger_rule not in TRIGGER_RULES:
            raise ConfigError(f"unknown trigger rule {self.trigger_rule!r}; use one of {TRIGGER_RULES}")

    def retry_wait(self, failed_try: int) -> float:
        """Seconds to wait after the ``failed_try``-th failure (1-based), before jitter."""
        base = self.retry_delay.total_seconds()
        raw = base * (2 ** (failed_try - 1)) if self.exponential_backoff else base
        return min(raw, self.max_retry_delay.total_seconds())


_OPTION_NAMES = frozenset(f.name for f in fields(TaskOptions))


def _as_list(x: Task | Sequence[Task]) -> list[Task]:
    return [x] if isinstance(x, Task) else list(x)


class Task:
    """A unit of work: ``fn(ctx)`` returning nothing, :class:`StepCounts`, a list of them, or a dict.

    ``inputs``/``outputs`` name the datasets read and written, so lineage can be derived from the
    definition. Option keyword arguments (``retries=3``...) override the pipeline's defaults.
    """

    kind = "task"

    def __init__(
        self,
        task_id: str,
        fn: Callable[[TaskContext], Any] | None = None,
        *,
        inputs: Iterable[str] = (),
        outputs: Iterable[str] = (),
        doc: str | None = None,
        **options: Any,
    ) -> None:
        if not _ID.match(task_id):
            raise ConfigError(f"task id {task_id!r} must match {_ID.pattern}")
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise ConfigError(f"task {task_id!r}: unknown options {sorted(unknown)}")
        self.task_id = task_id
        self.fn = fn
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.doc = doc or (fn.__doc__.strip().splitlines()[0] if fn and fn.__doc__ else None)
        self.overrides = dict(options)
        self.upstream_ids: set[str] = set()
        self.downstream_ids: set[str] = set()
        self.pipeline: Pipeline | None = None

    def execute(self, ctx: TaskContext) -> Any:
        """Run the work once; subclasses (sensors, notifications) override this."""
        if self.fn is None:
            raise ConfigError(f"task {self.task_id!r} has no function")
        return self.fn(ctx)

    def options(self) -> TaskOptions:
        base = self.pipeline.default_options if self.pipeline else TaskOptions()
        return replace(base, **self.overrides) if self.overrides else base

    # -- wiring -------------------------------------------------------------------------------
    def set_downstream(self, others: Task | Sequence[Task]) -> None:
        for other in _as_list(others):
            owner = self.pipeline or other.pipeline
            if owner is None:
                raise ConfigError(f"add {self.task_id!r} or {other.task_id!r} to a pipeline before wiring")
            for t in (self, other):
                if t.pipeline is None:
                    owner.add(t)
                elif t.pipeline is not owner:
                    raise ConfigError(f"{self.task_id!r} and {other.task_id!r} belong to different pipelines")
            self.downstream_ids.add(other.task_id)
            other.upstream_ids.add(self.task_id)

    def __rshift__(self, other: Task | Sequence[Task]) -> Task | Sequence[Task]:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: Task | Sequence[Task]) -> Task | Sequence[Task]:
        for o in _as_list(other):
            o.set_downstream(self)
        return other

    def __rrshift__(self, other: Sequence[Task]) -> Task:  # [a, b] >> self
        for o in _as_list(other):
            o.set_downstream(self)
        return self

    def __rlshift__(self, other: Sequence[Task]) -> Task:  # [a, b] << self
        self.set_downstream(other)
        return self

    def describe(self) -> dict[str, Any]:
        opts = self.options()
        return {
            "task_id": self.task_id,
            "kind": self.kind,
            "upstream": sorted(self.upstream_ids),
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "retries": opts.retries,
            "trigger_rule": opts.trigger_rule,
            "depends_on_past": opts.depends_on_past,
            "execution_timeout_s": opts.execution_timeout.total_seconds() if opts.execution_timeout else None,
            "doc": self.doc,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task_id}>"


class Pipeline:
    """A DAG of tasks with a schedule; see the module docstring for an example."""

    def __init__(
        self,
        pipeline_id: str,
        *,
        schedule: str | timedelta | Schedule | None = "@daily",
        start_date: date | datetime,
        end_date: date | datetime | None = None,
        catchup: bool = True,
        max_active_runs: int = 1,
        default_options: TaskOptions | None = None,
        tags: Iterable[str] = (),
        sla: timedelta | None = None,
        description: str = "",
    ) -> None:
        if not _ID.match(pipeline_id):
            raise ConfigError(f"pipeline id {pipeline_id!r} must match {_ID.pattern}")
        if max_active_runs < 1:
            raise ConfigError(f"max_active_runs must be >= 1, got {max_active_runs}")
        self.pipeline_id = pipeline_id
        self.start_date = to_utc(start_date)
        self.end_date = to_utc(end_date) if end_date is not None else None
        self.schedule_spec = schedule
        self.schedule = make_schedule(schedule, self.start_date)
        self.catchup = catchup
        self.max_active_runs = max_active_runs
        self.default_options = default_options or TaskOptions()
        self.tags = tuple(tags)
        self.sla = sla
        self.description = description
        self.tasks: dict[str, Task] = {}
        self._order: list[str] | None = None

    def add(self, task: Task) -> Task:
        if task.pipeline is self:
            return task
        if task.pipeline is not None:
            raise ConfigError(f"task {task.task_id!r} already belongs to {task.pipeline.pipeline_id!r}")
        if task.task_id in self.tasks:
            raise ConfigError(f"pipeline {self.pipeline_id!r} already has a task {task.task_id!r}")
        task.pipeline = self
        self.tasks[task.task_id] = task
        self._order = None
        return task

    def task(
        self, fn: Callable[[TaskContext], Any] | None = None, *, task_id: str | None = None, **kw: Any
    ) -> Any:
        """Add ``fn`` as a task; usable as ``pipe.task(fn)``, ``@pipe.task`` or ``@pipe.task(retries=2)``."""

        def wrap(f: Callable[[TaskContext], Any]) -> Task:
            return self.add(Task(task_id or f.__name__, f, **kw))

        return wrap(fn) if fn is not None else wrap

    def topological_order(self) -> list[str]:
        """Task ids, upstream first (declaration order among peers); raises on a cycle."""
        if self._order is not None:
            return self._order
        remaining = {tid: len(t.upstream_ids) for tid, t in self.tasks.items()}
        ready = [tid for tid, n in remaining.items() if n == 0]
        order: list[str] = []
        while ready:
            tid = ready.pop(0)
            order.append(tid)
            for down in self.tasks[tid].downstream_ids:
                remaining[down] -= 1
                if remaining[down] == 0:
                    ready.append(down)
        if len(order) != len(self.tasks):
            stuck = sorted(set(self.tasks) - set(order))
            raise ConfigError(f"pipeline {self.pipeline_id!r} has a cycle through {stuck}")
        self._order = order
        return order

    def validate(self) -> Pipeline:
        if not self.tasks:
            raise ConfigError(f"pipeline {self.pipeline_id!r} has no tasks")
        self.topological_order()
        return self

    def with_dates(self, start_date: date | datetime, end_date: date | datetime | None = None) -> Pipeline:
        """A copy over another date range sharing the same tasks (e.g. the demo's synthetic world)."""
        clone = copy.copy(self)
        clone.start_date = to_utc(start_date)
        clone.end_date = to_utc(end_date) if end_date is not None else None
        clone.schedule = make_schedule(self.schedule_spec, clone.start_date)
        return clone

    def lineage(self) -> list[tuple[str, str, str]]:
        """Dataset-level edges ``(input, task_id, output)`` from the declared inputs/outputs; a task
        without inputs (a source reader) or outputs (a check) contributes ``""`` on that side."""
        edges = []
        for tid in self.topological_order():
            t = self.tasks[tid]
            for i in t.inputs or ("",):
                for o in t.outputs or ("",):
                    edges.append((i, tid, o))
        return edges

    def describe(self) -> dict[str, Any]:
        """A JSON-able description: what an exporter (Airflow) or a drawing needs."""
        return {
            "pipeline_id": self.pipeline_id,
            "schedule": self.schedule.expression if self.schedule else None,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat() if self.end_date else None,
            "catchup": self.catchup,
            "max_active_runs": self.max_active_runs,
            "tags": list(self.tags),
            "sla_s": self.sla.total_seconds() if self.sla else None,
            "description": self.description,
            "tasks": [self.tasks[t].describe() for t in self.topological_order()],
        }

    def __repr__(self) -> str:
        return f"<Pipeline {self.pipeline_id} tasks={len(self.tasks)}>"
