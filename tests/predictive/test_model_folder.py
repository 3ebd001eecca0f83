"""MODEL_DIR without pickle: ``model.json`` gives back the same model, whichever candidate
cross-validation chose; an old pickled folder loads only with ``--trust-pickle``."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.predictive.artifact import ModelDirError, fingerprint, load_model, save
from pyrometer.predictive.models import CANDIDATES, make_model
from pyrometer.predictive.pipeline import Prepared, prepare

from .conftest import make_history

runner = CliRunner()


def _history(n: int, seed: int) -> pd.DataFrame:
    """With a 60-level column, so LightGBM's target encoding tables are stored too."""
    frame = make_history(n, seed)
    rng = np.random.default_rng(seed + 100)
    frame.insert(3, "City", [f"city{k}" for k in rng.integers(0, 60, n)])
    return frame


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    folder = tmp_path_factory.mktemp("h")
    _history(700, 1).to_csv(folder / "h.csv", index=False)
    return prepare(folder / "h.csv", "Converted", "Lead ID")


def _save(prepared: Prepared, name: str, folder: Path) -> Path:
    model = make_model(name, 0).fit(prepared.X, prepared.y)
    return save(
        folder,
        model,
        prepared.schema,
        {"bands": {"hot": 0.6, "warm": 0.3}},
        fingerprint(prepared.frame),
        len(prepared.y),
    )


@pytest.mark.parametrize("name", CANDIDATES)
def test_every_candidate_reads_back_with_identical_predictions(
    prepared: Prepared, name: str, tmp_path: Path
) -> None:
    model = make_model(name, 0).fit(prepared.X, prepared.y)
    folder = save(tmp_path, model, prepared.schema, {}, "x", len(prepared.y))
    assert not (folder / "model.pkl").exists()
    data = (folder / "model.json").read_bytes()
    assert not data.startswith(b"\x80")  # a pickle's first byte
    document = json.loads(data)
    assert document["kind"] == name and json.loads((folder / "meta.json").read_text())["format"]
    loaded = load_model(folder)
    fresh = _history(300, 9).drop(columns=["Converted"])
    design = loaded.design(fresh)
    assert np.array_equal(loaded.model.predict_proba(design), model.predict_proba(design))
    assert np.array_equal(loaded.model.contributions(design), model.contributions(design))
    if name == "lightgbm":
        assert document["encoders"]  # the City column was target-encoded and stored


def _pickled_folder(prepared: Prepared, folder: Path) -> Path:
    """A folder as ``pyrometer train`` wrote it before: model.pkl, meta format 1."""
    _save(prepared, "lightgbm", folder)
    stored = load_model(folder)
    with open(folder / "model.pkl", "wb") as handle:
        pickle.dump(stored.model, handle)
    (folder / "model.json").unlink()
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "format": 1}))
    return folder


def test_an_old_pickled_folder_needs_trust_pickle(prepared: Prepared, tmp_path: Path) -> None:
    folder = _pickled_folder(prepared, tmp_path / "old")
    with pytest.raises(ModelDirError, match="--trust-pickle"):
        load_model(folder)
    fresh = _history(50, 4).drop(columns=["Converted"])
    trusted = load_model(folder, trust_pickle=True)
    assert trusted.predict_proba(fresh).shape == (50,)
    # Training again into the same folder replaces the pickle with model.json.
    _save(prepared, "lightgbm", folder)
    assert not (folder / "model.pkl").exists() and load_model(folder).predict_proba(fresh).size


def test_predict_and_score_refuse_a_pickled_folder_in_one_line(
    prepared: Prepared, tmp_path: Path
) -> None:
    folder = _pickled_folder(prepared, tmp_path / "old")
    leads = _history(40, 5).drop(columns=["Converted"])
    leads.to_csv(tmp_path / "leads.csv", index=False)
    result = runner.invoke(app, ["predict", str(folder), str(tmp_path / "leads.csv")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--trust-pickle" in lines[0] and "model.pkl" in lines[0]
    assert result.stdout == ""
    result = runner.invoke(
        app, ["predict", str(folder), str(tmp_path / "leads.csv"), "--trust-pickle"]
    )
    assert result.exit_code == 0, result.stderr
    out = pd.read_csv(__import__("io").StringIO(result.stdout))
    assert out["Lead ID"].tolist() == leads["Lead ID"].tolist()
    assert out["p_convert"].between(0, 1).all()

    score = ["score", "--leads", str(tmp_path / "leads.csv"), "--model", str(folder), "--json"]
    result = runner.invoke(app, score)
    assert result.exit_code == 2 and "--trust-pickle" in result.stderr
    result = runner.invoke(app, [*score, "--trust-pickle"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 40 and all(0 < row["p_convert"] < 1 for row in rows)
