from __future__ import annotations

from pathlib import Path

import numpy as np

from pyrometer.predictive.pipeline import prepare

from .conftest import make_history


def _leaky_history(tmp_path: Path) -> Path:
    frame = make_history(500)
    won = frame["Converted"] == "Won"
    rng = np.random.default_rng(0)
    # Written by sales after the outcome: a verdict that mirrors it, mostly.
    frame["Sales Verdict"] = np.where(won ^ (rng.random(len(frame)) < 0.03), "good", "bad")
    # Filled in only once a deal closed.
    frame["Contract Size"] = np.where(won, rng.integers(1, 100, len(frame)).astype(str), "")
    path = tmp_path / "leaky.csv"
    frame.to_csv(path, index=False)
    return path


def test_leaky_columns_are_named_with_a_reason(tmp_path: Path) -> None:
    prepared = prepare(_leaky_history(tmp_path), "Converted", "Lead ID")
    leaks = {leak.column: leak for leak in prepared.leaks}
    assert "on its own" in leaks["Sales Verdict"].message()
    assert "filled in for 100% of converted leads but 0%" in leaks["Contract Size"].message()
    assert "Visits" not in leaks and "Noise" not in leaks and "Source" not in leaks


def test_drop_leaky_removes_them(tmp_path: Path) -> None:
    prepared = prepare(_leaky_history(tmp_path), "Converted", "Lead ID", drop_leaky=True)
    assert "Sales Verdict" not in prepared.schema.columns
    assert "Contract Size" not in prepared.schema.columns
    assert "Visits" in prepared.schema.columns
    assert "leak" in prepared.schema.dropped["Sales Verdict"]


def test_dates_after_the_decision_time_are_flagged(tmp_path: Path) -> None:
    frame = make_history(300)
    created = frame["Created"].map(lambda d: np.datetime64(d))
    rng = np.random.default_rng(2)
    # Recorded when the deal was settled, weeks after the lead came in.
    settled = created + rng.integers(5, 60, len(frame)).astype("timedelta64[D]")
    frame["Settled On"] = [str(d)[:10] for d in settled]
    frame.to_csv(tmp_path / "h.csv", index=False)
    prepared = prepare(tmp_path / "h.csv", "Converted", "Lead ID", time_column="Created")
    leaks = {leak.column: leak.message() for leak in prepared.leaks}
    assert "fall after the decision time" in leaks["Settled On"]
    assert "Created" not in leaks
