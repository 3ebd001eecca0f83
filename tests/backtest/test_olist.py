"""A backtest on real data: Olist's 8,000 MQLs and their 842 closed deals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from pyrometer.cli.app import app

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "examples"))


def test_origin_points_rank_olist_leads_and_wins_come_from_the_deals_file(
    shared_data: Path, tmp_path: Path
) -> None:
    from olist_mql_events import write

    folder = shared_data / "olist_marketing_funnel"
    events = write(folder, tmp_path / "mql_events.csv")
    result = CliRunner().invoke(
        app,
        [
            "backtest", str(events), "--outcomes", str(folder / "olist_closed_deals_dataset.csv"),
            "--id", "mql_id", "--playbook", str(REPO / "examples" / "olist_playbook.yaml"),
            "--from", "2017-07-01", "--to", "2018-05-31", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)
    assert (got["leads"], got["events"], got["outcomes_from"]) == (8000, 8000, "file")
    (olist,) = got["playbooks"]
    # 842 deals; those won before the range, or before their own first contact (data
    # errors), or after the range and its horizon are not counted.
    assert 650 < olist["won_leads"] < 842
    hot, warm, cold = olist["bands"]
    assert hot["lift"] > warm["lift"] > 1 > cold["lift"]
    assert 0.01 < olist["base_rate"] < 0.02
