"""``pyrometer demo``: a new user's first command shows temperature predicting purchases."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from typer.testing import CliRunner

from pyrometer.cli.app import app


def test_demo_writes_files_and_hot_converts_most(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--dir", str(folder), "--leads", "2000", "--end", "2026-11-23T00:00:00Z"]
    )
    assert result.exit_code == 0, result.stderr
    for name in ("leads.csv", "events.csv", "scores.csv"):
        assert (folder / name).stat().st_size > 0
    scores = list(csv.DictReader((folder / "scores.csv").open()))
    assert len(scores) == 2000
    counts = {t: sum(row["temperature"] == t for row in scores) for t in ("hot", "warm", "cold")}
    assert counts["cold"] > counts["warm"] > counts["hot"] > 0
    rates = {
        m[0]: float(m[1]) for m in re.findall(r"(hot|warm|cold)\s*│.*?│\s*([\d.]+)%", result.stdout)
    }
    assert rates["hot"] > rates["warm"] > rates["cold"]


def test_demo_is_reproducible(tmp_path: Path) -> None:
    args = ["demo", "--leads", "200", "--seed", "3", "--end", "2026-11-23T00:00:00Z", "--dir"]
    CliRunner().invoke(app, [*args, str(tmp_path / "a")])
    CliRunner().invoke(app, [*args, str(tmp_path / "b")])
    for name in ("events.csv", "scores.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
