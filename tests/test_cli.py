"""The command line as a user meets it: real files in, files and messages out."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook
from pyrometer.core.reference import score_reference
from pyrometer.core.timeutil import from_us, to_us
from pyrometer.demo.synth import generate

AS_OF = "2026-11-23T00:00:00Z"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    folder = tmp_path_factory.mktemp("company")
    made = generate(400, seed=11, end=from_us(to_us(AS_OF)))
    leads, events = made.write(folder)
    return leads, events, made.events


def test_score_json_equals_the_reference_scorer(company) -> None:
    leads, events, rows = company
    code, out, err = run("score", str(events), "--leads", str(leads), "--as-of", AS_OF, "--json")
    assert code == 0, err
    got = {row["lead_id"]: row for row in json.loads(out)}
    attrs = {row["lead_id"]: row for row in csv.DictReader(leads.open())}
    expected = score_reference(
        default_playbook(),
        [
            Event.create(
                r["lead_id"], r["event"], r["timestamp"], r["event_id"], {"url": r["url"] or None}
            )
            for r in rows
        ],
        attrs,
        to_us(AS_OF),
    )
    assert set(got) == set(expected)
    for lead, want in expected.items():
        assert math.isclose(got[lead]["score"], round(want.score, 4), abs_tol=1e-4), lead
        assert got[lead]["temperature"] == want.temperature
        assert got[lead]["stage"] == want.stage
        assert got[lead]["suppressed"] == want.suppressed
    temperatures = {row["temperature"] for row in got.values()}
    assert temperatures == {"cold", "warm", "hot"}


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_output_formats_and_input_formats_agree(company, tmp_path: Path, suffix: str) -> None:
    leads, events, _ = company
    con = duckdb.connect()
    parquet = tmp_path / "events.parquet"
    jsonl = tmp_path / "events.jsonl"
    con.execute(f"COPY (SELECT * FROM read_csv('{events}', all_varchar=true)) TO '{parquet}'")
    con.execute(
        f"COPY (SELECT * FROM read_csv('{events}', all_varchar=true)) TO '{jsonl}' (FORMAT json)"
    )
    outputs = []
    for source in (events, parquet, jsonl):
        out = tmp_path / f"scores-{source.suffix[1:]}{suffix}"
        code, _, err = run(
            "score", str(source), "--leads", str(leads), "--as-of", AS_OF, "-o", str(out)
        )
        assert code == 0, err
        reader = {".csv": "read_csv", ".parquet": "read_parquet"}.get(suffix, "read_json")
        outputs.append(
            con.execute(
                f"SELECT lead_id, round(score, 4), temperature, stage, funnel "
                f"FROM {reader}('{out}') ORDER BY lead_id"
            ).fetchall()
        )
        columns = [
            c[0] for c in con.execute(f"DESCRIBE SELECT * FROM {reader}('{out}')").fetchall()
        ]
        assert columns[:8] == [
            "lead_id",
            "score",
            "fit",
            "engagement",
            "temperature",
            "stage",
            "funnel",
            "suppressed",
        ]
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(outputs[0]) == 400


@pytest.mark.parametrize("days_before_1970", [0, 3])
def test_parquet_timestamps_before_1970_score_as_the_reference(
    tmp_path: Path, days_before_1970: int
) -> None:
    """A TIMESTAMP column gives the earliest time from the file's statistics; when it is
    before 1970, days and cap windows must still floor (2 leads, page views capped per
    day, some on 1969-12-31)."""
    day = 86_400_000_000
    start = -days_before_1970 * day + day // 2
    rows = [
        (lead, "page_view", start + (i % 7) * day // 3, f"e{lead}{i}", "/blog" if i % 3 else None)
        for lead in ("a", "b")
        for i in range(14)
    ] + [("a", "pricing_page_view", start - day // 4, "p1", None)]
    path = tmp_path / "old.parquet"
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t (lead_id VARCHAR, event VARCHAR, ts BIGINT, event_id VARCHAR, url VARCHAR)"
    )
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    con.execute(
        f"COPY (SELECT lead_id, event, make_timestamp(ts) AS timestamp, event_id, url FROM t) "
        f"TO '{path}'"
    )
    as_of_us = start + 5 * day
    code, out, err = run("score", str(path), "--as-of", from_us(as_of_us).isoformat(), "--json")
    assert code == 0, err
    got = {row["lead_id"]: row for row in json.loads(out)}
    expected = score_reference(
        default_playbook(),
        [Event.create(lead, name, ts, eid, {"url": url}) for lead, name, ts, eid, url in rows],
        {},
        as_of_us,
    )
    assert set(got) == {"a", "b"}
    for lead, want in expected.items():
        assert math.isclose(got[lead]["engagement"], round(want.engagement, 4), abs_tol=1e-4)


def test_segment_messages_work_as_sent(tmp_path: Path) -> None:
    messages = [
        {
            "type": "page",
            "anonymousId": "anon-1",
            "name": "Pricing",
            "properties": {"url": "https://acme.example/pricing"},
            "timestamp": "2026-11-22T10:00:00.000Z",
            "messageId": "m1",
        },
        {
            "type": "track",
            "userId": "u-1",
            "event": "Demo Request",
            "properties": {},
            "timestamp": "2026-11-22T11:00:00+02:00",
            "messageId": "m2",
        },
        {
            "type": "identify",
            "userId": "u-1",
            "traits": {"title": "CEO"},
            "timestamp": "2026-11-22T11:00:00Z",
            "messageId": "m3",
        },
        {
            "type": "track",
            "userId": "u-1",
            "event": "Pricing Page View",
            "timestamp": "2026-11-22T12:00:00Z",
            "messageId": "m4",
        },
    ]
    file = tmp_path / "segment.jsonl"
    file.write_text("\n".join(json.dumps(m) for m in messages) + "\n")
    code, out, err = run("score", str(file), "--as-of", "2026-11-22T23:00:00Z", "--json")
    assert code == 0, err
    got = {row["lead_id"]: row for row in json.loads(out)}
    assert got["anon-1"]["engagement"] == 10  # a page view of a pricing URL
    assert got["u-1"]["engagement"] == 30  # "Demo Request" + "Pricing Page View"
    assert got["u-1"]["events"] == 2  # identify is not an event


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("lead_id,event\na,demo_request\n", "missing column 'timestamp'"),
        ("", "empty"),
        ("lead_id,event,timestamp\n", "empty"),
        (
            "lead_id,event,timestamp\na,demo_request,2026-11-22T10:00:00Z\n"
            "b,demo_request,yesterday\n",
            "row 2, column 'timestamp': not a timestamp",
        ),
        (
            "lead_id,event,timestamp\na,demo_request,2026-11-22T10:00:00Z\n"
            ",demo_request,2026-11-22T10:00:00Z\n",
            "row 2, column 'lead_id': lead_id is empty",
        ),
    ],
)
def test_bad_event_files_say_where(tmp_path: Path, content: str, expected: str) -> None:
    file = write(tmp_path / "events.csv", content)
    code, out, err = run("score", str(file), "--as-of", AS_OF)
    assert code == 2
    assert expected in err
    assert str(file) in err
    assert "Traceback" not in err + out


def test_strict_names_the_unknown_event(tmp_path: Path) -> None:
    file = write(
        tmp_path / "e.csv",
        "lead_id,event,timestamp\na,demo_request,2026-11-22\n"
        "a,Demo Booked,2026-11-22\na,webinar,2026-11-22\na,Demo Requested,2026-11-22\n",
    )
    assert run("score", str(file), "--as-of", AS_OF)[0] == 0
    code, _, err = run("score", str(file), "--as-of", AS_OF, "--strict")
    assert code == 2
    assert "row 2, column 'event': unknown event 'Demo Booked'" in err
    assert "2 unknown names in all" in err  # Demo Requested: an alias of demo_request


def test_bad_leads_and_playbook(tmp_path: Path) -> None:
    events = write(tmp_path / "e.csv", "lead_id,event,timestamp\na,demo_request,2026-11-22\n")
    leads = write(tmp_path / "l.csv", "lead_id,title\na,CEO\nb,CTO\na,VP\n")
    code, _, err = run("score", str(events), "--leads", str(leads), "--as-of", AS_OF)
    assert code == 2 and "row 3, column 'lead_id': lead 'a' appears twice" in err
    book = write(tmp_path / "p.yaml", "decay: {half_life: soon}\n")
    code, _, err = run("score", str(events), "--playbook", str(book), "--as-of", AS_OF)
    assert code == 2 and "decay.half_life" in err and "Traceback" not in err
    code, _, err = run("score", str(events), "--as-of", "next tuesday")
    assert code == 2 and "--as-of" in err


def test_explain_adds_up(company) -> None:
    leads, events, _ = company
    code, out, err = run("score", str(events), "--leads", str(leads), "--as-of", AS_OF, "--json")
    top = json.loads(out)[0]
    code, out, err = run(
        "explain", top["lead_id"], str(events), "--leads", str(leads), "--as-of", AS_OF, "--json"
    )
    assert code == 0, err
    ledger = json.loads(out)
    assert math.isclose(sum(line["value"] for line in ledger["ledger"]), top["score"], abs_tol=1e-3)
    assert any(line["kind"] == "engagement" and line["event_id"] for line in ledger["ledger"])
    code, out, _ = run(
        "explain", top["lead_id"], str(events), "--leads", str(leads), "--as-of", AS_OF
    )
    assert code == 0 and top["lead_id"] in out and "now worth" in out
    code, _, err = run("explain", "nobody", str(events), "--as-of", AS_OF)
    assert code == 2 and "nobody" in err


def test_playbook_commands(tmp_path: Path) -> None:
    code, shown, _ = run("playbook", "show")
    assert code == 0 and "half_life: 30d" in shown
    mine = write(tmp_path / "mine.yaml", shown.replace("hot: 50", "hot: 40"))
    code, out, _ = run("playbook", "check", str(mine))
    assert code == 0 and "hot at 40" in out
    bad = write(tmp_path / "bad.yaml", shown + "\nbogus: 1\n")
    code, _, err = run("playbook", "check", str(bad))
    assert code == 2 and "bogus" in err


def test_default_table_output(company) -> None:
    leads, events, _ = company
    code, out, _ = run("score", str(events), "--leads", str(leads), "--as-of", AS_OF, "--top", "5")
    assert code == 0
    assert "Top 5 of 400 leads" in out and "hot:" in out


def test_wrong_column_type_is_named(tmp_path: Path) -> None:
    file = tmp_path / "events.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT 'a' AS lead_id, 'demo_request' AS event, true AS timestamp) TO '{file}'"
    )
    code, out, err = run("score", str(file), "--as-of", AS_OF)
    assert code == 2
    assert "column 'timestamp': has type BOOLEAN" in err and "Traceback" not in err + out
