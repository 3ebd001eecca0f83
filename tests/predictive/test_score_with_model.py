"""``pyrometer score --model``: p_convert beside the points, and probability temperatures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.playbook import default_playbook_text
from pyrometer.core.timeutil import from_us, to_us
from pyrometer.demo.synth import generate

AS_OF = "2026-11-23T00:00:00Z"


def test_score_with_a_model_adds_p_convert_and_bands(tmp_path: Path) -> None:
    company = generate(600, seed=5, end=from_us(to_us(AS_OF)))
    leads, events = company.write(tmp_path)
    buyers = {row["lead_id"] for row in company.events if row["event"] == "purchase"}
    history = tmp_path / "history.csv"
    with history.open("w", newline="") as handle:
        fields = [*company.leads[0], "converted"]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in company.leads:
            writer.writerow({**row, "converted": "yes" if row["lead_id"] in buyers else "no"})
    runner = CliRunner()
    trained = runner.invoke(
        app,
        [
            "train",
            str(history),
            "--target",
            "converted",
            "--id",
            "lead_id",
            "--folds",
            "3",
            "-o",
            str(tmp_path / "model"),
        ],
    )
    assert trained.exit_code == 0, trained.stderr

    args = [
        "score",
        str(events),
        "--leads",
        str(leads),
        "--as-of",
        AS_OF,
        "--json",
        "--model",
        str(tmp_path / "model"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 600
    assert all(0.0 <= row["p_convert"] <= 1.0 for row in rows)
    assert len({round(row["p_convert"], 6) for row in rows}) > 10

    book = tmp_path / "bands.yaml"
    book.write_text(
        default_playbook_text().replace(
            "  hot: 50\n  warm: 20\n",
            "  hot: 50\n  warm: 20\n  probability: {hot: 0.3, warm: 0.1}\n",
        )
    )
    banded = json.loads(runner.invoke(app, [*args, "--playbook", str(book)]).stdout)
    for row in banded:
        expected = (
            "hot" if row["p_convert"] >= 0.3 else "warm" if row["p_convert"] >= 0.1 else "cold"
        )
        assert row["temperature"] == expected, row

    no_leads = runner.invoke(
        app, ["score", str(events), "--as-of", AS_OF, "--model", str(tmp_path / "model")]
    )
    assert no_leads.exit_code == 2 and "--model needs --leads" in no_leads.stderr

    # Files whose id column has another name: --id names it for the scorer and the model.
    renamed = []
    for source in (leads, events):
        target = tmp_path / f"ref-{source.name}"
        text = source.read_text()
        target.write_text(text.replace("lead_id", "Contact Ref", 1))
        renamed.append(target)
    by_ref = runner.invoke(
        app,
        [
            "score",
            str(renamed[1]),
            "--leads",
            str(renamed[0]),
            "--id",
            "Contact Ref",
            "--as-of",
            AS_OF,
            "--json",
            "--model",
            str(tmp_path / "model"),
        ],
    )
    assert by_ref.exit_code == 0, by_ref.stderr
    assert json.loads(by_ref.stdout) == rows
