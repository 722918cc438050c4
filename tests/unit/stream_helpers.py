"""Hand-made event sequences for the stream tests (no dependency on the project generator)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from headwater.stream.config import RuleConfig, StreamConfig
from headwater.stream.log import CUSTOMER_ALERTS, Record, iter_topic
from headwater.stream.processor import Processor, sqlite_processor
from headwater.stream.sqlite_log import SqliteLog

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def at(days: float = 0, hours: float = 0) -> str:
    return (T0 + timedelta(days=days, hours=hours)).isoformat().replace("+00:00", "Z")


def ticket(eid: str, cust: int, when: str, priority: str = "low") -> str:
    return json.dumps({"event_id": eid, "event_type": "ticket_created", "customer_id": cust, "timestamp": when,
                       "payload": {"ticket_id": "T" + eid, "priority": priority, "category": "billing"}})


def order(eid: str, cust: int, when: str, amount: str = "100.00") -> str:
    return json.dumps({"event_id": eid, "event_type": "order_placed", "customer_id": cust, "timestamp": when,
                       "payload": {"order_id": int(eid.strip("E") or 1), "amount": amount}})


def refund(eid: str, cust: int, when: str, amount: str) -> str:
    return json.dumps({"event_id": eid, "event_type": "refund_issued", "customer_id": cust, "timestamp": when,
                       "payload": {"order_id": 7, "amount": amount}})


class World:
    """A real SQLite log + processor in a temp dir; feed lines, run until idle, read outputs."""

    def __init__(self, tmp: Path, config: StreamConfig | None = None, **proc_kwargs: object) -> None:
        self.config = config or StreamConfig(rules=RuleConfig(), batch_size=50, partitions=2)
        self.log = SqliteLog(tmp / "log.sqlite", default_partitions=self.config.partitions)
        self.log.open()
        self.proc_kwargs = proc_kwargs

    def processor(self) -> Processor:
        proc = sqlite_processor(self.log, self.config, **self.proc_kwargs)
        proc.open()
        return proc

    def feed(self, *lines: str, key: str | None = "1") -> dict[str, int]:
        with self.log.transaction() as tx:
            tx.append("customer_events", [Record(key, line) for line in lines])
        return self.processor().run(until_idle=True)

    def alerts(self) -> list[dict]:
        return [json.loads(r.value) for r in iter_topic(self.log, CUSTOMER_ALERTS)]

    def topic(self, name: str) -> list[dict]:
        return [json.loads(r.value) for r in iter_topic(self.log, name)]


def corruptions(lines: list[str], per_line: int, seed: int) -> Iterator[str]:
    """``per_line`` random 1-3 character edits of each line (replace, delete, insert), seeded."""
    rng = random.Random(seed)
    alphabet = '0123456789.:-TZ"{},[] aez\\'
    for line in lines:
        for _ in range(per_line):
            chars = list(line)
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(chars))
                op = rng.random()
                if op < 0.4:
                    chars[i] = rng.choice(alphabet)
                elif op < 0.7:
                    del chars[i]
                else:
                    chars.insert(i, rng.choice(alphabet))
            yield "".join(chars)
