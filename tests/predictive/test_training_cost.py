"""What train and evaluate cost in LightGBM fits (issue #14, section 4): one per fold, one
for the final model, and the final model calibrated by the out-of-fold correction."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from pyrometer.predictive.evaluate import cross_validate, fit_chosen
from pyrometer.predictive.models import LightGBMModel, _sigmoid, platt
from pyrometer.predictive.pipeline import prepare

from .conftest import make_history


def test_one_lightgbm_fit_per_fold_and_one_for_the_final_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_history(1500).to_csv(tmp_path / "h.csv", index=False)
    prepared = prepare(tmp_path / "h.csv", "Converted", "Lead ID")
    fits = []
    original = lgb.LGBMClassifier.fit

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        fits.append(len(args[1]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(lgb.LGBMClassifier, "fit", counted)
    cv = cross_validate(prepared.X, prepared.y, folds=5, seed=0)
    assert len(fits) == 5 and all(n < len(prepared.y) for n in fits)
    model = fit_chosen(cv, prepared.X, prepared.y)
    assert len(fits) == 5 + (cv.chosen in ("lightgbm", "blend"))
    trees = model if isinstance(model, LightGBMModel) else getattr(model, "trees", None)
    if trees is not None:
        assert (trees.slope, trees.intercept) == cv.calibration


def test_calibration_is_judged_out_of_sample() -> None:
    """The correction applied to a fold's scores is learned without that fold: scores
    whose scale is wrong are fixed on held-out rows, as the correction fitted on all."""
    rng = np.random.default_rng(0)
    n = 4000
    raw = rng.normal(0, 1, n)
    y = (rng.random(n) < _sigmoid(0.4 * raw - 1.0)).astype(int)  # too sharp and too high
    slope, intercept = platt(raw, y)
    assert 0.3 < slope < 0.5 and -1.2 < intercept < -0.8
    already = (rng.random(n) < _sigmoid(raw)).astype(int)  # calibrated already: no change
    assert platt(raw, already) == (1.0, 0.0)
