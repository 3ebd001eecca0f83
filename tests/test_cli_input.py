"""The command line refuses times outside the accepted range and reads lead ids in their
normal form (trimmed, NFC), naming the file, row and column of a bad value."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from pyrometer.cli.app import app

AS_OF = "2026-11-23T00:00:00Z"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _events(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = ["lead_id,event,timestamp"] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["score", "EVENTS", "--as-of"], "--as-of"),
        (["explain", "a", "EVENTS", "--as-of"], "--as-of"),
        (["demo", "--leads", "10", "--end"], "--end"),
    ],
)
@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "2200-01-01T00:00:00Z"])
def test_a_time_option_outside_the_range_is_named(
    tmp_path: Path, command: list[str], option: str, when: str
) -> None:
    events = _events(tmp_path / "e.csv", [("a", "demo_request", "2026-11-20T10:00:00Z")])
    args = [str(events) if part == "EVENTS" else part for part in command]
    code, _, err = run(*args, when)
    assert code == 2
    assert f"{option}: {when!r} must be from 1900-01-01T00:00:00Z" in err


@pytest.mark.parametrize(
    ("stamp", "message"),
    [
        ("0001-01-01T00:00:00+14:00", "outside the accepted range of times"),
        ("1899-12-31T23:59:59Z", "outside the accepted range of times"),
        ("99999999999999999999999999", "not a timestamp"),  # epoch number, no BIGINT
    ],
)
def test_a_file_time_outside_the_range_names_file_row_and_column(
    tmp_path: Path, stamp: str, message: str
) -> None:
    events = _events(
        tmp_path / "far.csv",
        [("a", "demo_request", "2026-11-20T10:00:00Z"), ("b", "demo_request", stamp)],
    )
    for args in (["score", str(events)], ["explain", "b", str(events)]):
        code, _, err = run(*args, "--as-of", AS_OF)
        assert code == 2, err
        assert "far.csv, row 2, column 'timestamp'" in err
        assert message in err


def test_lead_ids_in_files_are_trimmed_and_nfc(tmp_path: Path) -> None:
    events = _events(
        tmp_path / "e.csv",
        [
            ("Jos\u00e9", "demo_request", "2026-11-20T10:00:00Z"),
            (" Jose\u0301", "pricing_page_view", "2026-11-20T11:00:00Z"),
            ("Jos\u00e9\u00a0", "webinar_attended", "2026-11-20T12:00:00Z"),
            ("bob", "demo_request", "2026-11-20T12:00:00Z"),
        ],
    )
    leads = tmp_path / "l.csv"
    leads.write_text("lead_id,company\nJose\u0301 ,Acme\n", encoding="utf-8")
    code, out, err = run("score", str(events), "--leads", str(leads), "--as-of", AS_OF, "--json")
    assert code == 0, err
    rows = {row["lead_id"]: row for row in json.loads(out)}
    assert set(rows) == {"Jos\u00e9", "bob"}
    assert rows["Jos\u00e9"]["events"] == 3
    code, out, err = run("explain", " Jose\u0301\t", str(events), "--as-of", AS_OF, "--json")
    assert code == 0, err
    assert json.loads(out)["lead_id"] == "Jos\u00e9"
    code, _, err = run("explain", "  ", str(events), "--as-of", AS_OF)
    assert code == 2 and "LEAD: a lead id must not be empty" in err


def test_a_blank_or_repeated_lead_id_names_the_row(tmp_path: Path) -> None:
    events = _events(
        tmp_path / "e.csv",
        [("a", "demo_request", "2026-11-20T10:00:00Z"), ("\u3000 ", "demo_request", AS_OF)],
    )
    code, _, err = run("score", str(events), "--as-of", AS_OF)
    assert code == 2
    assert "e.csv, row 2, column 'lead_id': lead_id is empty or only white space" in err
    good = _events(tmp_path / "g.csv", [("a", "demo_request", "2026-11-20T10:00:00Z")])
    leads = tmp_path / "l.csv"
    leads.write_text("lead_id,company\nJos\u00e9,Acme\n Jose\u0301,Other\n", encoding="utf-8")
    code, _, err = run("score", str(good), "--leads", str(leads), "--as-of", AS_OF)
    assert code == 2 and "row 2" in err and "appears twice" in err


def test_segment_ids_and_parquet_ids_are_normalised(tmp_path: Path) -> None:
    messages = tmp_path / "segment.jsonl"
    messages.write_text(
        "\n".join(
            json.dumps(m)
            for m in (
                {"type": "track", "userId": " u1 ", "event": "demo_request", "timestamp": AS_OF},
                {"type": "track", "userId": "u1", "event": "pricing_page_view", "timestamp": AS_OF},
            )
        )
        + "\n",
        encoding="utf-8",
    )
    code, out, err = run("score", str(messages), "--as-of", AS_OF, "--json")
    assert code == 0, err
    assert [(row["lead_id"], row["events"]) for row in json.loads(out)] == [("u1", 2)]
    parquet = tmp_path / "e.parquet"
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT * FROM (VALUES ('x\u0307 ', 'demo_request', TIMESTAMP '2026-11-20 10:00'),"
        " ('\u1e8b', 'demo_request', TIMESTAMP '2026-11-20 11:00')) t(lead_id, event, ts)) "
        f"TO '{parquet}'"
    )
    code, out, err = run("score", str(parquet), "--as-of", AS_OF, "--json")
    assert code == 0, err
    assert [(row["lead_id"], row["events"]) for row in json.loads(out)] == [("\u1e8b", 2)]


_SPELLINGS = {
    "Jos\u00e9": ["Jos\u00e9", " Jose\u0301", "Jos\u00e9\u00a0", "\u3000Jose\u0301\t"],
    "ann": ["ann", " ann", "ann\u2003"],
    "\u1e8b": ["\u1e8b", "x\u0307", " x\u0307 "],
}


def test_scores_of_any_spelling_equal_those_of_the_normal_ids(tmp_path: Path) -> None:
    """The engine scores the ids as written and, seeing a lead id not in normal form,
    scores again with every row's id normalised: the same scores as a clean file."""
    events = ["demo_request", "pricing_page_view", "webinar_attended", "page_view"]
    messy, clean = [], []
    for i in range(40):
        lead = list(_SPELLINGS)[i % 3]
        spelling = _SPELLINGS[lead][i % len(_SPELLINGS[lead])]
        stamp = f"2026-11-{10 + i % 12:02d}T{i % 24:02d}:00:00Z"
        messy.append((f'"{spelling}"', events[i % 4], stamp))
        clean.append((lead, events[i % 4], stamp))
    answers = []
    for name, rows in (("messy.csv", messy), ("clean.csv", clean)):
        code, out, err = run(
            "score", str(_events(tmp_path / name, rows)), "--as-of", AS_OF, "--json"
        )
        assert code == 0, err
        answers.append(json.loads(out))
    assert answers[0] == answers[1]
    assert {row["lead_id"] for row in answers[0]} == set(_SPELLINGS)
