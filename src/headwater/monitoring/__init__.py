"""Monitoring: alert channels (log, webhook) and SLA evaluation."""

from headwater.monitoring.alerts import Alert, AlertChannel, LogChannel, WebhookChannel, channels_from_env, send_all
from headwater.monitoring.sla import sla_deadline, sla_status

__all__ = [
    "Alert",
    "AlertChannel",
    "LogChannel",
    "WebhookChannel",
    "channels_from_env",
    "send_all",
    "sla_deadline",
    "sla_status",
]
