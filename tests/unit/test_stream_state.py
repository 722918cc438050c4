"""The changelog state store: round trips, expiry, compaction, rollback, and state written before it."""

from __future__ import annotations

import marshal
import random
import sqlite3
from array import array

import pytest

from headwater.errors import StorageError
from headwater.stream.config import StreamConfig
from headwater.stream.log import Record
from headwater.stream.rules import DEFAULT_HANDLERS, evict
from headwater.stream.sqlite_log import LogBusyError, SqliteLog
from headwater.stream.state import (
    SEGMENTS,
    STATE_FORMAT_LISTS,
    STATE_FORMAT_MARSHAL,
    CustomerState,
    SqliteStateStore,
    StateItem,
)
from tests.unit.stream_helpers import World, at, order, ticket

pytestmark = pytest.mark.usefixtures("engine")  # each test on both engines (tests/unit/conftest.py)

NS = "headwater-stream"


@pytest.fixture
def log(tmp_path):
    lg = SqliteLog(tmp_path / "log.sqlite")
    lg.open()
    yield lg
    lg.close()


def store_on(log: SqliteLog, **kwargs: int) -> SqliteStateStore:
    store = SqliteStateStore(log, NS, **kwargs)
    store.open()
    return store


def put(log: SqliteLog, store: SqliteStateStore, *items: StateItem) -> None:
    with log.transaction():
        store.put(items)


def rows(log: SqliteLog) -> list[tuple[int, int | None]]:
    """(seq, segment) of every changelog row: segment None for a change row, else a segment snapshot."""
    return log.connection.execute("SELECT seq, segment FROM stream_state_log ORDER BY seq").fetchall()


def test_puts_and_deletes_round_trip_through_a_reopen(log):
    store = store_on(log)
    put(log, store, StateItem(1, 0, b"a", 100), StateItem(2, 1, b"bb", 200))
    put(log, store, StateItem(1, 0, b"a2", 150), StateItem(2, 1, None), StateItem(3, 1, b"c", 300))
    assert store.get(1) == b"a2" and store.get(2) is None and store.get(3) == b"c"
    again = store_on(log)
    assert again.items() == [(1, 0, 150, b"a2"), (3, 1, 300, b"c")]
    assert again.stats() == (2, 3)
    assert len(rows(log)) == 2  # one row per put, not one per key


def test_a_rolled_back_transaction_leaves_nothing_and_a_reopen_forgets_it(log):
    store = store_on(log)
    put(log, store, StateItem(1, 0, b"a", 100))
    with pytest.raises(RuntimeError), log.transaction():
        store.put([StateItem(1, 0, b"lost", 100), StateItem(2, 0, b"lost", 100)])
        raise RuntimeError("crash before commit")
    assert store.stats() == (1, 1)  # what is committed
    store.open()
    assert store.items() == [(1, 0, 100, b"a")]


def test_delete_expired_drops_only_expired_keys_of_the_partition(log):
    store = store_on(log)
    put(log, store, StateItem(1, 0, b"a", 100), StateItem(2, 0, b"b", 300), StateItem(3, 1, b"c", 100))
    put(log, store, StateItem(1, 0, b"a", 400))  # key 1 got younger: its old expiry is stale
    with log.transaction():
        assert store.delete_expired(0, 350) == 1  # only key 2 (expires 300); key 3 is in partition 1
    assert [k for k, *_ in store.items()] == [1, 3]
    assert [k for k, *_ in store_on(log).items()] == [1, 3]
    with log.transaction():
        assert store.delete_expired(0, 350) == 0
    with log.transaction():
        assert store.delete_expired(0, 450) == 1  # key 1, re-queued at its later expiry, goes then
    put(log, store, StateItem(4, 0, b"d", 900), StateItem(5, 0, b"e", 900))
    put(log, store, StateItem(4, 0, b"d", 500))  # an expiry may also move earlier
    with log.transaction():
        assert store.delete_expired(0, 600) == 1 and store.delete_expired(0, 600) == 0
    assert [k for k, *_ in store_on(log).items()] == [3, 5]


def test_compaction_keeps_the_changelog_short_and_the_state_whole(log):
    store = store_on(log, compact_min_bytes=2000)
    expected = {}
    for round_ in range(80):
        items = [StateItem(k, k % 3, bytes([round_]) * 50, 1000 + round_) for k in range(round_ % 7, 40, 3)]
        gone = [StateItem(k, k % 3, None) for k in range(40, 44) if round_ % 11 == 0]
        put(log, store, *items, *gone)
        if round_ % 11 == 5:
            put(log, store, *[StateItem(k, k % 3, b"x", 10**6) for k in range(40, 44)])
            expected.update({k: (k, k % 3, 10**6, b"x") for k in range(40, 44)})
        for g in gone:
            expected.pop(g.key, None)
        expected.update({i.key: (i.key, i.partition, i.expires_ms, i.value) for i in items})
        assert store_on(log).items() == sorted(expected.values()), round_  # any prefix restores exactly
    seqs = rows(log)
    assert {seg for _, seg in seqs if seg is not None} == set(range(SEGMENTS))  # every segment snapshotted
    assert seqs[0][0] > 80 and len(seqs) <= 2 * SEGMENTS + 2  # and the rows they supersede deleted


def test_a_segment_snapshot_is_small(log):
    store = store_on(log, compact_min_bytes=1)
    put(log, store, *[StateItem(k, 0, bytes([k % 250]) * 100, 5) for k in range(320)])
    sizes = log.connection.execute(
        "SELECT segment, LENGTH(changes) FROM stream_state_log WHERE segment IS NOT NULL").fetchall()
    assert len(sizes) == 1 and sizes[0][1] < 320 * 100 / SEGMENTS * 1.5  # one segment's 20 keys, not all 320
    assert len(store_on(log).items()) == 320


def test_namespaces_are_independent(log):
    a, b = store_on(log), SqliteStateStore(log, "other")
    b.open()
    put(log, a, StateItem(1, 0, b"a", 100))
    with log.transaction():
        b.put([StateItem(1, 0, b"b", 100)])
    assert store_on(log).get(1) == b"a"
    other = SqliteStateStore(log, "other")
    other.open()
    assert other.get(1) == b"b"


def _legacy_file(path, values: dict[int, bytes]) -> None:
    """A log file as Headwater wrote it before the changelog: one stream_state row per key."""
    con = sqlite3.connect(path)
    con.execute("""CREATE TABLE stream_state (
        namespace TEXT NOT NULL, key INTEGER NOT NULL, partition INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY (namespace, key)) WITHOUT ROWID""")
    con.executemany("INSERT INTO stream_state VALUES (?, ?, ?, ?, ?)",
                    [(NS, k, 1, 10**13, v) for k, v in values.items()] + [("other", 9, 0, 5, b"x")])
    con.commit()
    con.close()


def test_state_of_formats_1_and_2_in_the_old_table_is_read_then_moved(tmp_path):
    v1 = STATE_FORMAT_LISTS + marshal.dumps((1, [[5, "E1", True, False, False, False]], [[4, 1000]], {"E1": 5},
                                             False, False, 5), 4)
    v2 = STATE_FORMAT_MARSHAL + marshal.dumps((1, [[7, "E2", False, False, False, False]], array("q", [6]).tobytes(),
                                               array("q", [250]).tobytes(), {}, True, False, 7), 4)
    path = tmp_path / "log.sqlite"
    _legacy_file(path, {1: v1, 2: v2})
    log = SqliteLog(path)
    log.open()
    store = store_on(log)
    assert store.get(1) == v1 and store.get(2) == v2
    assert CustomerState.decode(store.get(1)).orders() == [[4, 1000]]
    assert CustomerState.decode(store.get(2)).tail_cond is True
    put(log, store, StateItem(3, 1, b"new", 10**13))
    assert log.connection.execute("SELECT namespace FROM stream_state").fetchall() == [("other",)]
    assert [seg for _, seg in rows(log)][-SEGMENTS:] == list(range(SEGMENTS))  # moved into every segment
    assert [k for k, *_ in store_on(log).items()] == [1, 2, 3]
    log.close()


def test_a_processor_resumes_on_state_from_the_old_table(tmp_path):
    # run on the changelog, copy its state into an old-style file, and continue there: same alerts
    cfg = StreamConfig(batch_size=2, partitions=1)
    first = [ticket("E1", 1, at(0)), ticket("E2", 1, at(1))]
    rest = [ticket("E3", 1, at(2)), order("E4", 1, at(3))]
    ref = World(tmp_path / "ref", cfg)
    ref.feed(*first, *rest)
    old = World(tmp_path / "old", cfg)
    old.feed(*first)
    values = dict((k, v) for k, _, _, v in store_on(old.log).items())
    old.log.connection.execute("DELETE FROM stream_state_log")
    old.log.close()
    _legacy_file(tmp_path / "old" / "log.sqlite", values)
    old.log.open()
    old.feed(*rest)
    assert old.alerts() == ref.alerts() and len(ref.alerts()) == 1


def test_an_unknown_state_format_is_a_clear_error():
    with pytest.raises(StorageError, match="unknown state format"):
        CustomerState.decode(b"\x09junk")


def test_a_restarted_processor_continues_from_the_restored_state(tmp_path):
    cfg = StreamConfig(batch_size=3, partitions=2)
    lines = [ticket(f"E{i}", i % 4, at(i / 3), "high" if i % 5 == 0 else "low") for i in range(40)]
    one, two = World(tmp_path / "one", cfg), World(tmp_path / "two", cfg)
    one.feed(*lines)
    two.feed(*lines[:17])  # a processor stops here ...
    two.feed(*lines[17:])  # ... and a new one (new store, restored from the changelog) goes on
    assert two.alerts() == one.alerts() and len(one.alerts()) > 3

    def decoded(w: World) -> list[tuple[int, int, str]]:
        return [(k, e, CustomerState.decode(v).to_json()) for k, _, e, v in store_on(w.log).items()]

    assert decoded(two) == decoded(one) and len(decoded(one)) == 4


def test_rules_see_state_as_if_evicted_on_every_event(tmp_path):
    # eviction runs only when a customer's due_ms says something is due; before every handler the
    # tickets and orders must still be exactly what evicting at the current watermark leaves
    rng = random.Random(11)
    lines, t = [], 0.0
    for i in range(900):
        t += rng.expovariate(1 / 0.3)  # days; ~270 days in all: tickets and orders leave their windows
        when = at(t - (rng.uniform(0, 0.035) if rng.random() < 0.1 else 0))  # some up to ~50 min late
        cust, kind = rng.choice((1, 2, 3)), rng.random()
        if kind < 0.35:
            lines.append(ticket(f"E{i}", cust, when, "high" if rng.random() < 0.4 else "low"))
        else:
            lines.append(order(f"E{i}", cust, when, f"{rng.randint(1, 90000) / 100:.2f}"))
    holder, checked = {}, []

    def guarded(handler):
        def run(ev, st, cfg):
            ref = CustomerState.decode(st.encode())
            evict(ref, holder["proc"].checkpoints[st.partition].watermark_ms, cfg)
            assert (ref.tickets, ref.orders(), ref.tail_cond, ref.tail_alerted) == (
                st.tickets, st.orders(), st.tail_cond, st.tail_alerted), ev.event_id
            checked.append(ev.event_id)
            return handler(ev, st, cfg)
        return run

    cfg = StreamConfig(batch_size=64, partitions=1)
    w = World(tmp_path, cfg, handlers={k: guarded(h) for k, h in DEFAULT_HANDLERS.items()})
    with w.log.transaction() as tx:
        tx.append("customer_events", [Record("1", line) for line in lines])
    proc = holder["proc"] = w.processor()
    counts = proc.run(until_idle=True)
    assert counts["processed"] == len(checked) > 850 and counts["late"] == 0
    assert len(w.alerts()) > 10


def test_a_corrupt_stored_state_is_a_storage_error(tmp_path):
    w = World(tmp_path)
    w.feed(ticket("E1", 1, at(0)))
    store = store_on(w.log)
    [(key, partition, expires, value)] = store.items()
    put(w.log, store, StateItem(key, partition, value[:-3], expires))
    with pytest.raises(StorageError, match="corrupt state blob"):
        w.feed(ticket("E2", 1, at(1)))


def test_a_checkpoint_tried_again_after_a_failed_write_commits_the_same_state(tmp_path):
    lines = [ticket(f"E{i}", 7, at(i), "high") for i in range(3)] + [order("E9", 8, at(4))]
    ref = World(tmp_path / "ref")
    ref.feed(*lines)
    w = World(tmp_path / "w")
    with w.log.transaction() as tx:
        tx.append("customer_events", [Record("1", line) for line in lines])
    proc = w.processor()
    proc.poll()  # 4 events, fewer than a batch: no checkpoint yet
    real_put = proc.state.put

    def put_failing_once(items):
        proc.state.put = real_put
        raise LogBusyError("database is locked (simulated)")

    proc.state.put = put_failing_once
    with pytest.raises(LogBusyError):
        proc.checkpoint()
    proc.checkpoint()  # tried again in the same process: the changed customers are still changed
    assert [(k, v) for k, _, _, v in store_on(w.log).items()] == [(k, v) for k, _, _, v in store_on(ref.log).items()]
    assert len(store_on(w.log).items()) == 2 and w.alerts() == ref.alerts() and len(ref.alerts()) == 1
