"""Lead ids on Spark have the normal form they have everywhere else (NFC, trimmed): ids
spelled with composed or decomposed accents, or with white space around them, are one
lead, with the ids and scores DuckDB gives for the same file."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from pyrometer.core.ids import WHITESPACE, EmptyLeadId, normalize_lead_id
from pyrometer.core.playbook import default_playbook
from pyrometer.core.timeutil import to_us
from pyrometer.engines.duckdb_batch import DuckDBBatchScorer
from pyrometer.engines.spark import SparkBatchScorer, read_events, read_leads
from pyrometer.engines.spark.frames import lead_id
from pyrometer.io.readers import open_events, open_leads

AS_OF = "2026-11-23T00:00:00Z"

# (lead id as written, event): four spellings of José, three of Müller, Å as a letter, as
# A + ring and as the Ångström sign, a Hangul syllable as two jamo, and an ASCII id.
ROWS = [
    ("Jose\u0301", "pricing_page_view"),
    ("Jos\u00e9", "pricing_page_view"),
    (" Jose\u0301\u00a0", "demo_request"),
    ("Jos\u00e9\u3000", "whitepaper_download"),
    ("Mu\u0308ller", "contact_sales"),
    ("M\u00fcller", "trial_signup"),
    ("\u2003Mu\u0308ller", "newsletter_signup"),
    ("\u00c5sa", "case_study_download"),
    ("A\u030asa", "case_study_download"),
    ("\u212bsa", "form_submit"),
    ("\u1100\u1161", "webinar_attended"),
    ("\uac00", "purchase"),
    ("ana@x.io", "demo_request"),
]


def write_files(tmp_path: Path) -> tuple[Path, Path]:
    events = tmp_path / "events.parquet"
    start = to_us("2026-11-20T09:00:00Z")
    pq.write_table(
        pa.table(
            {
                "user_id": [lead for lead, _ in ROWS],
                "event": [event for _, event in ROWS],
                "timestamp": pa.array(
                    [start + i * 3_600_000_000 for i in range(len(ROWS))],
                    pa.timestamp("us", tz="UTC"),
                ),
                "message_id": [f"m{i}" for i in range(len(ROWS))],
            }
        ),
        events,
    )
    leads = tmp_path / "leads.parquet"
    pq.write_table(
        pa.table(
            {
                "lead_id": ["Mu\u0308ller ", "A\u030asa", "ana@x.io"],
                "job_title": ["CEO", "Student", "Marketing Manager"],
            }
        ),
        leads,
    )
    return events, leads


def test_ids_in_other_normal_forms_are_one_lead_as_on_duckdb(
    spark: SparkSession, tmp_path: Path
) -> None:
    events, leads = write_files(tmp_path)
    as_of = to_us(AS_OF)
    con = duckdb.connect()
    on_duckdb = DuckDBBatchScorer(default_playbook(), con).score(
        open_events(con, str(events)), open_leads(con, str(leads)), as_of
    )
    scorer = SparkBatchScorer(default_playbook(), spark)
    on_spark = scorer.collect(read_events(spark, str(events)), read_leads(spark, str(leads)), as_of)
    assert scorer.last_normalised  # the ids as written were not all normal: scored again
    want = {normalize_lead_id(lead) for lead, _ in ROWS}
    assert set(on_spark) == set(on_duckdb) == want
    assert len(want) == 5  # José, Müller, Åsa, 가, ana@x.io
    assert on_spark["Jos\u00e9"].event_count == 4
    assert on_spark["\u00c5sa"].event_count == 3
    for lead, expected in on_duckdb.items():
        got = on_spark[lead]
        assert math.isclose(got.score, expected.score, abs_tol=1e-9), lead
        assert math.isclose(got.fit, expected.fit, abs_tol=1e-9), lead
        assert (got.temperature, got.stage, got.event_count, got.last_activity_us) == (
            expected.temperature,
            expected.stage,
            expected.event_count,
            expected.last_activity_us,
        ), lead
    assert on_spark["M\u00fcller"].fit > 0  # the leads file's decomposed id found its events


_PARTS = st.sampled_from([*WHITESPACE, "e", "\u0301", "\u0308", "a", "A", "\u00e9", "1", "-"])
_ANY = st.characters(
    blacklist_categories=("Cs", "Cn", "Co"), max_codepoint=0x2FFF, blacklist_characters="\x00"
)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.one_of(_PARTS, _ANY), max_size=12).map("".join), min_size=50))
def test_the_spark_column_agrees_with_the_python(spark: SparkSession, texts: list[str]) -> None:
    frame = spark.createDataFrame([(t,) for t in texts], "t string")
    got = [row[0] for row in frame.select(lead_id(frame["t"])).collect()]
    for text, spark_id in zip(texts, got, strict=True):
        try:
            expected = normalize_lead_id(text)
        except EmptyLeadId:
            expected = ""
        assert spark_id == expected, repr(text)
