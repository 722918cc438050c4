"""Settings: arguments > ``HEADWATER_*`` environment > ``headwater.toml`` > defaults.

Every path hangs off ``home`` (``HEADWATER_HOME``, default ``./.headwater``) unless set on its own,
so a whole world (sources, lake, warehouse, run store) can live in one throwaway folder in a test.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, model_validator

from headwater.errors import ConfigError

ENV_PREFIX = "HEADWATER_"
CONFIG_FILE_ENV = "HEADWATER_CONFIG"
DEFAULT_CONFIG_FILE = "headwater.toml"


_HOME_RELATIVE = {
    "source_db": ("sources", "oltp.sqlite"),
    "landing_dir": ("landing",),
    "events_file": ("events", "customer_events.jsonl"),
    "lake_dir": ("lake",),
    "warehouse": ("warehouse", "warehouse.duckdb"),
    "run_store": ("runs.sqlite",),
}


class Settings(BaseModel):
    """Frozen settings of one Headwater installation; unset paths are derived from ``home``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path = Path(".headwater")
    source_db: Path  # OLTP stand-in (SQLite) holding customers and orders
    landing_dir: Path  # daily file drops, each day completed by a _SUCCESS flag
    events_file: Path  # the generator's time-ordered customer events (JSONL)
    lake_dir: Path  # raw zone, staging and quarantine as Parquet
    warehouse: Path  # DuckDB file
    run_store: Path  # SQLite run log / run store
    large_refund_threshold: float = 500.0
    # URLs may embed tokens: SecretStr keeps them out of reprs and logs.
    alert_webhook_url: SecretStr | None = None  # alerts (SLA misses, failed runs, quality) are POSTed here
    notify_url: SecretStr | None = None  # notify_downstream POSTs each run's summary here

    @model_validator(mode="before")
    @classmethod
    def _derive_paths(cls, data: Any) -> Any:
        data = dict(data)
        home = Path(data.get("home") or ".headwater").expanduser()
        data["home"] = home
        for name, parts in _HOME_RELATIVE.items():
            if data.get(name) in (None, ""):
                data[name] = home.joinpath(*parts)
        return data


def _from_env() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in Settings.model_fields:
        value = os.environ.get(ENV_PREFIX + field.upper())
        if value not in (None, ""):
            out[field] = value
    return out


def _from_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        env_path = os.environ.get(CONFIG_FILE_ENV)
        path = Path(env_path) if env_path else Path(DEFAULT_CONFIG_FILE)
        if not path.exists():
            if env_path:
                raise ConfigError(f"config file {path} (from {CONFIG_FILE_ENV}) does not exist")
            return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    return dict(data.get("headwater", data))


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Merge the layers (later wins): file, environment, explicit non-None overrides."""
    merged = _from_file(config_file) | _from_env() | {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {where!r}: {first['msg']}") from exc
