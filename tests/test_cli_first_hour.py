"""The first hour with the command line: start-up, extras, piped output, files.

Several tests run ``python -m pyrometer`` in a subprocess, as a user does: what a command
imports, and what a pipe receives, can only be seen from outside.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.playbook import default_playbook
from pyrometer.core.reference import score_reference
from pyrometer.core.timeutil import from_us, to_us
from pyrometer.demo.synth import generate

AS_OF = "2026-11-23T00:00:00Z"
REPO = Path(__file__).resolve().parents[1]
HEAVY = (
    "lightgbm",
    "sklearn",
    "pandas",
    "scipy",
    "numpy",
    "duckdb",
    "pyarrow",
    "fastapi",
    "sqlalchemy",
    "uvicorn",
)
PREDICTIVE = ("lightgbm", "sklearn", "pandas", "scipy", "fastapi", "sqlalchemy")
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def python(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter, stdout and stderr pipes (not a terminal)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def pyrometer(*args: str) -> subprocess.CompletedProcess[str]:
    return python("from pyrometer.cli.app import main; main()", *args)


# Runs the command line, then prints which of the heavy libraries it imported.
LOADED = """
import sys
from pyrometer.cli.app import main
try:
    main()
except SystemExit:
    pass
heavy = {heavy!r}
print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)
"""


def loaded(*args: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    done = python(LOADED.format(heavy=heavy), *args)
    return list(json.loads(done.stderr.strip().splitlines()[-1].replace("'", '"')))


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    folder = tmp_path_factory.mktemp("company")
    made = generate(60, seed=5, end=from_us(to_us(AS_OF)))
    leads, events = made.write(folder)
    return leads, events, made.events


# -- start-up -------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["score", "--help"]])
def test_help_and_version_import_no_heavy_library(args: list[str]) -> None:
    assert loaded(*args) == []


def test_score_imports_no_predictive_or_service_library(company) -> None:
    leads, events, _ = company
    args = ["score", str(events), "--leads", str(leads), "--as-of", AS_OF, "--json"]
    assert loaded(*args, heavy=PREDICTIVE) == []


def test_version() -> None:
    from importlib.metadata import version

    code, out, _ = run("--version")
    assert code == 0 and out.strip() == f"pyrometer {version('pyrometer')}"


# -- extras ---------------------------------------------------------------------------

# Makes the named top-level modules impossible to import, as on a base install.
BLOCKED = """
import sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Missing())
from pyrometer.cli.app import main
main()
"""


@pytest.mark.parametrize(
    ("extra", "blocked", "args"),
    [
        ("service", ("fastapi",), ["serve", "--port", "1"]),
        ("service", ("sqlalchemy", "fastapi"), ["import", "events.csv"]),
        ("service", ("sqlalchemy", "fastapi"), ["keys", "create", "--scope", "admin"]),
        ("service", ("sqlalchemy", "fastapi"), ["keys", "list"]),
        ("service", ("sqlalchemy", "fastapi"), ["erase", "ann"]),
        ("predict", ("sklearn", "lightgbm"), ["train", "h.csv", "--target", "y", "-o", "m"]),
        ("predict", ("sklearn", "lightgbm"), ["evaluate", "h.csv", "--target", "y"]),
        ("predict", ("sklearn", "lightgbm", "pandas"), ["predict", "m", "leads.csv"]),
    ],
)
def test_a_command_without_its_extra_names_the_extra(
    tmp_path: Path, extra: str, blocked: tuple[str, ...], args: list[str]
) -> None:
    done = python(BLOCKED.format(blocked=set(blocked)), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"pip install 'pyrometer[{extra}]'" in done.stderr
    assert "No such command" not in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # nothing was created (no store, no model)


def test_erase_takes_the_lead_id_in_its_normal_form(tmp_path: Path) -> None:
    """`erase " Jose\u0301 "` erases `José` as every other path reads that id."""
    events = tmp_path / "e.csv"
    events.write_text("lead_id,event,timestamp\nJos\u00e9,demo_request,2026-11-20T10:00:00Z\n")
    database = f"sqlite:///{tmp_path / 's.db'}"
    assert run("import", str(events), "--database", database)[0] == 0
    code, out, err = run("erase", " Jose\u0301 ", "--database", database, "--by", "test")
    assert code == 0, err
    assert "erased lead 'Jos\u00e9': 1 events" in out
    code, _, err = run("erase", "  ", "--database", database)
    assert code == 2 and "empty or only white space" in err


# -- piped output ---------------------------------------------------------------------


def test_piped_tables_keep_every_value_whole(tmp_path: Path) -> None:
    rule = "a_rule_whose_name_is_much_longer_than_any_terminal_would_show_in_one_column"
    event = "an_event_name_that_is_also_far_too_long_for_eighty_columns_of_table"
    lead = "lead-" + "x" * 70 + "@example.com"
    event_id = "event-id-" + "9" * 60
    book = default_playbook().to_yaml_dict()
    book["engagement"].append({"name": rule, "points": 7, "match": [{"event": event}]})
    playbook = tmp_path / "book.yaml"
    playbook.write_text(yaml.safe_dump(book, sort_keys=False))
    events = tmp_path / "events.csv"
    events.write_text(
        f"lead_id,event,timestamp,event_id\n{lead},{event},2026-11-20T10:00:00Z,{event_id}\n"
    )
    common = ["--playbook", str(playbook), "--as-of", AS_OF]
    explained = pyrometer("explain", lead, str(events), *common)
    assert explained.returncode == 0, explained.stderr
    row = next(line for line in explained.stdout.splitlines() if rule in line)
    assert event in row and event_id in row and "2026-11-20 10:00" in row and "…" not in row
    assert lead in explained.stdout.splitlines()[0]  # the header line is not wrapped either
    scored = pyrometer("score", str(events), *common)
    assert scored.returncode == 0, scored.stderr
    assert any(lead in line and "2026-11-20 10:00" in line for line in scored.stdout.splitlines())


def test_piped_lines_are_not_broken_at_eighty_columns(tmp_path: Path) -> None:
    """The demo's closing hint is a command to copy: into a pipe it stays one line."""
    folder = tmp_path / ("a-folder-name-long-enough-to-push-the-hint-past-eighty-columns" * 2)
    done = pyrometer("demo", "--dir", str(folder), "--leads", "60", "--end", AS_OF)
    assert done.returncode == 0, done.stderr
    hint = next(line for line in done.stdout.splitlines() if line.startswith("Next: "))
    assert len(hint) > 80 and hint.endswith(f"--as-of {AS_OF}"), hint


# -- files ----------------------------------------------------------------------------


def _scores(out: str) -> dict[str, dict]:
    return {row["lead_id"]: row for row in json.loads(out)}


def test_gzipped_inputs_score_as_the_plain_files(company, tmp_path: Path) -> None:
    leads, events, _ = company
    con = duckdb.connect()
    jsonl = tmp_path / "events.jsonl.gz"
    con.execute(
        f"COPY (SELECT * FROM read_csv('{events}', all_varchar=true)) TO '{jsonl}' "
        "(FORMAT json, COMPRESSION gzip)"
    )
    csv_gz = tmp_path / "events.csv.gz"
    csv_gz.write_bytes(gzip.compress(events.read_bytes()))
    leads_gz = tmp_path / "leads.csv.gz"
    leads_gz.write_bytes(gzip.compress(leads.read_bytes()))
    plain = _scores(run("score", str(events), "--leads", str(leads), "--as-of", AS_OF, "--json")[1])
    for source in (csv_gz, jsonl):
        code, out, err = run(
            "score", str(source), "--leads", str(leads_gz), "--as-of", AS_OF, "--json"
        )
        assert code == 0, err
        assert _scores(out) == plain


@pytest.mark.parametrize("name", ["scores.csv.gz", "scores.jsonl.gz"])
def test_gzipped_outputs(company, tmp_path: Path, name: str) -> None:
    leads, events, _ = company
    out = tmp_path / name
    code, _, err = run(
        "score", str(events), "--leads", str(leads), "--as-of", AS_OF, "-o", str(out)
    )
    assert code == 0, err
    text = gzip.decompress(out.read_bytes()).decode()
    if name.endswith(".csv.gz"):
        rows = list(csv.DictReader(text.splitlines()))
    else:
        rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) == 60 and {"lead_id", "score", "temperature"} <= set(rows[0])


def test_output_dash_writes_csv_to_stdout(company) -> None:
    leads, events, _ = company
    code, out, err = run("score", str(events), "--leads", str(leads), "--as-of", AS_OF, "-o", "-")
    assert code == 0, err
    rows = list(csv.DictReader(out.splitlines()))
    assert len(rows) == 60 and rows[0]["lead_id"] and "stdout" in err
    assert not Path("-").exists()


def test_a_windows_1252_file_stops_with_its_encoding_then_reads_with_encoding(
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.csv"
    lines = ["lead_id,event,timestamp", "ann,demo_request,2026-11-20T10:00:00Z"]
    lines += ["Müller’s,pricing_page_view,2026-11-21T10:00:00Z"]  # ü and ’ in Windows-1252
    events.write_bytes(("\n".join(lines) + "\n").encode("cp1252"))
    code, out, err = run("score", str(events), "--as-of", AS_OF, "--json")
    assert code == 2 and out == ""
    assert "line 3 is not UTF-8" in err and "--encoding cp1252" in err and "events.csv" in err
    code, out, err = run("score", str(events), "--as-of", AS_OF, "--json", "--encoding", "cp1252")
    assert code == 0, err
    assert set(_scores(out)) == {"ann", "Müller’s"}
    code, _, err = run("score", str(events), "--encoding", "klingon")
    assert code == 2 and "--encoding" in err and "klingon" in err


def test_id_option_names_the_lead_column(tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text(
        "Contact Ref,id,event,timestamp\n"
        "c1,e1,demo_request,2026-11-20T10:00:00Z\n"
        "c1,e2,pricing_page_view,2026-11-21T10:00:00Z\n"
        "c2,e3,pricing_page_view,2026-11-21T10:00:00Z\n"
    )
    leads = tmp_path / "leads.csv"
    leads.write_text("Contact Ref,job_title\nc1,CEO\nc3,Student\n")
    code, _, err = run("score", str(events), "--as-of", AS_OF)
    assert code == 2 and "lead_id" in err
    code, out, err = run(
        "score",
        str(events),
        "--leads",
        str(leads),
        "--id",
        "contact_ref",
        "--as-of",
        AS_OF,
        "--json",
    )
    assert code == 0, err
    got = _scores(out)
    assert set(got) == {"c1", "c2", "c3"} and got["c1"]["events"] == 2
    assert got["c1"]["fit"] == 8.0 and got["c3"]["fit"] == -10.0
    code, _, err = run("score", str(events), "--id", "nope", "--as-of", AS_OF)
    assert code == 2 and "--id" in err and "'nope'" in err


def test_leads_alone_score_on_fit(company) -> None:
    leads, _, _ = company
    code, out, err = run("score", "--leads", str(leads), "--as-of", AS_OF, "--json")
    assert code == 0, err
    got = _scores(out)
    attrs = {row["lead_id"]: row for row in csv.DictReader(leads.open())}
    expected = score_reference(default_playbook(), [], attrs, to_us(AS_OF))
    assert set(got) == set(expected) and len(got) == 60
    for lead, want in expected.items():
        assert math.isclose(got[lead]["fit"], want.fit) and got[lead]["engagement"] == 0
        assert got[lead]["temperature"] == want.temperature
    code, _, err = run("score")
    assert code == 2 and "EVENTS" in err


def test_text_events_are_parsed_once(company) -> None:
    """CSV is read into a table once (the scorer reads its events several times)."""
    from pyrometer.engines.duckdb_batch import connect
    from pyrometer.io.readers import open_events

    _, events, rows = company
    con = connect()
    table = open_events(con, events)
    assert table.rows == len(rows)
    assert table.earliest_us == min(to_us(row["timestamp"]) for row in rows)
    kind = con.execute(
        f"SELECT table_type FROM information_schema.tables WHERE table_name = '{table.sql}'"
    ).fetchone()
    assert kind is not None and kind[0] == "LOCAL TEMPORARY"


def test_large_text_files_stay_views(company, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the size parsed into memory, CSV is read as it is scanned: the same scores."""
    from pyrometer.engines.duckdb_batch import connect
    from pyrometer.io import readers

    leads, events, _ = company
    args = ["score", str(events), "--leads", str(leads), "--as-of", AS_OF, "--json"]
    parsed = _scores(run(*args)[1])
    monkeypatch.setattr(readers, "PARSE_ONCE_BYTES", 100)
    assert readers.open_events(connect(), events).sql == "pyro_events"
    assert _scores(run(*args)[1]) == parsed


def test_import_takes_the_id_column_as_score_does(tmp_path: Path) -> None:
    """A file scored with `--id "Contact Ref"` could not be imported: no `--id` there."""
    import sqlite3

    events = tmp_path / "e.csv"
    events.write_text("Contact Ref;Event Name;Occurred At\nC 1;Demo Request;2026-11-20T10:00:00Z\n")
    leads = tmp_path / "l.csv"
    leads.write_text("Contact Ref,Job Title\nC 1,CEO\nC 2,Student\n")
    database = f"sqlite:///{tmp_path / 's.db'}"
    for path in (events, leads):
        code, _, err = run("import", str(path), "--id", "Contact Ref", "--database", database)
        assert code == 0, err
    with sqlite3.connect(tmp_path / "s.db") as con:
        assert con.execute("SELECT lead_id, name FROM events").fetchall() == [
            ("C 1", "demo_request")
        ]
        stored = con.execute("SELECT lead_id, attributes FROM leads ORDER BY lead_id").fetchall()
    assert [(lead, json.loads(attrs)) for lead, attrs in stored] == [
        ("C 1", {"job_title": "CEO"}),
        ("C 2", {"job_title": "Student"}),
    ]


def test_a_reader_that_leaves_early_is_no_error(tmp_path: Path) -> None:
    """`score -o - | head -1` printed "error: [Errno 32] Broken pipe" as if the input was bad."""
    events = tmp_path / "e.csv"  # more output than a pipe holds
    rows = (f"lead-{n:06d},demo_request,2026-11-20T10:00:00Z\n" for n in range(20000))
    events.write_text("lead_id,event,timestamp\n" + "".join(rows))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "from pyrometer.cli.app import main; main()"
    args = ["score", str(events), "--as-of", AS_OF, "-o", "-"]
    with subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b"lead_id,")
        proc.stdout.close()  # as `head -1` does
        stderr = proc.stderr.read().decode()
        proc.wait(timeout=300)
    assert "error" not in stderr and "Traceback" not in stderr, stderr
