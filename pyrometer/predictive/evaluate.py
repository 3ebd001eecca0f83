"""Honest numbers: every candidate judged on leads it was not trained on.

The same out-of-fold predictions serve three purposes: choosing the model, reporting
metrics a team can trust, and setting probability bands for cold / warm / hot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from pyrometer.predictive.models import (
    CANDIDATES,
    BlendModel,
    LightGBMModel,
    LogisticModel,
    Model,
    _sigmoid,
    make_model,
    platt,
)

# Held-out rows per fold whose contributions are kept (enough for mean absolute effects).
CONTRIBUTION_ROWS = 2_000

# Share of leads called hot and warm when bands are set from the history's own scores.
HOT_SHARE = 0.2
WARM_SHARE = 0.3

Progress = Callable[[str], None]


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """ROC AUC, PR AUC, Brier score, log loss and lift of the top decile."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    deciles = lift_by_decile(y, p)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "lift_top_decile": deciles[0]["lift"],
    }


def lift_by_decile(y: np.ndarray, p: np.ndarray) -> list[dict[str, float]]:
    """Deciles from the highest scores down: conversion rate and lift over the base rate."""
    order = np.argsort(-p, kind="stable")
    base = float(y.mean()) or 1.0
    out = []
    for number, chunk in enumerate(np.array_split(order, 10), start=1):
        if chunk.size == 0:
            continue
        rate = float(y[chunk].mean())
        out.append(
            {
                "decile": number,
                "leads": int(chunk.size),
                "conversion_rate": rate,
                "mean_p": float(p[chunk].mean()),
                "lift": rate / base,
            }
        )
    return out


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted against observed conversion, in equal-count bins of predictions."""
    order = np.argsort(p, kind="stable")
    out = []
    for chunk in np.array_split(order, bins):
        if chunk.size:
            out.append(
                {
                    "mean_p": float(p[chunk].mean()),
                    "observed": float(y[chunk].mean()),
                    "leads": int(chunk.size),
                }
            )
    return out


def probability_bands(p: np.ndarray) -> dict[str, float]:
    """Thresholds that call the top 20% of the history's leads hot and the next 30% warm."""
    return {
        "hot": float(np.quantile(p, 1 - HOT_SHARE)),
        "warm": float(np.quantile(p, 1 - HOT_SHARE - WARM_SHARE)),
    }


def band_rates(y: np.ndarray, p: np.ndarray, bands: dict[str, float]) -> list[dict[str, Any]]:
    """Conversion rate by temperature band: the check that "hot" means something."""
    labels = np.where(p >= bands["hot"], "hot", np.where(p >= bands["warm"], "warm", "cold"))
    out = []
    for band in ("hot", "warm", "cold"):
        mask = labels == band
        out.append(
            {
                "band": band,
                "leads": int(mask.sum()),
                "conversion_rate": float(y[mask].mean()) if mask.any() else None,
            }
        )
    return out


@dataclass
class CrossValidation:
    """Out-of-fold probabilities per candidate, and the summary a report needs."""

    y: np.ndarray
    oof: dict[str, np.ndarray]
    folds: int
    seed: int
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    # LightGBM's contributions (tree SHAP, per design column) on held-out rows of each
    # fold, for the leakage guard's sign that one column carries most of the signal.
    contributions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    # The Platt (slope, intercept) of LightGBM's out-of-fold raw scores, for the final fit.
    calibration: tuple[float, float] = (1.0, 0.0)

    def __post_init__(self) -> None:
        self.scores = {name: metrics(self.y, p) for name, p in self.oof.items()}

    @property
    def chosen(self) -> str:
        """The candidate with the best ROC AUC; on a tie the simpler order of CANDIDATES."""
        ranked = [name for name in CANDIDATES if name in self.oof]
        return max(ranked, key=lambda n: (round(self.scores[n]["roc_auc"], 4), -ranked.index(n)))

    def summary(self) -> dict[str, Any]:
        chosen = self.chosen
        p = self.oof[chosen]
        bands = probability_bands(p)
        out: dict[str, Any] = {
            "model": chosen,
            "folds": self.folds,
            "seed": self.seed,
            "leads": len(self.y),
            "base_rate": float(self.y.mean()),
        }
        out.update(self.scores[chosen])
        out["baselines"] = {name: self.scores[name] for name in self.oof if name != chosen}
        out["lift_by_decile"] = lift_by_decile(self.y, p)
        out["calibration"] = calibration_curve(self.y, p)
        out["bands"] = bands
        out["band_rates"] = band_rates(self.y, p, bands)
        return out


def cross_validate(
    X: pd.DataFrame,
    y: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
) -> CrossValidation:
    """Out-of-fold predictions of every candidate (and of plain, uncalibrated LightGBM).

    One LightGBM fit per fold: its raw held-out scores serve both the uncalibrated and the
    calibrated candidate. The Platt correction of fold k is learned on the other folds'
    held-out scores (cross-fitted), so the calibrated probabilities stay out of sample;
    the one learned on all of them is what :func:`fit_chosen` gives the final model.
    """
    counts = np.bincount(y, minlength=2)
    folds = int(max(2, min(folds, counts.min())))
    oof = {name: np.zeros(len(y)) for name in (*CANDIDATES, "lightgbm_uncalibrated")}
    raw = np.zeros(len(y))
    fold_of = np.zeros(len(y), dtype=int)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    contributions = []
    for number, (train, test) in enumerate(splitter.split(X, y)):
        if progress:
            progress(f"fold {number + 1}/{folds}")
        Xtr, Xte, ytr = X.iloc[train], X.iloc[test], y[train]
        trees = LightGBMModel(seed, calibrate=False).fit(Xtr, ytr)
        raw[test] = trees.raw_score(Xte)
        fold_of[test] = number
        contributions.append(trees.contributions(Xte.iloc[:CONTRIBUTION_ROWS]))
        oof["logistic"][test] = LogisticModel(seed).fit(Xtr, ytr).predict_proba(Xte)
        oof["naive_bayes"][test] = make_model("naive_bayes", seed).fit(Xtr, ytr).predict_proba(Xte)
    for number in range(folds):
        test = fold_of == number
        slope, intercept = platt(raw[~test], y[~test])
        oof["lightgbm"][test] = _sigmoid(slope * raw[test] + intercept)
    oof["lightgbm_uncalibrated"] = _sigmoid(raw)
    oof["blend"] = (oof["lightgbm"] + oof["logistic"]) / 2.0
    return CrossValidation(
        y=y,
        oof=oof,
        folds=folds,
        seed=seed,
        contributions=np.vstack(contributions),
        calibration=platt(raw, y),
    )


def fit_chosen(cv: CrossValidation, X: pd.DataFrame, y: np.ndarray) -> Model:
    """The candidate cross-validation chose, fitted on all of ``X`` (one LightGBM booster,
    calibrated by the correction learned on the out-of-fold scores)."""
    if cv.chosen == "lightgbm":
        return LightGBMModel(cv.seed, calibration=cv.calibration).fit(X, y)
    if cv.chosen == "blend":
        return BlendModel(cv.seed, calibration=cv.calibration).fit(X, y)
    return make_model(cv.chosen, cv.seed).fit(X, y)
