"""Batch scoring on DuckDB, under the import path callers have always used.

The engine lives in :mod:`pyrometer.engines.duckdb` (it runs the engine-neutral plan of
:mod:`pyrometer.engines.plan`); this module re-exports what callers import from here.
"""

from pyrometer.engines.duckdb import (
    EVENTS_PER_SLICE,
    OUTPUT_COLUMNS,
    WEIGHT_SAMPLE_ROWS,
    DuckDBBatchScorer,
    EventTable,
    LeadTable,
    connect,
)
from pyrometer.engines.plan.keys import KEY_CONDITIONS, PROOF_WORDS, TALLY_AT

__all__ = [
    "EVENTS_PER_SLICE",
    "KEY_CONDITIONS",
    "OUTPUT_COLUMNS",
    "PROOF_WORDS",
    "TALLY_AT",
    "WEIGHT_SAMPLE_ROWS",
    "DuckDBBatchScorer",
    "EventTable",
    "LeadTable",
    "connect",
]
