"""The learned scorecard is a real playbook: the core scores a lead with the same points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.core.conditions import normalize_record
from pyrometer.core.fit import fit_lines
from pyrometer.core.playbook import load_playbook
from pyrometer.predictive.pipeline import prepare
from pyrometer.predictive.scorecard import Scorecard, cross_validated_auc

from .conftest import make_history


def _card(tmp_path: Path, n: int = 500) -> tuple[Scorecard, object, Path]:
    make_history(n).to_csv(tmp_path / "h.csv", index=False)
    prepared = prepare(tmp_path / "h.csv", "Converted", "Lead ID")
    card = Scorecard().fit(prepared.schema, prepared.cleaned, prepared.y)
    path = tmp_path / "scorecard.yaml"
    path.write_text(yaml.safe_dump(card.playbook(prepared.schema, "h.csv"), sort_keys=False))
    return card, prepared, path


def test_playbook_fit_points_equal_scorecard_points(tmp_path: Path) -> None:
    card, prepared, path = _card(tmp_path)
    playbook = load_playbook(path)
    assert playbook.fit, "the scorecard must produce fit rules"
    fresh = make_history(200, seed=9)
    fresh.loc[0, "Source"] = "Carrier pigeon"  # unseen category
    fresh.loc[1, "Visits"] = "250"  # beyond the training range
    expected = card.points(prepared.schema.check(fresh))
    for i, record in enumerate(fresh.to_dict("records")):
        lines = fit_lines(playbook, normalize_record(record))
        assert sum(line.points for line in lines) == expected[i], record


def test_points_are_integers_and_rank_leads(tmp_path: Path) -> None:
    card, prepared, _ = _card(tmp_path)
    points = card.points(prepared.cleaned)
    assert np.array_equal(points, np.round(points))
    auc = cross_validated_auc(prepared.schema, prepared.cleaned, prepared.y, 3, 0)
    assert 0.6 < auc <= 1.0


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_playbook_agrees_on_random_histories(tmp_path_factory, seed: int) -> None:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("sc")
    make_history(150, seed=seed).to_csv(tmp / "h.csv", index=False)
    prepared = prepare(tmp / "h.csv", "Converted", "Lead ID")
    card = Scorecard().fit(prepared.schema, prepared.cleaned, prepared.y)
    (tmp / "p.yaml").write_text(yaml.safe_dump(card.playbook(prepared.schema, "h")))
    playbook = load_playbook(tmp / "p.yaml")
    expected = card.points(prepared.cleaned)
    frame = prepared.frame
    for i, record in enumerate(frame.to_dict("records")):
        total = sum(line.points for line in fit_lines(playbook, normalize_record(record)))
        assert total == expected[i]
