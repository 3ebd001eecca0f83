"""Leakage guard: columns that know the outcome and would make a model lie.

Sales teams write fields after they talk to a lead (``Tags: Closed by Horizzon``,
``Lead Quality``). Trained on such fields a model looks excellent in evaluation and is
useless on new leads, where the fields are still empty. Three signs, each cheap:

1. the column alone ranks outcomes almost perfectly (out-of-fold AUC of its own values);
2. the column is filled in far more often for one outcome than the other — a field
   written after the outcome is empty for the leads nobody followed up;
3. its name says it is a judgement or a status (``quality``, ``status``, ``score``...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from pyrometer.predictive.features import Schema, category_key
from pyrometer.predictive.loading import ColumnKind, to_datetimes, to_numbers

ALONE_AUC = 0.85
FILL_RATIO = 2.0
NAME_HINTS = re.compile(
    r"\b(tags?|quality|status|stage|outcome|result|reason|disposition|won|lost|closed?|"
    r"score|index|rating|grade)\b"
)


@dataclass(frozen=True)
class Leak:
    column: str
    reasons: tuple[str, ...]

    def message(self) -> str:
        return f"column {self.column!r} may leak the outcome: " + "; ".join(self.reasons)


def _keys(values: pd.Series, kind: str) -> list[str]:
    if kind == ColumnKind.NUMERIC:
        numbers = to_numbers(values)
        finite = numbers[np.isfinite(numbers)]
        edges = np.unique(np.percentile(finite, np.arange(10, 100, 10))) if finite.size else []
        bins = np.searchsorted(edges, numbers, side="right")
        return ["?" if not np.isfinite(n) else str(b) for n, b in zip(numbers, bins, strict=True)]
    if kind == ColumnKind.DATETIME:
        stamps = to_datetimes(values)
        return ["?" if pd.isna(s) else s.strftime("%Y-%m") for s in stamps]
    return ["?" if v is None else category_key(v) for v in values.tolist()]


def alone_auc(keys: list[str], y: np.ndarray, seed: int = 0) -> float:
    """How well one column ranks outcomes by itself, judged out of fold."""
    series = pd.Series(keys)
    scores = np.zeros(len(y))
    folds = int(min(5, max(2, np.bincount(y, minlength=2).min())))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(series, y):
        prior = y[train].mean()
        stats = pd.DataFrame({"k": series.iloc[train].values, "y": y[train]}).groupby("k")["y"]
        rates = (stats.sum() + 10 * prior) / (stats.count() + 10)
        scores[test] = series.iloc[test].map(rates).astype(float).fillna(prior).to_numpy()
    auc = float(roc_auc_score(y, scores))
    return max(auc, 1.0 - auc)


def find_leaks(schema: Schema, cleaned: pd.DataFrame, y: np.ndarray) -> list[Leak]:
    """Every feature column showing a sign of being written after the outcome."""
    leaks = []
    positives = y == 1
    for spec in schema.features:
        values = cleaned[spec.name]
        reasons = []
        if spec.name.startswith("events: "):
            continue
        auc = alone_auc(_keys(values, spec.kind), y)
        if auc >= ALONE_AUC:
            reasons.append(f"on its own it predicts the outcome with ROC AUC {auc:.2f}")
        filled = np.array([v is not None for v in values.tolist()])
        fill_pos, fill_neg = filled[positives].mean(), filled[~positives].mean()
        low, high = sorted((fill_pos, fill_neg))
        if high >= 0.05 and (low == 0 or high / max(low, 1e-9) >= FILL_RATIO):
            reasons.append(
                f"it is filled in for {fill_pos:.0%} of converted leads but {fill_neg:.0%} of "
                "the others, as if it was written after the outcome"
            )
        if (
            spec.kind == ColumnKind.DATETIME
            and schema.time_column
            and spec.name != schema.time_column
        ):
            after = (to_datetimes(values) > to_datetimes(cleaned[schema.time_column])).mean()
            if after > 0.05:
                reasons.append(f"{after:.0%} of its dates fall after the decision time")
        name = re.sub(r"[^0-9a-z]+", " ", spec.name.lower())
        hint = NAME_HINTS.search(name)
        if hint:
            reasons.append(
                f"its name ({hint.group(0)!r}) suggests a judgement or status set by sales"
            )
        if reasons:
            leaks.append(Leak(spec.name, tuple(reasons)))
    return leaks
