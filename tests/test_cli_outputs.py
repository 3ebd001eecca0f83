"""`score` writes a file and prints JSON in one run; two writers of stdout are refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyrometer.cli.app import app

AS_OF = "2026-11-22T00:00:00Z"


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "e.csv"
    path.write_text(
        "lead_id,event,timestamp\nann,demo_request,2026-11-20T10:00:00Z\n"
        "bob,pricing_page_view,2026-11-21T10:00:00Z\n"
    )
    return path


@pytest.mark.parametrize("name", ["s.csv", "s.parquet", "s.jsonl.gz"])
def test_a_file_and_json_in_one_run(events: Path, tmp_path: Path, name: str) -> None:
    """`-o FILE --json` stopped on a DuckDB "unfinished result" error after the file."""
    out = tmp_path / name
    result = CliRunner().invoke(
        app, ["score", str(events), "--as-of", AS_OF, "-o", str(out), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert [row["lead_id"] for row in json.loads(result.stdout)] == ["ann", "bob"]
    assert out.stat().st_size > 0
    if name == "s.csv":
        assert [row["lead_id"] for row in csv.DictReader(out.open())] == ["ann", "bob"]


def test_stdout_has_one_writer(events: Path) -> None:
    result = CliRunner().invoke(app, ["score", str(events), "--as-of", AS_OF, "-o", "-", "--json"])
    assert result.exit_code == 2
    assert "-o - and --json both write to stdout" in result.stderr and result.stdout == ""


def test_a_negative_top_is_refused_by_the_option(events: Path) -> None:
    result = CliRunner().invoke(app, ["score", str(events), "--as-of", AS_OF, "--top", "-1"])
    assert result.exit_code == 2
    assert "--top" in result.stderr and "Binder Error" not in result.stderr
