"""Stream tests run on both engines: the compiled core and its Python reference."""

from __future__ import annotations

import pytest

from headwater.stream.native import ENGINE_ENV


@pytest.fixture(params=["native", "python"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Use as ``pytestmark = pytest.mark.usefixtures("engine")``: every test runs once per engine
    (``native`` fails, not skips, when the core is not installed)."""
    monkeypatch.setenv(ENGINE_ENV, request.param)
    return request.param
