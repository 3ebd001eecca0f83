"""A points table a team can read: binned features, regularised logistic regression, integers.

Gradient-boosted trees are accurate but opaque. A scorecard gives each answer a whole
number of points, so sales can see why a lead has 62 and can edit the rules. It is written
as the ``fit`` section of a complete Pyrometer playbook, and its cost (the AUC it gives up
against the full model) is measured out of fold, so nobody trades accuracy blindly.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from pyrometer.core.conditions import normalize_name
from pyrometer.core.playbook import Playbook, default_playbook
from pyrometer.predictive.evaluate import HOT_SHARE, WARM_SHARE
from pyrometer.predictive.event_features import PREFIX
from pyrometer.predictive.features import Schema, category_key
from pyrometer.predictive.loading import ColumnKind, to_numbers

MAX_LEVELS = 8
NUMERIC_BINS = 4
TOTAL_POINTS = 100


@dataclass
class Bin:
    column: str
    label: str
    condition: dict[str, Any]
    kind: str  # "missing", "level", "other", "range"
    value: Any = None
    low: float | None = None
    high: float | None = None
    points: int = 0
    leads: int = 0
    rate: float = 0.0


def _nice(x: float) -> float:
    """Three significant digits: edges a person can read and type."""
    if x == 0 or not math.isfinite(x):
        return x
    digits = 2 - math.floor(math.log10(abs(x)))
    value = round(x, digits)
    return float(value)


def _bins_for(column: str, kind: str, values: pd.Series) -> list[Bin]:
    bins = [Bin(column, "missing", {"missing": True}, "missing")]
    if kind == ColumnKind.NUMERIC:
        numbers = to_numbers(values)
        finite = numbers[np.isfinite(numbers)]
        quantiles = np.quantile(finite, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1])
        edges = sorted({_nice(float(q)) for q in quantiles} - {_nice(float(finite.min()))})
        bounds = [-math.inf, *edges, math.inf]
        for low, high in itertools.pairwise(bounds):
            condition: dict[str, Any] = {}
            if math.isfinite(low):
                condition["gte"] = low
            if math.isfinite(high):
                condition["lt"] = high
            if not condition:
                condition = {"missing": False}
            label = (
                f"{low:g} to under {high:g}"
                if math.isfinite(low) and math.isfinite(high)
                else f"under {high:g}"
                if math.isfinite(high)
                else f"{low:g} or more"
            )
            bins.append(Bin(column, label, condition, "range", low=low, high=high))
        return bins
    present = [v for v in values.tolist() if v is not None]
    keys = pd.Series([category_key(v) for v in present])
    counts = keys.value_counts()
    spelled = (
        pd.Series([str(v).strip() for v in present])
        .groupby(keys.to_numpy())
        .agg(lambda texts: texts.value_counts().index[0])
    )  # the usual spelling, for people
    floor = max(10, int(0.01 * len(values)))
    levels = [str(k) for k, n in counts.items() if n >= floor][:MAX_LEVELS]
    for level in levels:
        text = str(spelled[level])
        bins.append(Bin(column, text, {"equals": text}, "level", value=level))
    if len(levels) < len(counts):
        shown = [str(spelled[level]) for level in levels]
        bins.append(
            Bin(
                column,
                "other",
                {"missing": False, "not": {"in": shown}} if levels else {"missing": False},
                "other",
            )
        )
    return bins


def _assign(bins: list[Bin], values: pd.Series) -> np.ndarray:
    """The index (into ``bins``) of the bin each value falls in; -1 when none (0 points)."""
    out = np.full(len(values), -1)
    missing = next((j for j, b in enumerate(bins) if b.kind == "missing"), -1)
    ranges = [(j, b) for j, b in enumerate(bins) if b.kind == "range"]
    if ranges:
        for i, number in enumerate(to_numbers(values)):
            if not np.isfinite(number):
                out[i] = missing if values.iloc[i] is None else -1
                continue
            for j, b in ranges:
                if b.low is not None and b.high is not None and b.low <= number < b.high:
                    out[i] = j
                    break
        return out
    index = {b.value: j for j, b in enumerate(bins) if b.kind == "level"}
    other = next((j for j, b in enumerate(bins) if b.kind == "other"), -1)
    for i, v in enumerate(values.tolist()):
        out[i] = missing if v is None else index.get(category_key(v), other)
    return out


class Scorecard:
    """Integer points per bin of each usable column, learned with L2-regularised LR."""

    def __init__(self, C: float = 0.1):
        self.C = C
        self.bins: list[list[Bin]] = []

    def _matrix(self, cleaned: pd.DataFrame) -> np.ndarray:
        blocks = []
        for bins in self.bins:
            assigned = _assign(bins, cleaned[bins[0].column])
            block = np.zeros((len(cleaned), len(bins)))
            rows = np.flatnonzero(assigned >= 0)
            block[rows, assigned[rows]] = 1.0
            blocks.append(block)
        return np.hstack(blocks)

    def fit(self, schema: Schema, cleaned: pd.DataFrame, y: np.ndarray) -> Scorecard:
        usable = [
            s
            for s in schema.features
            if s.kind in (ColumnKind.NUMERIC, ColumnKind.BOOLEAN, ColumnKind.CATEGORICAL)
            and not s.name.startswith(PREFIX)
        ]
        seen: set[str] = set()
        self.bins = []
        for spec in usable:
            if normalize_name(spec.name) in seen:
                continue  # two columns that a playbook cannot tell apart
            seen.add(normalize_name(spec.name))
            kind = ColumnKind.NUMERIC if spec.kind == ColumnKind.NUMERIC else "categorical"
            bins = _bins_for(spec.name, kind, cleaned[spec.name])
            used = set(_assign(bins, cleaned[spec.name]).tolist())
            self.bins.append([b for j, b in enumerate(bins) if j in used])
        matrix = self._matrix(cleaned)
        model = LogisticRegression(C=self.C, max_iter=3000).fit(matrix, y)
        coef = model.coef_[0]
        shifted, position = [], 0
        for bins in self.bins:
            part = coef[position : position + len(bins)]
            position += len(bins)
            shifted.append(part - part.min())
        span = sum(float(part.max()) for part in shifted) or 1.0
        self.factor = TOTAL_POINTS / span  # points per unit of log-odds
        column_rates = matrix.T @ y / np.maximum(matrix.sum(axis=0), 1)
        position = 0
        for bins, part in zip(self.bins, shifted, strict=True):
            for b, value in zip(bins, part, strict=True):
                b.points = round(float(value * self.factor))
                b.leads = int(matrix[:, position].sum())
                b.rate = float(column_rates[position])
                position += 1
        self.base_rate = float(y.mean())
        self.thresholds, self.band_rates = self._temperature(self.points(cleaned), y)
        return self

    @staticmethod
    def _temperature(
        totals: np.ndarray, y: np.ndarray
    ) -> tuple[dict[str, int], dict[str, tuple[int, float]]]:
        """Hot and warm on the scorecard's own scale, by capacity: ``hot`` is the lowest
        total that keeps at most the top 20% of the history's leads hot, ``warm`` at most the
        top 50% warm or hot (the bands ``evaluate`` sets on probabilities). The default
        playbook's 50/20 belong to its hand-set points, not to learned ones that run to 100.
        Also returns each band's leads and conversion rate in the history."""
        candidates = np.unique(np.append(totals, totals.max() + 1)) if totals.size else [1]

        def lowest(share: float) -> int:
            return int(next(t for t in candidates if np.mean(totals >= t) <= share + 1e-12))

        hot = lowest(HOT_SHARE)
        warm = min(lowest(HOT_SHARE + WARM_SHARE), hot - 1)
        labels = np.where(totals >= hot, "hot", np.where(totals >= warm, "warm", "cold"))
        rates = {
            band: (int((labels == band).sum()), float(y[labels == band].mean()))
            for band in ("hot", "warm", "cold")
            if (labels == band).any()
        }
        return {"hot": hot, "warm": warm}, rates

    def points(self, cleaned: pd.DataFrame) -> np.ndarray:
        """Total points per row, computed from the bins directly (not through a playbook)."""
        total = np.zeros(len(cleaned))
        for bins in self.bins:
            assigned = _assign(bins, cleaned[bins[0].column])
            pts = np.array([b.points for b in bins])
            total += np.where(assigned >= 0, pts[np.maximum(assigned, 0)], 0)
        return total

    def fit_rules(self) -> list[dict[str, Any]]:
        rules, names = [], set()
        for bins in self.bins:
            for b in bins:
                if b.points == 0:
                    continue
                name = normalize_name(f"{b.column} {b.label}") or "rule"
                while name in names:
                    name += "_"
                names.add(name)
                rules.append(
                    {
                        "name": name,
                        "why": (
                            f"Learned from history: {b.leads} leads with {b.column} "
                            f"{b.label} converted at {b.rate:.0%} (all leads: "
                            f"{self.base_rate:.0%})."
                        ),
                        "points": b.points,
                        "where": {normalize_name(b.column): b.condition},
                    }
                )
        return rules

    def playbook(self, schema: Schema, source: str) -> dict[str, Any]:
        """A complete playbook (the default one) whose ``fit`` section is this scorecard."""
        base = default_playbook().to_yaml_dict()
        base["name"] = "learned-scorecard"
        doubling = self.factor * math.log(2)
        hot, warm = self.thresholds["hot"], self.thresholds["warm"]
        bands = "; ".join(
            f"{band} {n} leads, {rate:.0%} converted" for band, (n, rate) in self.band_rates.items()
        )
        base["description"] = (
            f"Fit points learned by `pyrometer train --scorecard` from {source}; "
            f"about {doubling:.0f} points double a lead's odds of converting. "
            f"Hot at {hot} points (the top {HOT_SHARE:.0%} of the history's leads on fit "
            f"alone), warm at {warm} (the next {WARM_SHARE:.0%}); in the history: {bands}. "
            "Engagement rules and stages are the default playbook's, on top of fit."
        )
        base["missing_values"] = list(schema.placeholders)
        base["fit"] = self.fit_rules()
        base["temperature"] = {"hot": hot, "warm": warm}
        # MQL sits a third of the way from warm to hot, as the default's 30 between 20 and 50.
        base["lifecycle"]["mql"]["score"] = {"gte": warm + round((hot - warm) / 3)}
        Playbook.model_validate(base)  # fail here, not in the team's hands
        return base


def cross_validated_auc(
    schema: Schema, cleaned: pd.DataFrame, y: np.ndarray, folds: int, seed: int
) -> float:
    """ROC AUC of the scorecard's integer points on leads it was not fitted on."""
    scores = np.zeros(len(y))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(cleaned, y):
        card = Scorecard().fit(schema, cleaned.iloc[train].reset_index(drop=True), y[train])
        scores[test] = card.points(cleaned.iloc[test].reset_index(drop=True))
    return float(roc_auc_score(y, scores))
