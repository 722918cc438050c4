"""Synthetic world generator: a realistic, seeded customer world in the formats the sources read.

``generate_world(settings, WorldSpec(customers, days, start, seed, bad_records), progress=None)``
replaces the world under ``settings`` and returns a ``WorldManifest`` (also ``home/world.json``):

- ``settings.source_db``: SQLite ``customers`` and ``orders`` (``order_ts``/``updated_at`` as
  ``YYYY-MM-DD HH:MM:SS`` UTC, 2-decimal ``total_amount``, index ``orders_by_ts``, WAL mode).
- ``settings.landing_dir/{support_tickets,marketing_events}/date=YYYY-MM-DD/part-0000.jsonl`` and
  an empty ``_SUCCESS`` written last, for every day of the range (empty part file on quiet days).
- ``settings.events_file``: time-ordered JSONL of ``order_placed`` (not for cancelled orders),
  ``ticket_created`` and ``refund_issued`` with the same ids and timestamps as the sources.

The same spec gives byte-identical files. With ``bad_records > 0`` about that share of each
dataset is corrupted, split evenly over the dataset's kinds (see ``ORDER_BAD_KINDS``,
``TICKET_BAD_KINDS``, ``MARKETING_BAD_KINDS``, ``EVENT_BAD_KINDS``); ``world.json`` holds the exact
count and the first ids of every kind. ``estimate_orders(spec)`` predicts the order count cheaply.
"""

from headwater.synth.events import EVENT_BAD_KINDS
from headwater.synth.landing import MARKETING_BAD_KINDS, TICKET_BAD_KINDS
from headwater.synth.oltp import ORDER_BAD_KINDS
from headwater.synth.spec import BadRecordKind, WorldManifest, WorldSpec
from headwater.synth.world import MANIFEST_FILE, estimate_orders, generate_world

__all__ = [
    "EVENT_BAD_KINDS",
    "MARKETING_BAD_KINDS",
    "ORDER_BAD_KINDS",
    "TICKET_BAD_KINDS",
    "MANIFEST_FILE",
    "BadRecordKind",
    "WorldManifest",
    "WorldSpec",
    "estimate_orders",
    "generate_world",
]
