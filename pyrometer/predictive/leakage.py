"""Leakage guard: columns that know the outcome and would make a model lie.

Sales teams write fields after they talk to a lead (``Tags: Closed by Horizzon``,
``Lead Quality``). Trained on such fields a model looks excellent in evaluation and is
useless on new leads, where the fields are still empty. Four signs, each cheap:

1. the column alone ranks outcomes almost perfectly (out-of-fold AUC of its own values);
2. the column is filled in far more often for one outcome than the other — a field
   written after the outcome is empty for the leads nobody followed up;
3. a date column falls after the decision time (with ``--time``);
4. its name says it is a judgement or a status (``quality``, ``status``, ``score``...).

Two more signs depend neither on the name nor on how the column is filled, and are
warnings only (``--drop-leaky`` leaves such columns in; the user decides from the figures):

5. after training, one column carries far more of the model's signal than any other
   (:func:`dominant_column`, its share of the contributions against the next column's);
6. a column is a copy of another one, rewritten for some leads, and the rewrite depends on
   the outcome (:func:`rewritten_copies`): X Education's ``Last Notable Activity`` is
   ``Last Activity`` except for the leads later marked ``Modified``, 22% of the converted
   ones but 46% of the others. It shares its signal with ``Last Activity``, so neither its
   share of the model's signal nor its own AUC stands out.
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
    # False for the signs that only warn (5 and 6): --drop-leaky leaves the column in.
    droppable: bool = True

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
        return Leak(names[order[0]], (reason,), droppable=False)
    return None


COPY_AGREEMENT = 0.5
COPY_KAPPA = 0.4
COPY_ODDS = 2.5
COPY_GAP = 0.05
NOVEL = 0.5


def _copy_keys(values: pd.Series, kind: str) -> np.ndarray:
    """Each lead's value as comparable text (numbers by value), None when missing."""
    if kind == ColumnKind.NUMERIC:
        numbers = to_numbers(values)
        return np.array([repr(float(n)) if np.isfinite(n) else None for n in numbers], dtype=object)
    if kind == ColumnKind.DATETIME:
        return np.array(
            [None if pd.isna(s) else str(s) for s in to_datetimes(values)], dtype=object
        )
    return np.array([None if v is None else category_key(v) for v in values.tolist()], dtype=object)


def _novelty(keys: np.ndarray, rows: np.ndarray, other: set[str]) -> float:
    """Share of ``rows`` where the column holds a value the other column never holds."""
    if not rows.any():
        return 0.0
    return float(np.mean([k is not None and k not in other for k in keys[rows]]))


def rewritten_copies(schema: Schema, cleaned: pd.DataFrame, y: np.ndarray) -> list[Leak]:
    """Columns that copy another column except where they were rewritten, when the rewrite
    depends on the outcome (sign 6).

    A pair is a copy when the two columns hold the same value for at least half of the
    leads, well beyond what chance gives for their value frequencies (Cohen's kappa
    >= 0.4, so two yes/no columns that are mostly "No" are not copies). The pair is
    reported when the leads where they differ are far more common among one outcome
    (odds ratio >= 2.5, and 5 points apart): a field updated after the sales call beside
    the value it had before. The rewritten column is the one whose differing values the
    other column never holds (``Modified``); when neither is, both are named.
    """
    features = [f for f in schema.features if not f.name.startswith("events: ")]
    keys = {f.name: _copy_keys(cleaned[f.name], f.kind) for f in features}
    numeric = {f.name: f.kind == ColumnKind.NUMERIC for f in features}
    shares = {n: pd.Series(k).value_counts(dropna=True) / len(k) for n, k in keys.items()}
    positives = y == 1
    leaks: dict[str, Leak] = {}
    names = list(keys)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if numeric[first] != numeric[second]:
                continue
            a, b = keys[first], keys[second]
            same = (a == b) & np.array([k is not None for k in a])
            agreement = float(same.mean())
            if agreement < COPY_AGREEMENT:
                continue
            chance = float((shares[first] * shares[second].reindex(shares[first].index)).sum())
            kappa = (agreement - chance) / (1.0 - chance) if chance < 1 else 0.0
            if kappa < COPY_KAPPA:
                continue
            differ = ~same
            cells = [
                int((differ & positives).sum()),
                int((~differ & positives).sum()),
                int((differ & ~positives).sum()),
                int((~differ & ~positives).sum()),
            ]
            if min(cells) < 5:
                continue
            d_pos, d_neg = cells[0] / (cells[0] + cells[1]), cells[2] / (cells[2] + cells[3])
            odds = (cells[0] * cells[3]) / (cells[1] * cells[2])
            if max(odds, 1 / odds) < COPY_ODDS or abs(d_pos - d_neg) < COPY_GAP:
                continue
            new_first = _novelty(a, differ, set(shares[second].index))
            new_second = _novelty(b, differ, set(shares[first].index))
            pairs = [(first, second, new_first), (second, first, new_second)]
            if max(new_first, new_second) >= NOVEL and max(new_first, new_second) >= 2 * min(
                new_first, new_second
            ):
                pairs = [max(pairs, key=lambda t: t[2])]
            for column, original, _ in pairs:
                reason = (
                    f"it holds the same value as {original!r} for {agreement:.0%} of leads, "
                    f"but differs from it for {d_pos:.0%} of converted leads and {d_neg:.0%} "
                    f"of the others (odds ratio {max(odds, 1 / odds):.1f}), as if it was "
                    "rewritten after the outcome: check when it is written"
                )
                known = leaks.get(column)
                reasons = (known.reasons if known else ()) + (reason,)
                leaks[column] = Leak(column, reasons, droppable=False)
    return list(leaks.values())


def merge(leaks: list[Leak], more: list[Leak]) -> list[Leak]:
    """``leaks`` with ``more`` added: one entry per column, its reasons together (droppable
    when any sign that drops found it)."""
    out = {leak.column: leak for leak in leaks}
    for leak in more:
        known = out.get(leak.column)
        if known is None:
            out[leak.column] = leak
        else:
            out[leak.column] = Leak(
                leak.column, known.reasons + leak.reasons, known.droppable or leak.droppable
            )
    return list(out.values())
