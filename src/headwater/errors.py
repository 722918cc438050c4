"""One exception tree for Headwater.

Everything we raise derives from :class:`HeadwaterError`; adapters translate driver errors
(sqlite3, duckdb, pyarrow, ...) into these with ``raise ... from exc`` so nothing above an adapter
catches a driver's exception type. The split that matters for retries is *transient* vs *permanent*::

    HeadwaterError
    ├── ConfigError            user mistake: bad setting, bad date/range, unknown pipeline (permanent)
    ├── SourceError            a source cannot be read (permanent unless it is SourceNotReady)
    │   └── SourceNotReady     data for the interval has not landed yet (RetryableError too)
    ├── DataError              the data itself is wrong: contract, schema change, reconciliation (permanent)
    │   └── SchemaChangeError  a schema change that needs approval or is blocked
    ├── StorageError           lake / warehouse / run store write or read failed (permanent)
    └── RetryableError         transient: worth retrying with backoff (timeouts, locks, 5xx)

The CLI prints ``str(error)`` as one line and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

from typing import Any


class HeadwaterError(Exception):
    """Base of every Headwater error. ``fields`` carries structured context (dataset, partition...)."""

    retryable: bool = False

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {k: v for k, v in fields.items() if v is not None}

    def __str__(self) -> str:
        return self.message


class ConfigError(HeadwaterError):
    """A user mistake in settings or arguments."""


class SourceError(HeadwaterError):
    """A source is missing or unreadable."""


class RetryableError(HeadwaterError):
    """A transient failure: the same call may succeed later."""

    retryable = True


class SourceNotReady(SourceError, RetryableError):
    """The interval's data has not arrived (no ``_SUCCESS`` flag, no rows yet)."""

    retryable = True


class DataError(HeadwaterError):
    """The data violates a contract or an invariant; retrying will not help."""


class SchemaChangeError(DataError):
    """An incoming schema differs from the contract in a way that needs approval or is blocked."""


class StorageError(HeadwaterError):
    """Reading or writing the lake, the warehouse or a metadata store failed."""


def is_retryable(exc: BaseException) -> bool:
    """True when ``exc`` is marked transient; unknown exceptions are treated as permanent."""
    return bool(getattr(exc, "retryable", False))
