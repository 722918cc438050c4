"""Alert channels: where SLA misses and failed runs are raised.

One small Protocol (:class:`AlertChannel`: ``send`` + ``close``) with two builtin backends: the log
(a logger line plus an append-only JSONL file under HEADWATER_HOME) and a webhook (POST JSON, retried
with exponential backoff on connection errors, 429 and 5xx; other 4xx are permanent).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx

from headwater.config import Settings
from headwater.errors import HeadwaterError, RetryableError, SourceError
from headwater.resilience.retry import ExponentialBackoff

log = logging.getLogger("headwater.alerts")


@dataclass(frozen=True)
class Alert:
    """One notification; ``kind`` is e.g. ``sla_miss``, ``run_failed``, ``run_summary``."""

    kind: str
    pipeline_id: str
    run_id: str | None
    message: str
    severity: str = "warning"
    details: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AlertChannel(Protocol):
    """Delivers alerts; raises a :class:`HeadwaterError` when delivery finally failed."""

    name: str

    def send(self, alert: Alert) -> None: ...

    def close(self) -> None: ...


class LogChannel:
    """Logs each alert and appends it to ``path`` (JSONL) when given: a durable local trail."""

    name = "log"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        log.warning("[%s] %s: %s", alert.kind, alert.pipeline_id, alert.message)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(alert.to_json(), default=str) + "\n")

    def close(self) -> None:
        return None


class WebhookDeliveryError(RetryableError):
    """The endpoint answered 429/5xx or could not be reached (worth retrying)."""


class WebhookChannel:
    """POSTs ``alert.to_json()`` (or any JSON payload via :meth:`post`) to ``url`` with retries."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        attempts: int = 5,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        import httpx  # lazy: only webhook users pay for it

        self.url = url
        self._client = client or httpx.Client(timeout=timeout_s)
        self._own_client = client is None
        kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        self.retry = ExponentialBackoff(
            max_attempts=attempts, base_delay_s=base_delay_s, max_delay_s=max_delay_s, **kwargs
        )
        self.attempts_used = 0

    def _post_once(self, payload: dict[str, Any]) -> int:
        import httpx

        try:
            response = self._client.post(self.url, json=payload)
        except httpx.HTTPError as exc:
            raise WebhookDeliveryError(f"webhook {self.url} unreachable: {exc}", url=self.url) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise WebhookDeliveryError(f"webhook {self.url} answered {response.status_code}", url=self.url)
        if response.status_code >= 400:
            raise SourceError(f"webhook {self.url} rejected the post: {response.status_code}", url=self.url)
        return response.status_code

    def post(self, payload: dict[str, Any]) -> int:
        """Deliver one JSON payload; returns the attempts it took."""
        _, attempts = self.retry.call(lambda: self._post_once(payload))
        self.attempts_used = attempts
        return attempts

    def send(self, alert: Alert) -> None:
        self.post(alert.to_json())

    def close(self) -> None:
        if self._own_client:
            self._client.close()


def default_channels(settings: Settings) -> list[AlertChannel]:
    """The log (``home/alerts.jsonl``) plus a webhook when ``alert_webhook_url`` is set
    (``HEADWATER_ALERT_WEBHOOK_URL`` or ``headwater.toml``)."""
    channels: list[AlertChannel] = [LogChannel(Path(settings.home) / "alerts.jsonl")]
    if settings.alert_webhook_url is not None:
        channels.append(WebhookChannel(settings.alert_webhook_url.get_secret_value()))
    return channels


def send_all(channels: Sequence[AlertChannel], alert: Alert) -> list[str]:
    """Send to every channel; a failing channel does not stop the others. Returns failure messages."""
    failures = []
    for channel in channels:
        try:
            channel.send(alert)
        except HeadwaterError as exc:
            failures.append(f"{channel.name}: {exc}")
            log.error("alert channel %s failed: %s", channel.name, exc)
    return failures
