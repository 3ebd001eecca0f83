"""The Spark engine gives the scores the other engines give, from the same plan, on a real
standalone cluster: the shared vectors, random playbooks and streams (ledger included), a
Parquet folder through ``pyrometer score --engine spark``, and bad rows named."""

from __future__ import annotations

import json
import math
import urllib.request
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import batch_score
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession
from test_equivalence import DAY_US, START_US, assert_same, playbooks, streams
from test_vectors import VECTORS, incremental, load, logged
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.model import Event, ScoredLead
from pyrometer.core.playbook import default_playbook
from pyrometer.core.reference import score_reference
from pyrometer.core.timeutil import to_us
from pyrometer.engines.spark import SparkBatchScorer
from pyrometer.engines.spark.standalone import Standalone

from .conftest import frames


def spark_score(
    spark: SparkSession, playbook, events, leads, as_of_us: int, explain: bool = False
) -> dict[str, ScoredLead]:
    event_frame, lead_frame = frames(spark, list(events), leads)
    scorer = SparkBatchScorer(playbook, spark)
    if explain:
        ids = sorted({e.lead_id for e in events if e.ts_us <= as_of_us} | set(leads))
        return scorer.explain(event_frame, lead_frame, as_of_us, ids)
    return scorer.collect(event_frame, lead_frame, as_of_us)


@pytest.mark.slow
@pytest.mark.parametrize("vector", VECTORS, ids=[v.stem for v in VECTORS])
def test_vectors_on_spark_equal_duckdb_incremental_and_reference(
    spark: SparkSession, vector: Path
) -> None:
    playbook, leads, events, checks = load(vector)
    for check in checks:
        as_of_us = to_us(check["as_of"])
        got = spark_score(spark, playbook, events, leads, as_of_us)
        others = {
            "reference": score_reference(playbook, events, leads, as_of_us),
            "incremental": incremental(playbook, leads, logged(events), as_of_us),
            "duckdb": batch_score(playbook, events, leads, as_of_us),
        }
        for name, scored in others.items():
            assert set(got) == set(scored), name
            for lead, want in scored.items():
                assert_same(want, got[lead], f"spark vs {name} @ {check['as_of']}")
        for lead, expected in check["expect"].items():
            row = got[lead].to_dict()
            row["score"], row["fit"], row["engagement"] = (
                got[lead].score,
                got[lead].fit,
                got[lead].engagement,
            )
            for key, value in expected.items():
                where = f"{vector.stem} @ {check['as_of']}: {lead}.{key}"
                if isinstance(value, int | float) and not isinstance(value, bool):
                    assert math.isclose(row[key], value, rel_tol=1e-9, abs_tol=1e-9), where
                else:
                    assert row[key] == value, where


@pytest.mark.slow
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=3, deadline=None)
@given(playbook=playbooks(), stream=streams(), as_of_days=st.integers(0, 420))
def test_spark_equals_reference_with_ledger_on_random_playbooks(
    spark: SparkSession, playbook, stream, as_of_days
) -> None:
    events, leads = stream
    as_of_us = START_US + as_of_days * DAY_US // 2
    expected = score_reference(playbook, events, leads, as_of_us)
    got = spark_score(spark, playbook, events, leads, as_of_us, explain=True)
    assert set(got) == set(expected)
    rules = [rule.name for rule in playbook.engagement]
    for lead, want in expected.items():
        assert_same(want, got[lead], "spark")
        assert [(x.rule, x.event_id, x.points) for x in got[lead].engagement_lines] == [
            (x.rule, x.event_id, x.points)
            for x in sorted(
                want.engagement_lines, key=lambda x: (x.ts_us, x.event_id, rules.index(x.rule))
            )
        ]
        assert {x.rule for x in got[lead].fit_lines} == {x.rule for x in want.fit_lines}


def write_lake(folder: Path, events: list[Event]) -> None:
    """Events as a lake: a folder of two Parquet files, times as TIMESTAMP, an ``id``
    column and the ``url`` property, as an export job writes them."""
    folder.mkdir()
    half = len(events) // 2
    for i, part in enumerate((events[:half], events[half:])):
        table = pa.table(
            {
                "user_id": [e.lead_id for e in part],
                "event_name": [e.name for e in part],
                "occurred_at": pa.array([e.ts_us for e in part], pa.timestamp("us", tz="UTC")),
                "id": [e.event_id for e in part],
                "url": pa.array([e.properties.get("url") for e in part], pa.string()),
            }
        )
        pq.write_table(table, folder / f"part-{i}.parquet")


@pytest.mark.slow
def test_cli_scores_a_parquet_folder_on_the_cluster_as_duckdb_does(
    spark: SparkSession, cluster: Standalone, tmp_path: Path
) -> None:
    _playbook, leads, events, _checks = load(
        VECTORS[[v.stem for v in VECTORS].index("domain_examples")]
    )
    lake = tmp_path / "events"
    write_lake(lake, events)
    leads_file = tmp_path / "leads.parquet"
    pq.write_table(
        pa.table(
            {
                "lead_id": list(leads),
                "job_title": [a.get("job_title") for a in leads.values()],
                "company_size": [a.get("company_size") for a in leads.values()],
                "industry": [a.get("industry") for a in leads.values()],
                "email": [a.get("email") for a in leads.values()],
            }
        ),
        leads_file,
    )
    out = tmp_path / "scores"
    as_of = "2026-11-23T18:00:00Z"
    spark_args = ["--engine", "spark", "--master", cluster.url, "--as-of", as_of]
    result = CliRunner().invoke(
        app, ["score", str(lake), "--leads", str(leads_file), "-o", str(out), *spark_args]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "wrote 4 leads" in result.output
    # The session ran on the standalone master, with both workers' executors.
    assert spark.sparkContext.master == cluster.url
    state = json.loads(urllib.request.urlopen(cluster.web + "/json/").read())
    assert cluster.alive_workers() == 2
    assert [app_["cores"] for app_ in state["activeapps"]] == [2]

    got = duckdb.sql(f"SELECT * FROM read_parquet('{out}/*.parquet') ORDER BY lead_id").fetchall()
    single = tmp_path / "events.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_parquet('{lake}/*.parquet')) TO '{single}'")
    duck_out = tmp_path / "duck.parquet"
    result = CliRunner().invoke(
        app,
        ["score", str(single), "--leads", str(leads_file), "-o", str(duck_out), "--as-of", as_of],
    )
    assert result.exit_code == 0, result.output
    want = duckdb.sql(f"SELECT * FROM read_parquet('{duck_out}') ORDER BY lead_id").fetchall()
    assert len(got) == len(want) == 4
    for g, w in zip(got, want, strict=True):
        assert g[0] == w[0]
        assert all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(g[1:4], w[1:4], strict=True))
        assert g[4:] == w[4:]

    # explain: the same ledger as DuckDB's, line for line.
    ledgers = []
    for args in (
        [str(lake), "--leads", str(leads_file), *spark_args],
        [str(single), "--leads", str(leads_file), "--as-of", as_of],
    ):
        result = CliRunner().invoke(app, ["explain", "ceo", *args, "--json"])
        assert result.exit_code == 0, (result.output, result.exception)
        ledgers.append(json.loads(result.output))
    on_spark, on_duckdb = ledgers
    assert math.isclose(on_spark["score"], on_duckdb["score"], abs_tol=1e-9)
    assert [(x["rule"], x.get("event_id"), x["points"]) for x in on_spark["ledger"]] == [
        (x["rule"], x.get("event_id"), x["points"]) for x in on_duckdb["ledger"]
    ]
    assert len(on_spark["ledger"]) == 5  # three fit rules, two sign-ups (the second capped)


def test_a_row_without_a_lead_is_named(spark: SparkSession) -> None:
    from pyrometer.engines.spark import events_frame

    rows = [
        ("a", "page_view", "2026-01-01T10:00:00Z", "e1"),
        (" \u00a0", "page_view", "2026-01-01T11:00:00Z", "e2"),
    ]
    df = spark.createDataFrame(rows, "user_id string, event string, time string, id string")
    scorer = SparkBatchScorer(default_playbook(), spark)
    with pytest.raises(ValueError, match=r"'lead_id'.*event_id 'e2'"):
        scorer.collect(events_frame(df), None, START_US)
    # No lead id at all, a time that is not one, an event with no letter: each named.
    for bad, field, event_id in (
        ((None, "page_view", "2026-01-01T12:00:00Z", "e3"), "lead_id", "e3"),
        (("b", "page_view", "yesterday", "e4"), "timestamp", "e4"),
        (("b", " -- ", "2026-01-01T12:00:00Z", "e5"), "event", "e5"),
    ):
        frame = spark.createDataFrame([rows[0], bad], df.schema)
        with pytest.raises(ValueError, match=rf"'{field}'.*event_id '{event_id}'"):
            scorer.collect(events_frame(frame), None, START_US)
    # Ids all in normal form: scored by the ids as written, once.
    scored = scorer.collect(events_frame(df.filter("id = 'e1'")), None, START_US + DAY_US)
    assert list(scored) == ["a"] and not scorer.last_normalised
    # The Python API on a data engineer's own DataFrame (ISO times as text): the DuckDB
    # engine's columns and numbers.
    from pyrometer.engines.duckdb import OUTPUT_COLUMNS
    from pyrometer.engines.spark import score

    as_of = "2026-01-02T10:00:00Z"
    frame = score(df.filter("id = 'e1'"), None, default_playbook(), as_of)
    assert tuple(frame.columns) == OUTPUT_COLUMNS
    (row,) = frame.collect()
    event = Event.create("a", "page_view", to_us(rows[0][2]), "e1", {})
    (want,) = batch_score(default_playbook(), [event], {}, to_us(as_of)).values()
    assert (row["lead_id"], row["events"], row["temperature"]) == ("a", 1, str(want.temperature))
    assert math.isclose(row["score"], want.score, abs_tol=1e-9) and want.score > 0
