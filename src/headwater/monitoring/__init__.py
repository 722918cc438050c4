"""Monitoring: alert channels (log, webhook) and SLA evaluation."""

from headwater.monitoring.alerts import Alert, AlertChannel, LogChannel, WebhookChannel, default_channels, send_all
from headwater.monitoring.sla import sla_deadline, sla_status

__all__ = [
    "Alert",
    "AlertChannel",
    "LogChannel",
    "WebhookChannel",
    "default_channels",
    "send_all",
    "sla_deadline",
    "sla_status",
]
