from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pyrometer.predictive.pipeline import prepare

from .conftest import make_history, require_data


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


def test_a_column_carrying_most_of_the_signal_is_reported_whatever_its_name() -> None:
    """A figure known only after the sales call, always filled, innocently named: the
    name and fill signs miss it; its share of the model's contributions does not."""
    import numpy as np
    import pandas as pd

    from pyrometer.predictive.features import learn_schema
    from pyrometer.predictive.leakage import dominant_column, find_leaks, per_column
    from pyrometer.predictive.models import LightGBMModel

    rng = np.random.default_rng(5)
    n = 3000
    y = (rng.random(n) < 0.25).astype(int)
    frame = pd.DataFrame(
        {
            "minutes": np.round(rng.normal(0, 1, n) + 1.2 * y, 2),  # written after the call
            "employees": np.round(rng.normal(0, 1, n) + 0.3 * y, 2),
            "visits": np.round(rng.normal(0, 1, n) + 0.3 * y, 2),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "won": y,
        }
    ).astype(object)
    schema, cleaned = learn_schema(frame, "won", None, [])
    assert find_leaks(schema, cleaned, y) == []  # the older signs see nothing
    X = schema.design(cleaned)
    model = LightGBMModel(0).fit(X, y)
    names, by_column = per_column(schema, model.contributions(X))
    leak = dominant_column(names, by_column)
    assert leak is not None and leak.column == "minutes"
    assert "of the model's signal" in leak.message() and "next column" in leak.message()
    # Without it no column stands out: two of similar weight share the signal.
    schema.features = [f for f in schema.features if f.name != "minutes"]
    X = schema.design(cleaned)
    names, by_column = per_column(schema, LightGBMModel(0).fit(X, y).contributions(X))
    assert dominant_column(names, by_column) is None


def _copied_history(n: int, rewrite_won: float, rewrite_lost: float, seed: int = 3) -> pd.DataFrame:
    """``Latest Step`` copies ``Step`` except for the leads whose record was touched again
    ("Updated"); how often that happens per outcome is the test's knob."""
    frame = make_history(n, seed)
    won = (frame["Converted"] == "Won").to_numpy()
    rng = np.random.default_rng(seed)
    steps = rng.choice(["Email Opened", "Page Visited", "Chat", "Form Submitted", "Call"], n)
    frame["Step"] = steps
    rewrite = rng.random(n) < np.where(won, rewrite_won, rewrite_lost)
    frame["Latest Step"] = np.where(rewrite, "Updated", steps)
    # An honest near-copy: the billing country differs from the country for a fifth of
    # the leads, whatever their outcome.
    country = rng.choice(["DE", "FR", "IT", "ES", "NL", "PL"], n)
    billing = np.where(rng.random(n) < 0.2, rng.choice(["US", "GB", "CH"], n), country)
    frame["Country"], frame["Billing Country"] = country, billing
    return frame


def test_a_copy_rewritten_after_the_outcome_is_reported_whatever_its_name(
    tmp_path: Path,
) -> None:
    """Sign 6: a column that copies another except where it was rewritten, the rewrite
    depending on the outcome (X Education's Last Notable Activity). Its name, fill rate,
    own AUC and share of the signal all look innocent; it is a warning, not a drop."""
    path = tmp_path / "copied.csv"
    _copied_history(3000, rewrite_won=0.15, rewrite_lost=0.45).to_csv(path, index=False)
    prepared = prepare(path, "Converted", "Lead ID", drop_leaky=True)
    leaks = {leak.column: leak for leak in prepared.leaks}
    assert set(leaks) == {"Latest Step"}, [leak.message() for leak in prepared.leaks]
    message = leaks["Latest Step"].message()
    assert "same value as 'Step'" in message and "rewritten after the outcome" in message
    assert "odds ratio" in message and "of converted leads" in message
    assert not leaks["Latest Step"].droppable
    assert "Latest Step" in prepared.schema.columns  # --drop-leaky leaves it: the user decides


def test_an_honest_copy_is_not_reported(tmp_path: Path) -> None:
    """The same pair rewritten as often for either outcome, and a billing country that
    differs from the country at random, are copies but no sign of leakage."""
    path = tmp_path / "honest.csv"
    _copied_history(3000, rewrite_won=0.3, rewrite_lost=0.3).to_csv(path, index=False)
    prepared = prepare(path, "Converted", "Lead ID")
    assert prepared.leaks == [], [leak.message() for leak in prepared.leaks]


@pytest.mark.slow
def test_x_education_last_notable_activity_is_reported() -> None:
    """Missed by the name, fill and signal-share signs; found as a rewritten copy of Last
    Activity. The other columns reported are the known after-contact ones, by name or fill."""
    leads = require_data("x_education_leads", "Leads.csv")
    prepared = prepare(leads, "Converted", "Prospect ID")
    leaks = {leak.column: leak for leak in prepared.leaks}
    assert set(leaks) == {
        "Tags",
        "Lead Quality",
        "Lead Profile",
        "Asymmetrique Activity Index",
        "Asymmetrique Profile Index",
        "Asymmetrique Activity Score",
        "Asymmetrique Profile Score",
        "Last Notable Activity",
    }
    message = leaks["Last Notable Activity"].message()
    assert "same value as 'Last Activity' for 63% of leads" in message
    assert "22% of converted leads and 46% of the others" in message
    assert all(leaks[c].droppable for c in leaks if c != "Last Notable Activity")
