"""The learned scorecard sets hot and warm on its own points, not the default's 50/20."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pyrometer.core.fit import fit_lines
from pyrometer.core.playbook import load_playbook
from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect
from pyrometer.io.readers import open_leads
from pyrometer.predictive.pipeline import prepare
from pyrometer.predictive.scorecard import Scorecard

from .conftest import make_history, require_data


def _lowest_total_with_share(points: np.ndarray, share: float) -> int:
    """The lowest total at or above which at most ``share`` of the leads are."""
    return int(
        min(t for t in [*np.unique(points), points.max() + 1] if np.mean(points >= t) <= share)
    )


def test_thresholds_come_from_the_scorecards_own_points(tmp_path: Path) -> None:
    make_history(600).to_csv(tmp_path / "h.csv", index=False)
    prepared = prepare(tmp_path / "h.csv", "Converted", "Lead ID")
    card = Scorecard().fit(prepared.schema, prepared.cleaned, prepared.y)
    points = card.points(prepared.cleaned)
    hot = _lowest_total_with_share(points, 0.2)
    warm = min(_lowest_total_with_share(points, 0.5), hot - 1)
    assert card.thresholds == {"hot": hot, "warm": warm}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(card.playbook(prepared.schema, "h.csv")))
    book = load_playbook(tmp_path / "p.yaml")
    assert (book.temperature.hot, book.temperature.warm) == (hot, warm)
    assert warm < book.lifecycle.mql["score"].gte < hot
    fits = np.array(
        [sum(line.points for line in fit_lines(book, r)) for r in prepared.frame.to_dict("records")]
    )
    assert 0 < np.mean(fits >= hot) <= 0.2
    assert np.mean(fits >= warm) <= 0.5


def test_x_education_without_engagement_is_not_mostly_hot(tmp_path: Path) -> None:
    leads_csv = require_data("x_education_leads", "Leads.csv")
    prepared = prepare(leads_csv, "Converted", "Prospect ID", drop_leaky=True)
    card = Scorecard().fit(prepared.schema, prepared.cleaned, prepared.y)
    playbook = tmp_path / "scorecard.yaml"
    playbook.write_text(yaml.safe_dump(card.playbook(prepared.schema, "Leads.csv")))
    book = load_playbook(playbook)
    frame = pd.read_csv(leads_csv, dtype=str, keep_default_na=False)
    frame = frame.rename(columns={"Prospect ID": "lead_id"}).drop(columns=["Converted"])
    frame.to_csv(tmp_path / "leads.csv", index=False)
    con = connect()
    scored = DuckDBBatchScorer(book, con).score(None, open_leads(con, tmp_path / "leads.csv"), 0)
    assert len(scored) == 9240
    hot = [lead for lead in scored.values() if lead.temperature == "hot"]
    warm = [lead for lead in scored.values() if lead.temperature == "warm"]
    # With 50/20, 2,189 of these leads were hot and 94 cold, on fit alone.
    assert 0.1 * 9240 <= len(hot) <= 0.2 * 9240
    assert len(hot) + len(warm) <= 0.5 * 9240
    assert all(lead.engagement == 0 for lead in scored.values())
    converted = dict(zip(frame["lead_id"], prepared.y, strict=True))
    hot_rate = np.mean([converted[lead.lead_id] for lead in hot])
    assert hot_rate > 2 * prepared.y.mean()  # hot means something: 91% against 39%
