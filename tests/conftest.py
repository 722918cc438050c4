"""Shared fixtures: small hand-made worlds written as the real sources (SQLite + landing drops)."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.config import Settings
from headwater.orchestration.run_store import RunStore
from tests.helpers.world import TinyWorld


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "hw")


@pytest.fixture
def world(settings: Settings) -> TinyWorld:
    return TinyWorld(settings)


@pytest.fixture
def store(settings: Settings):
    s = RunStore(settings.run_store)
    yield s
    s.close()
