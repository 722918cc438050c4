"""Dates as the user types them: one parser, one error message, for every command."""

from __future__ import annotations

from datetime import date

from headwater.errors import ConfigError


def parse_day(value: str, option: str) -> date:
    """``YYYY-MM-DD`` or a one-line ConfigError naming the option."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option} {value!r} is not a date (expected YYYY-MM-DD)") from None
