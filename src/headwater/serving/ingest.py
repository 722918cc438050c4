"""Push ingestion: ``POST /events`` (a JSON array of events) appends to ``customer_events``.

Each event's *envelope* (event_id, event_type, customer_id, timestamp) is checked here: one bad
envelope rejects the whole batch with a 400 that names the event index and the problem, and
nothing is appended (so a client can fix and resend the batch as a unit). An envelope that is fine
but whose payload is bad is accepted (202) and dead-lettered by the processor with its reason: what
a client sent is never lost. A busy log answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from headwater.errors import RetryableError, StorageError
from headwater.stream.events import parse_envelope
from headwater.stream.loader import customer_key
from headwater.stream.log import CUSTOMER_EVENTS, Record
from headwater.stream.sqlite_log import SqliteLog

MAX_BATCH = 10_000


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(log_file: Path, *, partitions: int = 4) -> FastAPI:
    """The ingest API over the SQLite log at ``log_file`` (one connection, writes serialised)."""
    log = SqliteLog(log_file, default_partitions=partitions)
    lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.open()
        try:
            yield
        finally:
            log.close()

    app = FastAPI(title="Headwater ingest", version="1", lifespan=lifespan)

    def _append(records: list[Record]) -> list[tuple[int, int]]:
        with lock, log.transaction() as tx:
            return tx.append(CUSTOMER_EVENTS, records)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/events", status_code=202)
    async def post_events(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            events = json.loads(body)
        except ValueError as exc:
            return _error(400, f"body is not valid JSON: {exc}")
        if not isinstance(events, list):
            return _error(400, "body must be a JSON array of events")
        if not events:
            return _error(400, "empty batch: send at least one event")
        if len(events) > MAX_BATCH:
            return _error(413, f"batch of {len(events)} events exceeds the limit of {MAX_BATCH}")
        for i, event in enumerate(events):
            problem = parse_envelope(event)
            if problem:
                return _error(400, f"event {i}: {problem}", index=i, event_id=_id(event))
        records = [Record(customer_key(e["customer_id"]), json.dumps(e, separators=(",", ":"))) for e in events]
        try:
            positions = await run_in_threadpool(_append, records)
        except RetryableError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "1"})
        except StorageError as exc:
            return _error(500, str(exc))
        return JSONResponse({"accepted": len(records),
                             "positions": [{"partition": p, "offset": o} for p, o in positions]}, status_code=202)

    return app


def _id(event: object) -> object:
    return event.get("event_id") if isinstance(event, dict) else None


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory headwater.serving.ingest:app_from_env`` (settings from env/toml)."""
    from headwater.config import load_settings
    from headwater.stream.config import log_path

    return create_app(log_path(load_settings()))
