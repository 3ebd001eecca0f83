"""One Spark standalone cluster (a master and two workers on 127.0.0.1, from the PySpark
package's own scripts) and one session on it, for the whole test run: Spark starts slowly."""

from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pyspark.sql import SparkSession

from pyrometer.core.conditions import normalize_record
from pyrometer.core.model import Event
from pyrometer.engines.spark import EventFrame, LeadFrame
from pyrometer.engines.spark.session import session
from pyrometer.engines.spark.standalone import Standalone


@pytest.fixture(scope="session")
def cluster() -> Iterator[Standalone]:
    running = Standalone.start(workers=2, cores=1, memory="1g")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def spark(cluster: Standalone) -> Iterator[SparkSession]:
    # PySpark's context takes over SIGINT (to cancel its jobs); once it is stopped, that
    # handler fails on the stopped context, so the process gets its own back.
    interrupt = signal.getsignal(signal.SIGINT)
    spark = session(
        cluster.url,
        {
            "spark.executor.memory": "512m",
            "spark.executor.cores": "1",
            "spark.cores.max": "2",
            # Test tables are tiny: few partitions, few tasks.
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
        },
    )
    yield spark
    spark.stop()
    signal.signal(signal.SIGINT, interrupt)


def frames(
    spark: SparkSession, events: list[Event], leads: Mapping[str, Mapping[str, Any]]
) -> tuple[EventFrame | None, LeadFrame | None]:
    """Events (properties as text columns) and leads as the engine's frames, the way the
    DuckDB tests register them (tests/conftest.py)."""
    event_frame = None
    if events:
        keys = sorted({key for event in events for key in event.properties})
        rows = [
            (
                e.lead_id,
                e.name,
                e.ts_us,
                e.event_id,
                *[None if e.properties.get(k) is None else str(e.properties[k]) for k in keys],
            )
            for e in events
        ]
        schema = "lead_id string, event string, ts_us long, event_id string" + "".join(
            f", `p_{key}` string" for key in keys
        )
        event_frame = EventFrame(
            spark.createDataFrame(rows, schema), {key: f"p_{key}" for key in keys}
        )
    lead_frame = None
    if leads:
        normal = {lead: normalize_record(attrs) for lead, attrs in leads.items()}
        keys = sorted({key for attrs in normal.values() for key in attrs})
        lead_rows = [
            (lead, *[None if attrs.get(k) is None else str(attrs[k]) for k in keys])
            for lead, attrs in normal.items()
        ]
        lead_schema = "lead_id string" + "".join(f", `a_{key}` string" for key in keys)
        lead_frame = LeadFrame(
            spark.createDataFrame(lead_rows, lead_schema), {key: f"a_{key}" for key in keys}
        )
    return event_frame, lead_frame
