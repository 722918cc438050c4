"""Data quality: contracts and schema evolution, row rules with quarantine, batch monitors with history.

- :mod:`~headwater.quality.contracts`: one contract per dataset (raw sources and warehouse outputs);
- :mod:`~headwater.quality.gate`: the row gate derived from a contract (one DuckDB statement);
- :mod:`~headwater.quality.evolution`: schema changes on ingest (add / remove + approve / widen / block);
- :mod:`~headwater.quality.quarantine`: list, show, release quarantined rows;
- :mod:`~headwater.quality.monitors` and :mod:`~headwater.quality.validate`: output checks, monitors,
  the quality score and its alerts; :mod:`~headwater.quality.report`: the Rich + HTML report.
"""

from headwater.quality.contracts import CONTRACTS, Column, Contract, Rule, contract, is_safe_widening
from headwater.quality.evolution import approve_change, evolve
from headwater.quality.gate import GateResult, apply_gate

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
