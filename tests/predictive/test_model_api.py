"""The public API the scoring command uses: load_model, predict_proba, SchemaError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pyrometer.predictive import SchemaError, load_model
from pyrometer.predictive.artifact import ModelDirError, fingerprint, save
from pyrometer.predictive.models import make_model
from pyrometer.predictive.pipeline import prepare

from .conftest import make_history


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("m")
    make_history(600, seed=1).to_csv(folder / "h.csv", index=False)
    prepared = prepare(folder / "h.csv", "Converted", "Lead ID")
    model = make_model("lightgbm", 0).fit(prepared.X, prepared.y)
    save(
        folder / "model",
        model,
        prepared.schema,
        {"bands": {"hot": 0.6, "warm": 0.3}},
        fingerprint(prepared.frame),
        len(prepared.y),
    )
    return folder / "model"


def test_probabilities_in_input_order_and_they_rank(model_dir: Path) -> None:
    model = load_model(model_dir)
    assert model.id_column == "Lead ID"
    fresh = make_history(300, seed=2)
    p = model.predict_proba(fresh.drop(columns=["Converted"]))
    assert p.shape == (300,) and np.all((p > 0) & (p < 1))
    assert roc_auc_score(fresh["Converted"] == "Won", p) > 0.7
    shuffled = fresh.sample(frac=1.0, random_state=3)
    q = model.predict_proba(shuffled)
    assert np.allclose(q, p[shuffled.index.to_numpy()])


def test_normalised_column_names_are_accepted(model_dir: Path) -> None:
    model = load_model(model_dir)
    fresh = make_history(30, seed=8)
    renamed = fresh.rename(columns={"Do Not Email": "do_not_email", "Source": "source"})
    assert np.allclose(model.predict_proba(renamed), model.predict_proba(fresh))


def test_unseen_categories_and_placeholders_are_handled(model_dir: Path) -> None:
    model = load_model(model_dir)
    fresh = make_history(20, seed=4)
    fresh.loc[0, "Source"] = "Carrier pigeon"
    fresh.loc[1, "Source"] = "N/A"
    fresh.loc[2, "Visits"] = "null"
    assert np.isfinite(model.predict_proba(fresh)).all()


def test_schema_errors_name_missing_and_mistyped_columns(model_dir: Path) -> None:
    model = load_model(model_dir)
    fresh = make_history(20, seed=5).drop(columns=["Source"])
    with pytest.raises(SchemaError, match=r"missing column.*'Source'"):
        model.predict_proba(fresh)
    fresh = make_history(20, seed=5)
    fresh.loc[3, "Visits"] = "lots"
    with pytest.raises(SchemaError, match="'Visits' should be numeric but row 4 has 'lots'"):
        model.predict_proba(fresh)
    assert issubclass(SchemaError, ValueError)


def test_explanations_are_tree_shap_per_column(model_dir: Path) -> None:
    model = load_model(model_dir)
    fresh = make_history(50, seed=6)
    factors = model.explain(fresh, top=2)
    assert len(factors) == 50
    # Visits drives the synthetic outcome: it must be among the reasons of most leads.
    mentioned = sum(any(f.startswith("Visits=") for f in up + down) for up, down in factors)
    assert mentioned > 25
    raw = model.model.contributions(model.design(fresh))
    logits = np.log(model.predict_proba(fresh) / (1 - model.predict_proba(fresh)))
    # SHAP values plus the expected value reproduce the calibrated log-odds.
    assert np.ptp(logits - raw.sum(axis=1)) < 1e-6


def test_incomplete_model_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelDirError, match="not a model folder"):
        load_model(tmp_path / "absent")
    (tmp_path / "meta.json").write_text("{}")
    with pytest.raises(ModelDirError, match=r"missing model\.json"):
        load_model(tmp_path)


def test_fingerprint_tracks_the_data() -> None:
    a = make_history(100)
    b = a.copy()
    assert fingerprint(a) == fingerprint(b)
    b.loc[5, "Source"] = "Other"
    assert fingerprint(a) != fingerprint(b)


def test_same_seed_same_model(tmp_path: Path) -> None:
    make_history(300).to_csv(tmp_path / "h.csv", index=False)
    prepared = prepare(tmp_path / "h.csv", "Converted", "Lead ID")
    p1 = make_model("lightgbm", 7).fit(prepared.X, prepared.y).predict_proba(prepared.X)
    p2 = make_model("lightgbm", 7).fit(prepared.X, prepared.y).predict_proba(prepared.X)
    assert np.array_equal(p1, p2)
    assert not pd.Series(p1).isna().any()
