"""A tiny world builder: hand-placed customers, orders, tickets and marketing events, written in the
exact formats of the real sources, so tests exercise the real extract and ingest code."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, timedelta
from pathlib import Path

from headwater.config import Settings
from headwater.sources.landing import SUCCESS_FLAG, drop_dir


class TinyWorld:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.customers: list[tuple] = []
        self.orders: list[tuple] = []
        self.lines: dict[str, dict[date, list[bytes]]] = {"support_tickets": {}, "marketing_events": {}}
        self._next_order = 1

    def customer(self, customer_id: int, signup: str = "2024-01-01") -> TinyWorld:
        self.customers.append((customer_id, f"Customer {customer_id}", f"c{customer_id}@example.com", "DE", signup))
        return self

    def order(
        self,
        customer_id: int | None,
        ts: str | None,
        amount: float | str | None,
        status: str | None = "completed",
        order_id: int | None = None,
        updated_at: str | None = None,
    ) -> TinyWorld:
        oid = order_id if order_id is not None else self._next_order
        self._next_order = max(self._next_order, oid) + 1
        self.orders.append((oid, customer_id, ts, amount, status, updated_at or ts))
        return self

    def ticket(
        self,
        day: str,
        ticket_id: str,
        customer_id: int,
        created_at: str,
        priority: str = "low",
        category: str = "billing",
        resolved_at: str | None = None,
    ) -> TinyWorld:
        return self.line(
            "support_tickets",
            day,
            {
                "ticket_id": ticket_id,
                "customer_id": customer_id,
                "created_at": created_at,
                "category": category,
                "priority": priority,
                "resolved_at": resolved_at,
            },
        )

    def marketing(
        self, day: str, event_id: str, customer_id: int, event_type: str, event_ts: str, campaign_id: str = "C0001"
    ) -> TinyWorld:
        return self.line(
            "marketing_events",
            day,
            {
                "event_id": event_id,
                "customer_id": customer_id,
                "event_type": event_type,
                "event_ts": event_ts,
                "campaign_id": campaign_id,
            },
        )

    def line(self, dataset: str, day: str, obj: dict | bytes | str) -> TinyWorld:
        raw = obj if isinstance(obj, bytes) else (obj if isinstance(obj, str) else json.dumps(obj)).encode()
        self.lines[dataset].setdefault(date.fromisoformat(day), []).append(raw)
        return self

    def write(self, start: str, end: str, flags: bool = True) -> TinyWorld:
        """Write the SQLite source and a drop (with flag) for every day in [start, end]."""
        db = Path(self.settings.source_db)
        db.parent.mkdir(parents=True, exist_ok=True)
        db.unlink(missing_ok=True)
        con = sqlite3.connect(db)
        con.executescript(
            "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, email TEXT, country TEXT,"
            " signup_date TEXT);"
            "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER, order_ts TEXT,"
            " total_amount NUMERIC, status TEXT, updated_at TEXT);"
            "CREATE INDEX orders_by_ts ON orders (order_ts);"
            "CREATE INDEX orders_by_updated_at ON orders (updated_at);"
        )
        con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", self.customers)
        con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", self.orders)
        con.commit()
        con.close()
        day, last = date.fromisoformat(start), date.fromisoformat(end)
        while day <= last:
            for dataset, by_day in self.lines.items():
                folder = drop_dir(self.settings.landing_dir, dataset, day)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "part-0000.jsonl").write_bytes(b"".join(x + b"\n" for x in by_day.get(day, [])))
                if flags:
                    (folder / SUCCESS_FLAG).touch()
            day += timedelta(days=1)
        return self
