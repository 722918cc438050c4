"""Headwater: fresh, trustworthy customer analytics from raw orders, tickets and events."""

from headwater.config import Settings, load_settings
from headwater.errors import (
    ConfigError,
    DataError,
    HeadwaterError,
    RetryableError,
    SchemaChangeError,
    SourceError,
    SourceNotReady,
    StorageError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "HeadwaterError",
    "RetryableError",
    "SchemaChangeError",
    "Settings",
    "SourceError",
    "SourceNotReady",
    "StorageError",
    "__version__",
    "load_settings",
]
