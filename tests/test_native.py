"""The native pass 1 (pyrometer/engines/native): built, loaded, and scoring as the SQL pass."""

from __future__ import annotations

import math

import duckdb
import pytest
from conftest import PASS1, batch_score

from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook
from pyrometer.core.reference import score_reference
from pyrometer.engines import native
from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, EventTable
from pyrometer.engines.native.build import compiler, footer

needs_compiler = pytest.mark.skipif(compiler() is None, reason="no C compiler")
END_US = 1_795_392_000_000_000  # 2026-11-23
DAY_US = 86_400_000_000
EVENTS = (
    "page_view",
    "email_open",
    "pricing_page_view",
    "email_click",
    "newsletter_signup",
    "purchase",
    "unsubscribe",
    "demo_request",
    "Demo Request",
)


def _events(con: duckdb.DuckDBPyConnection, n: int, leads: int, start_us: int) -> EventTable:
    """``n`` pseudo-random events of ``leads`` leads over 90 days from ``start_us``."""
    names = list(EVENTS)
    con.execute(f"""
        CREATE OR REPLACE TABLE ev AS
        SELECT 'L' || CAST(hash(i * 7) % {leads} AS VARCHAR) AS lead_id,
               {names!r}[1 + CAST(hash(i * 31) % {len(names)} AS INTEGER)] AS event,
               {start_us} + CAST(hash(i * 13) % {90 * DAY_US} AS BIGINT) AS ts_us,
               'e' || CAST(i AS VARCHAR) AS event_id,
               CASE WHEN hash(i) % 3 = 0 THEN '/pricing' ELSE '/blog' END AS p_url
        FROM range({n}) r(i)
    """)
    return EventTable("ev", {"url": '"p_url"'})


def _scores(native_pass: bool, n: int, leads: int, start_us: int, as_of_us: int) -> list[tuple]:
    con = native.connect()
    con.execute("SET threads = 2")
    events = _events(con, n, leads, start_us)
    scorer = DuckDBBatchScorer(default_playbook(), con, native=native_pass)
    return scorer.score_relation(events, None, as_of_us).order("lead_id").fetchall()


def _same(a: tuple, b: tuple) -> bool:
    return all(
        math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12) if isinstance(x, float) else x == y
        for x, y in zip(a, b, strict=True)
    )


@needs_compiler
@pytest.mark.parametrize(
    ("start_us", "as_of_us"),
    [(END_US - 90 * DAY_US, END_US), (-45 * DAY_US - DAY_US // 3, 40 * DAY_US)],
    ids=["2026", "around 1970"],
)
def test_many_events_score_as_the_sql_pass(start_us: int, as_of_us: int) -> None:
    """Enough events for DuckDB to aggregate on two threads and combine their states."""
    sql = _scores(False, 200_000, 5_000, start_us, as_of_us)
    fused = _scores(True, 200_000, 5_000, start_us, as_of_us)
    assert len(sql) == len(fused) == 5_000
    assert [row[0] for row in sql] == [row[0] for row in fused]
    assert all(_same(a, b) for a, b in zip(sql, fused, strict=True))


@needs_compiler
def test_used_on_connections_that_allow_it() -> None:
    assert DuckDBBatchScorer(default_playbook(), native.connect()).native
    assert DuckDBBatchScorer(default_playbook()).native  # its own connection allows it


def test_plain_connections_and_the_environment_use_sql(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not DuckDBBatchScorer(default_playbook(), duckdb.connect()).native
    with pytest.raises(RuntimeError, match="unsigned"):
        DuckDBBatchScorer(default_playbook(), duckdb.connect(), native=True)
    monkeypatch.setenv("PYROMETER_NATIVE", "0")
    assert not DuckDBBatchScorer(default_playbook(), native.connect()).native
    assert native.last_error == "PYROMETER_NATIVE=0"


def test_a_missing_compiler_falls_back(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PYROMETER_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler")
    assert not DuckDBBatchScorer(default_playbook(), native.connect()).native
    assert native.last_error is not None and "compiler" in native.last_error


def test_footer_is_what_duckdb_reads() -> None:
    data = footer("linux_amd64")
    assert len(data) == 22 + 512  # a WebAssembly section's header, then what DuckDB reads
    last = data[-512:]  # 8 fields of 32 bytes, last first, then 256 of signature
    fields = [last[32 * i : 32 * (i + 1)].rstrip(b"\0") for i in range(8)][::-1]
    assert fields[:5] == [b"4", b"linux_amd64", b"v1.2.0", b"0.1", b"C_STRUCT"]


@needs_compiler
@pytest.mark.parametrize(
    "bad", ["NULL", "CASE WHEN hash(event_id) % 1000 = 7 THEN NULL ELSE ts_us END"]
)
def test_rows_without_a_time_are_refused_as_by_sql(bad: str) -> None:
    errors = []
    for native_pass in (False, True):
        con = native.connect()
        events = _events(con, 20_000, 500, END_US - 90 * DAY_US)
        con.execute(f"CREATE OR REPLACE TABLE ev AS SELECT * REPLACE ({bad} AS ts_us) FROM ev")
        scorer = DuckDBBatchScorer(default_playbook(), con, native=native_pass)
        with pytest.raises(ValueError, match="lack a lead id") as error:
            scorer.score(events, None, END_US)
        errors.append(str(error.value))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("native_pass", PASS1)
def test_lifecycle_events_at_the_same_time_follow_the_event_id(native_pass: bool) -> None:
    """The native pass leaves such ties to SQL, which orders them by event id."""
    t = END_US - 3 * DAY_US
    events = [
        Event.create("a", "purchase", t, "e1"),
        Event.create("a", "sales_accepted", t, "e2"),
        Event.create("d", "sales_accepted", t, "f1"),  # the same names, the other way round
        Event.create("d", "purchase", t, "f2"),
        Event.create("b", "purchase", t, "g1"),
        Event.create("b", "won", t, "g2"),  # the same stage: no tie to break
        Event.create("b", "lost", t - DAY_US, "g3"),
        Event.create("c", "newsletter_signup", t - 2 * DAY_US, "e4"),
        Event.create("c", "newsletter_signup", t - DAY_US, "e5"),
        Event.create("c", "unsubscribe", t, "e6"),
    ]
    playbook = default_playbook()
    expected = score_reference(playbook, events, {}, END_US)
    got = batch_score(playbook, events, {}, END_US, native=native_pass)
    assert {lead: s.stage for lead, s in got.items()} == {
        "a": "sql",
        "b": "customer",
        "c": "lead",
        "d": "customer",
    }
    for lead, want in expected.items():
        assert got[lead].stage == want.stage
        assert got[lead].suppressed == want.suppressed
        assert math.isclose(got[lead].engagement, want.engagement, rel_tol=1e-12)
