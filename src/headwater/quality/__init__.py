"""Data quality: contracts and schema evolution, row rules with quarantine, batch monitors with history.

- :mod:`~headwater.quality.contracts`: one contract per dataset (raw sources and warehouse outputs);
- :mod:`~headwater.quality.gate`: the row gate derived from a contract (one DuckDB statement);
- :mod:`~headwater.quality.evolution`: schema changes on ingest (add / remove + approve / widen / block);
- :mod:`~headwater.quality.quarantine`: list, show, release quarantined rows;
- :mod:`~headwater.quality.monitors` and :mod:`~headwater.quality.validate`: output checks, monitors,
  the quality score and its alerts; :mod:`~headwater.quality.report`: the Rich + HTML report.
"""

import importlib
from typing import Any

_LAZY = {
    "CONTRACTS": "contracts", "Column": "contracts", "Contract": "contracts", "Rule": "contracts",
    "contract": "contracts", "is_safe_widening": "contracts",
    "approve_change": "evolution", "evolve": "evolution",
    "GateResult": "gate", "apply_gate": "gate",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """Resolve the public names on first use: the CLI imports this package for its commands, and the
    checks' DuckDB and Arrow imports should not slow down every ``headwater`` start."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater.quality' has no attribute {name!r}")
    return getattr(importlib.import_module(f"headwater.quality.{module}"), name)


__all__ = [
    "CONTRACTS",
    "Column",
    "Contract",
    "GateResult",
    "Rule",
    "apply_gate",
    "approve_change",
    "contract",
    "evolve",
    "is_safe_widening",
]
