"""The Spark engine: the same compiled plan as DuckDB, run on a cluster.

It mirrors :mod:`pyrometer.engines.duckdb`: :mod:`.frames` are its inputs (a data
engineer's DataFrames or a lake of Parquet files), :mod:`.columns` spells the plan's
expressions as Spark columns, :mod:`.run` orders the passes, and :mod:`.session` makes a
session for ``local[*]``, ``spark://`` or ``yarn``. Needs the ``spark`` extra
(``pip install 'pyrometer[spark]'``) and a Java runtime.
"""

from pyrometer.engines.plan.leads import OUTPUT_COLUMNS
from pyrometer.engines.spark.frames import (
    EventFrame,
    LeadFrame,
    events_frame,
    leads_frame,
    read_events,
    read_leads,
)
from pyrometer.engines.spark.run import SparkBatchScorer, score

__all__ = [
    "OUTPUT_COLUMNS",
    "EventFrame",
    "LeadFrame",
    "SparkBatchScorer",
    "events_frame",
    "leads_frame",
    "read_events",
    "read_leads",
    "score",
]
