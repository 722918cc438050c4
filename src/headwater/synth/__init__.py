"""Synthetic world generator: a realistic, seeded customer world in the formats the sources read.

``generate_world(settings, WorldSpec(...))`` writes the SQLite OLTP stand-in, the landing-zone
drops, the customer-event log and ``world.json`` (exact counts, including every injected bad record).
"""

from headwater.synth.spec import BadRecordKind, WorldManifest, WorldSpec
from headwater.synth.world import MANIFEST_FILE, estimate_orders, generate_world

__all__ = [
    "MANIFEST_FILE",
    "BadRecordKind",
    "WorldManifest",
    "WorldSpec",
    "estimate_orders",
    "generate_world",
]
