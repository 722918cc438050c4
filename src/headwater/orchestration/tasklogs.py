"""Per-try task logs: ``HEADWATER_HOME/logs/<run_id>/<task_id>/try-<n>.log``.

While a try runs, its identity sits in a context variable of the worker thread; a handler on the
``headwater`` logger appends every record emitted in that thread (the task's own ``ctx.log`` and the
modules it calls, e.g. the batch steps) to the try's file. Records from other threads are ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

_current: ContextVar[Path | None] = ContextVar("headwater_task_log", default=None)
_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def log_path(home: Path, run_id: str, task_id: str, try_number: int) -> Path:
    return Path(home) / "logs" / run_id.replace(":", "-") / task_id / f"try-{try_number}.log"


@contextmanager
def capturing(path: Path) -> Iterator[None]:
    """Route this thread's ``headwater.*`` log records to ``path`` for the duration (the file is
    created on the first record: quiet tries leave nothing behind)."""
    token = _current.set(path)
    try:
        yield
    finally:
        _current.reset(token)


class _TaskLogHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._lock_files = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        path = _current.get()
        if path is None:
            return
        try:
            line = _FORMAT.format(record)
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock_files, open(path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        except Exception:  # logging must never break a task
            self.handleError(record)


@contextmanager
def task_logs_enabled() -> Iterator[None]:
    """Install the handler on the ``headwater`` logger (INFO and up) while the scheduler runs."""
    logger = logging.getLogger("headwater")
    handler = _TaskLogHandler()
    previous = logger.level
    logger.addHandler(handler)
    if previous == logging.NOTSET or previous > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
