"""The DuckDB batch engine: a whole event table, as of one time, in vectorised SQL.

It runs the engine-neutral plan (:mod:`pyrometer.engines.plan`): :mod:`.tables` are its
inputs, :mod:`.sql` spells the plan's expressions, :mod:`.pass1` and :mod:`.pass2` build
the passes, and :mod:`.run` orders them. A Spark engine mirrors this folder.
"""

from pyrometer.engines.duckdb.run import EVENTS_PER_SLICE, WEIGHT_SAMPLE_ROWS, DuckDBBatchScorer
from pyrometer.engines.duckdb.tables import EventTable, LeadTable, connect
from pyrometer.engines.plan.leads import OUTPUT_COLUMNS

__all__ = [
    "EVENTS_PER_SLICE",
    "OUTPUT_COLUMNS",
    "WEIGHT_SAMPLE_ROWS",
    "DuckDBBatchScorer",
    "EventTable",
    "LeadTable",
    "connect",
]
