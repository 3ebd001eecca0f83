"""Leakage guard: columns that know the outcome and would make a model lie.

Sales teams write fields after they talk to a lead (``Tags: Closed by Horizzon``,
``Lead Quality``). Trained on such fields a model looks excellent in evaluation and is
useless on new leads, where the fields are still empty. Three signs, each cheap:

1. the column alone ranks outcomes almost perfectly (out-of-fold AUC of its own values);
2. the column is filled in far more often for one outcome than the other — a field
   written after the outcome is empty for the leads nobody followed up;
3. its name says it is a judgement or a status (``quality``, ``status``, ``score``...).

A fourth sign does not depend on the name or on how the column is filled: after
training, one column that carries far more of the model's signal than any other
(:func:`dominant_column`, its share of the contributions against the next column's) is
reported with the figures, so the user decides.
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


def per_column(schema: Schema, contrib: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Contributions per model column summed per input column (a date's parts are one)."""
    owners = [owner for _, owner in schema.design_names()]
    names = list(dict.fromkeys(owners))
    out = np.zeros((contrib.shape[0], len(names)))
    for j, owner in enumerate(owners):
        out[:, names.index(owner)] += contrib[:, j]
    return names, out


DOMINANT_SHARE = 0.5
DOMINANT_RATIO = 3.0


def dominant_column(names: list[str], contributions: np.ndarray) -> Leak | None:
    """The input column carrying far more of the model's signal than any other, if one does.

    ``contributions``: per row and input column, the column's effect in log-odds (tree
    SHAP values). A column with at least half of the mean absolute effect and three times
    the next column's is reported with both shares: a figure written after the sales
    call, always filled and innocently named, looks like this.
    """
    if contributions.size == 0 or len(names) < 2:
        return None
    weight = np.abs(contributions).mean(axis=0)
    total = float(weight.sum())
    if total <= 0:
        return None
    order = np.argsort(-weight)
    top, second = float(weight[order[0]]) / total, float(weight[order[1]]) / total
    if top >= DOMINANT_SHARE and top >= DOMINANT_RATIO * max(second, 1e-12):
        reason = (
            f"it carries {top:.0%} of the model's signal, the next column "
            f"({names[order[1]]!r}) {second:.0%}: check that it is known before the outcome"
        )
        return Leak(names[order[0]], (reason,))
    return None
