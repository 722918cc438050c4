"""The processor runtime's garbage-collector setting: in effect while ``run`` runs, restored after."""

from __future__ import annotations

import gc

import pytest

from headwater.errors import ConfigError
from headwater.stream.config import RuleConfig, StreamConfig
from headwater.stream.rules import DEFAULT_HANDLERS
from tests.unit.stream_helpers import World, at, ticket

pytestmark = pytest.mark.usefixtures("engine")  # each test on both engines (tests/unit/conftest.py)


class Boom(Exception):
    pass


@pytest.fixture
def restore_gc():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def recording(seen: list[tuple[int, int, int]], fail: bool = False):
    def handler(ev, st, cfg):
        seen.append(gc.get_threshold())
        if fail:
            raise Boom("handler bug")
        return DEFAULT_HANDLERS["ticket_created"](ev, st, cfg)
    return handler


def test_run_uses_the_configured_gc_thresholds_and_restores_them(tmp_path, restore_gc):
    seen: list[tuple[int, int, int]] = []
    w = World(tmp_path, handlers=DEFAULT_HANDLERS | {"ticket_created": recording(seen)})
    counts = w.feed(ticket("t1", 1, at(0)), ticket("t2", 1, at(1)), ticket("t3", 1, at(2)))
    assert counts["processed"] == 3 and len(w.alerts()) == 1
    assert seen == [StreamConfig().gc_thresholds] * 3 == [(50_000, 20, 100)] * 3
    assert gc.get_threshold() == (700, 10, 10)


def test_gc_thresholds_none_leaves_the_collector_alone(tmp_path, restore_gc):
    seen: list[tuple[int, int, int]] = []
    config = StreamConfig(rules=RuleConfig(), batch_size=50, partitions=2, gc_thresholds=None)
    w = World(tmp_path, config, handlers=DEFAULT_HANDLERS | {"ticket_created": recording(seen)})
    w.feed(ticket("t1", 1, at(0)))
    assert seen == [(700, 10, 10)] and gc.get_threshold() == (700, 10, 10)


def test_thresholds_are_restored_when_the_run_fails(tmp_path, restore_gc):
    w = World(tmp_path, StreamConfig(rules=RuleConfig(), batch_size=50, partitions=2, gc_thresholds=(1234, 5, 6)))
    proc = w.processor()
    during: list[tuple[int, int, int]] = []

    def stop() -> bool:
        during.append(gc.get_threshold())
        raise Boom("interrupted")

    with pytest.raises(Boom):
        proc.run(until_idle=True, should_stop=stop)
    assert during == [(1234, 5, 6)] and gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize("bad", [(0, 10, 10), (700, 10), (700, -1, 10)])
def test_bad_gc_thresholds_are_rejected(bad):
    with pytest.raises(ConfigError):
        StreamConfig(gc_thresholds=bad)
