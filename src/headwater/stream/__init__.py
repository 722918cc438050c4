"""Speed layer: customer events -> at-risk alerts in milliseconds, exactly once across crashes.

Layers, by file: ``log`` (the EventLog protocol) and ``sqlite_log`` (its embedded implementation),
``events`` (one-pass validation), ``state`` (keyed state store), ``rules`` (alert rules in event
time), ``checkpoint`` and ``processor`` (the runtime), ``loader`` (pull ingestion), ``dlq`` (dead
letters in a topic), ``jobs`` (run, replay, summary, ``demo_run``), ``synthetic`` (seeded test
streams), ``cli`` (``headwater events|stream|dlq``). Push ingestion lives in ``headwater.serving.ingest``.
"""

from headwater.stream.config import RuleConfig, StreamConfig, log_path, stream_config
from headwater.stream.jobs import demo_run, replay
from headwater.stream.log import EventLog, LogRecord, Record
from headwater.stream.processor import Processor
from headwater.stream.sqlite_log import SqliteLog
from headwater.stream.state import SqliteStateStore, StateStore

__all__ = [
    "EventLog",
    "LogRecord",
    "Processor",
    "Record",
    "RuleConfig",
    "SqliteLog",
    "SqliteStateStore",
    "StateStore",
    "StreamConfig",
    "demo_run",
    "log_path",
    "replay",
    "stream_config",
]
