"""The SQLite event log: partitions by key, offsets, consumer groups, atomic transactions, retention."""

from __future__ import annotations

import sqlite3

import pytest

from headwater.errors import ConfigError, StorageError
from headwater.stream.log import Committed, EventLog, LogRecord, Record, append, iter_topic, partition_for
from headwater.stream.sqlite_log import PAGE_SIZE, LogBusyError, SqliteLog


@pytest.fixture
def log(tmp_path):
    lg = SqliteLog(tmp_path / "log.sqlite", default_partitions=3)
    lg.open()
    yield lg
    lg.close()


def test_is_an_event_log(log):
    assert isinstance(log, EventLog)


def test_records_route_by_key_and_keep_order_per_partition(log):
    recs = [Record(str(i % 5), f"v{i}") for i in range(50)]
    positions = append(log, "t", recs)
    for rec, (p, _) in zip(recs, positions, strict=True):
        assert p == partition_for(rec.key, 3)
    for p in range(3):
        got = log.read("t", p, 0, 100)
        assert [r.offset for r in got] == list(range(len(got)))
        assert [r.value for r in got] == [r.value for r in recs if partition_for(r.key, 3) == p]
    assert sum(n for _, n in log.end_offsets("t").values()) == 50
    assert partition_for("42", 3) == partition_for("42", 3) and partition_for(None, 3) == 0


def test_read_from_offset_with_limit(log):
    append(log, "t", [Record(None, str(i)) for i in range(10)])
    assert [r.value for r in log.read("t", 0, 4, 3)] == ["4", "5", "6"]
    assert log.read("t", 0, 10, 5) == []


def test_read_gives_whole_log_records(log):
    log.clock = lambda: 1234.5678
    append(log, "t", [Record("k", "v0"), Record("k", "v1")])
    p = partition_for("k", 3)
    got = log.read("t", p, 1, 5)
    assert got == [LogRecord("t", p, 1, "k", "v1", 1234567)]
    assert type(got[0]) is LogRecord and got[0].appended_ms == 1234567 and got[0].topic == "t"


def test_read_values_are_the_records_offset_key_and_value(log):
    append(log, "t", [Record("k", f"v{i}") for i in range(6)] + [Record(None, "none")])
    for p in range(log.partitions("t")):
        assert log.read_values("t", p, 1, 4) == [(r.offset, r.key, r.value) for r in log.read("t", p, 1, 4)]
    p = partition_for("k", log.partitions("t"))
    assert log.read_values("t", p, 4, 10) == [(4, "k", "v4"), (5, "k", "v5")] + (
        [(6, None, "none")] if p == 0 else [])


def test_consumer_groups_are_independent(log):
    with log.transaction() as tx:
        tx.commit_offsets("a", "t", {0: Committed(5, "x"), 1: Committed(2)})
        tx.commit_offsets("b", "t", {0: Committed(1)})
    assert log.committed("a", "t") == {0: Committed(5, "x"), 1: Committed(2, "")}
    assert log.committed("b", "t") == {0: Committed(1, "")}
    assert log.committed("c", "t") == {}


def test_transaction_is_atomic(log):
    with pytest.raises(RuntimeError), log.transaction() as tx:
        tx.append("t", [Record("1", "lost")])
        tx.commit_offsets("g", "t", {0: Committed(9)})
        raise RuntimeError("crash before commit")
    assert list(iter_topic(log, "t")) == [] and log.committed("g", "t") == {}
    assert append(log, "t", [Record(None, "kept")]) == [(0, 0)]  # offsets did not advance either


def test_durable_across_reopen(tmp_path):
    path = tmp_path / "log.sqlite"
    with SqliteLog(path) as a:
        append(a, "t", [Record("k", "v")])
    with SqliteLog(path) as b:
        assert [r.value for r in iter_topic(b, "t")] == ["v"]


def test_retention_by_count_and_age(tmp_path):
    now = [1000.0]
    lg = SqliteLog(tmp_path / "log.sqlite", default_partitions=1, clock=lambda: now[0])
    lg.open()
    lg.create_topic("bycount", retention_records=3)
    lg.create_topic("byage", retention_ms=10_000)
    append(lg, "bycount", [Record(None, str(i)) for i in range(10)])
    append(lg, "byage", [Record(None, "old")])
    now[0] = 1020.0
    append(lg, "byage", [Record(None, "new")])
    assert lg.enforce_retention() == 8
    assert [r.value for r in iter_topic(lg, "bycount")] == ["7", "8", "9"]
    assert [r.value for r in iter_topic(lg, "byage")] == ["new"]
    assert lg.end_offsets("bycount") == {0: (7, 10)}
    assert append(lg, "bycount", [Record(None, "x")]) == [(0, 10)]  # offsets never reused


def test_topic_names_are_checked(log):
    with pytest.raises(ConfigError):
        log.create_topic("bad name!")


def test_existing_topic_keeps_its_partitions(log):
    log.create_topic("t", 2)
    assert log.create_topic("t", 8).partitions == 2


def test_sqlite_errors_are_translated(tmp_path, log):
    blocker = sqlite3.connect(tmp_path / "log.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    busy = SqliteLog(tmp_path / "log.sqlite", busy_timeout_s=0.05)
    busy.open()
    with pytest.raises(LogBusyError) as info:
        append(busy, "t", [Record(None, "x")])
    assert info.value.retryable
    blocker.execute("ROLLBACK")
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(StorageError):
        SqliteLog(tmp_path / "dir.sqlite").open()


def test_customer_key_matches_how_validation_reads_ids():
    from headwater.stream.loader import customer_key, key_of

    assert customer_key(42) == customer_key("42") == customer_key(42.0) == customer_key(" 42") == "42"
    assert customer_key(True) is None and customer_key("x") is None and customer_key(1.5) is None
    assert key_of("not json") is None and key_of('{"customer_id": 7}') == "7"


def test_a_new_log_has_16k_pages_and_an_existing_file_keeps_its_own(tmp_path):
    new = SqliteLog(tmp_path / "new.sqlite")
    new.open()
    assert new.connection.execute("PRAGMA page_size").fetchone() == (PAGE_SIZE,) == (16384,)
    assert new.connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (2048,)  # still ~32 MiB of WAL
    new.close()
    old_path = tmp_path / "old.sqlite"
    con = sqlite3.connect(old_path)
    con.execute("PRAGMA page_size=4096")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x)")
    con.close()
    old = SqliteLog(old_path)
    old.open()
    with old.transaction() as tx:
        tx.append("customer_events", [Record("1", "{}")])
    assert old.connection.execute("PRAGMA page_size").fetchone() == (4096,)
    assert [r.value for r in iter_topic(old, "customer_events")] == ["{}"]
    old.close()
