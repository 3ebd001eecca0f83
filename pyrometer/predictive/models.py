"""The candidate models: calibrated LightGBM, and two baselines a team can understand.

Every model takes the design frame of :meth:`Schema.design` and can say, per model column,
how much each value moved a lead's log-odds (:meth:`contributions`), so explanations work
whichever model cross-validation picks.
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

LGB_PARAMS: dict[str, Any] = {
    "n_estimators": 400,
    "learning_rate": 0.03,
    "num_leaves": 7,
    "min_child_samples": 50,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 5.0,
    "cat_smooth": 20.0,
    "cat_l2": 10.0,
    "min_data_per_group": 30,
    "max_cat_to_onehot": 4,
    "n_jobs": 2,
    "verbose": -1,
}


class Model(Protocol):
    name: str

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Model: ...

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...

    def contributions(self, X: pd.DataFrame) -> np.ndarray: ...


TE_SMOOTHING = 20.0
HIGH_CARDINALITY = 30


def _rate_table(keys: pd.Series, y: np.ndarray, prior: float) -> dict[str, float]:
    frame = pd.DataFrame({"k": keys.astype(object).tolist(), "y": y}).dropna()
    stats = frame.groupby("k")["y"].agg(["sum", "count"])
    rates = (stats["sum"] + TE_SMOOTHING * prior) / (stats["count"] + TE_SMOOTHING)
    return {str(k): float(v) for k, v in rates.items()}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


def platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The Platt correction (slope, intercept) of held-out raw scores, or none (1, 0).

    The correction is kept only when it lowers the Brier score of those scores: boosted
    trees with log loss are often calibrated already, and a needless refit only adds noise.
    """
    if min(np.bincount(y, minlength=2)) < 2:
        return 1.0, 0.0
    fitted = LogisticRegression(C=1e4, max_iter=1000).fit(raw.reshape(-1, 1), y)
    slope, intercept = float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
    before = np.mean((_sigmoid(raw) - y) ** 2)
    after = np.mean((_sigmoid(slope * raw + intercept) - y) ** 2)
    return (slope, intercept) if after < before - 1e-4 else (1.0, 0.0)


def _safe_names(X: pd.DataFrame) -> pd.DataFrame:
    """LightGBM rejects JSON characters in feature names; positions are what matter."""
    out = X.copy()
    out.columns = [f"f{i}" for i in range(X.shape[1])]
    return out


SMALL_PREDICTION = 2_000


def _threads(rows: int) -> dict[str, int]:
    """One thread for a few rows (a lead read): OpenMP threads cost 10-20x a one-row
    prediction, far more when another process holds the other core."""
    return {"num_threads": 1} if rows < SMALL_PREDICTION else {}


class LightGBMModel:
    """Gradient-boosted trees whose scores are calibrated on out-of-fold predictions.

    Boosted trees rank well but their raw probabilities drift with the number of trees and
    class balance; a logistic fit (Platt) of the outcome on out-of-fold raw scores fixes the
    scale without touching the ranking, and keeps tree SHAP values additive in log-odds.
    """

    name = "lightgbm"

    def __init__(
        self,
        seed: int = 0,
        calibrate: bool = True,
        params: dict[str, Any] | None = None,
        calibration: tuple[float, float] | None = None,
    ):
        """``calibration``: a Platt (slope, intercept) already learned on out-of-fold raw
        scores (by :func:`~pyrometer.predictive.evaluate.cross_validate`), so ``fit`` needs
        one booster instead of three more for its own out-of-fold scores."""
        self.seed = seed
        self.calibrate = calibrate
        self.calibration = calibration
        self.params = {**LGB_PARAMS, **(params or {}), "random_state": seed}
        self.slope, self.intercept = 1.0, 0.0

    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        """High-cardinality categories replaced by their smoothed conversion rate."""
        if not self.encoders:
            return X
        out = X.copy()
        for position, table in self.encoders.items():
            column = X.columns[position]
            keys = X[column].astype(object).tolist()
            out[column] = [
                np.nan if k is None or k != k else table.get(str(k), self.prior) for k in keys
            ]
        return out

    def _fit_encoders(self, X: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
        """Target encoding for categories with many levels, out-of-fold on the training rows.

        Trees split a 500-level category by sorting levels on their training conversion
        rate, which memorises small levels. A smoothed rate (shrunk toward the base rate by
        ``TE_SMOOTHING`` pseudo-leads) computed on other folds carries the same signal
        without letting a row see its own outcome.
        """
        self.prior = float(y.mean())
        self.encoders: dict[int, dict[str, float]] = {}
        wide = [
            i
            for i, c in enumerate(X.columns)
            if isinstance(X[c].dtype, pd.CategoricalDtype)
            and len(X[c].cat.categories) > HIGH_CARDINALITY
        ]
        if not wide:
            return X
        out = X.copy()
        splitter = StratifiedKFold(5, shuffle=True, random_state=self.seed)
        for position in wide:
            column = X.columns[position]
            keys = pd.Series(X[column].astype(object).tolist(), dtype=object)
            self.encoders[position] = _rate_table(keys, y, self.prior)
            encoded = np.full(len(y), np.nan)
            if min(np.bincount(y, minlength=2)) >= 5:
                for train, test in splitter.split(X, y):
                    table = _rate_table(keys.iloc[train], y[train], self.prior)
                    encoded[test] = [
                        np.nan if k is None or k != k else table.get(str(k), self.prior)
                        for k in keys.iloc[test]
                    ]
            else:
                encoded = np.array(
                    [
                        np.nan
                        if k is None or k != k
                        else self.encoders[position].get(str(k), self.prior)
                        for k in keys
                    ]
                )
            out[column] = encoded
        return out

    def _fit_one(self, X: pd.DataFrame, y: np.ndarray) -> lgb.LGBMClassifier:
        params = dict(self.params)
        params["min_child_samples"] = max(2, min(params["min_child_samples"], len(y) // 20))
        params["min_data_per_group"] = max(2, min(params["min_data_per_group"], len(y) // 20))
        if len(y) < 20_000:
            # Threads cost more than they give on small data, and OpenMP threads spin badly
            # when another process holds the other core.
            params["n_jobs"] = 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return lgb.LGBMClassifier(**params).fit(_safe_names(X), y)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LightGBMModel:
        X = self._fit_encoders(X, y)
        if self.calibration is not None:
            self.slope, self.intercept = self.calibration
        elif self.calibrate and min(np.bincount(y, minlength=2)) >= 3:
            oof = np.zeros(len(y))
            splitter = StratifiedKFold(3, shuffle=True, random_state=self.seed)
            for train, test in splitter.split(X, y):
                part = self._fit_one(X.iloc[train], y[train])
                oof[test] = part.predict(_safe_names(X.iloc[test]), raw_score=True)
            self.slope, self.intercept = platt(oof, y)
        self.booster = self._fit_one(X, y)
        return self

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(
                self.booster.predict(
                    _safe_names(self._encode(X)), raw_score=True, **_threads(len(X))
                ),
                dtype=float,
            )

    def predict_uncalibrated(self, X: pd.DataFrame) -> np.ndarray:
        return _sigmoid(self.raw_score(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return _sigmoid(self.slope * self.raw_score(X) + self.intercept)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Tree SHAP values (LightGBM ``pred_contrib``) in calibrated log-odds."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            contrib = self.booster.predict(
                _safe_names(self._encode(X)), pred_contrib=True, **_threads(len(X))
            )
        return np.asarray(contrib)[:, :-1] * self.slope


class _LinearDesign:
    """One-hot categories (with a missing level) and standardised numbers with a missing flag."""

    def fit(self, X: pd.DataFrame) -> _LinearDesign:
        self.blocks: list[tuple[str, Any]] = []
        for position, column in enumerate(X.columns):
            values = X[column]
            if isinstance(values.dtype, pd.CategoricalDtype):
                present = values.value_counts()
                levels = [str(k) for k, n in present.items() if n > 0]
                self.blocks.append(("cat", (position, levels)))
            else:
                numbers = values.to_numpy(dtype=float)
                finite = numbers[np.isfinite(numbers)]
                if finite.size == 0:
                    finite = np.zeros(1)
                low, high = np.percentile(finite, [1, 99])
                clipped = np.clip(finite, low, high)
                center, scale = float(np.median(clipped)), float(clipped.std() or 1.0)
                # Quintile indicators let the linear model bend where a straight line cannot
                # (conversion that rises then falls with age, a season, a time trend).
                edges = np.unique(np.quantile(finite, [0.2, 0.4, 0.6, 0.8]))
                self.blocks.append(("num", (position, low, high, center, scale, edges)))
        return self

    def transform(self, X: pd.DataFrame) -> tuple[sparse.csr_matrix, np.ndarray]:
        """The matrix (sparse: one-hot blocks are mostly zeros, which a solver need not
        multiply), and for each of its columns the design column it came from."""
        n = len(X)
        every = np.arange(n)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        data: list[np.ndarray] = []
        owners: list[int] = []

        def column(values: np.ndarray, owner: int) -> None:
            nonzero = np.flatnonzero(values)
            rows.append(nonzero)
            cols.append(np.full(nonzero.size, len(owners)))
            data.append(values[nonzero])
            owners.append(owner)

        for kind, spec in self.blocks:
            if kind == "cat":
                position, levels = spec
                values = X.iloc[:, position]
                # Unseen and missing values get -1 (no one-hot column of their own).
                index = {level: i for i, level in enumerate(levels)}
                if isinstance(values.dtype, pd.CategoricalDtype):
                    lookup = np.array(
                        [index.get(c, -1) for c in values.cat.categories] + [-1], dtype=np.int64
                    )
                    codes = lookup[values.cat.codes.to_numpy()]  # code -1 (missing): the last
                else:
                    codes = np.fromiter(
                        (index.get(v, -1) if pd.notna(v) else -1 for v in values.astype(object)),
                        dtype=np.int64,
                        count=n,
                    )
                known = codes >= 0
                rows.append(every[known])
                cols.append(codes[known] + len(owners))
                data.append(np.ones(int(known.sum())))
                owners.extend([position] * len(levels))
                column(values.isna().to_numpy(dtype=float), position)
            else:
                position, low, high, center, scale, edges = spec
                numbers = X.iloc[:, position].to_numpy(dtype=float)
                missing = ~np.isfinite(numbers)
                filled = np.where(missing, center, np.clip(numbers, low, high))
                column((filled - center) / scale, position)
                column(missing.astype(float), position)
                bins = np.searchsorted(edges, filled, side="right")
                for b in range(1, len(edges) + 1):
                    column(((bins >= b) & ~missing).astype(float), position)
        matrix = sparse.csr_matrix(
            (
                np.concatenate(data) if data else np.zeros(0),
                (
                    np.concatenate(rows) if rows else np.zeros(0, dtype=int),
                    np.concatenate(cols) if cols else np.zeros(0, dtype=int),
                ),
            ),
            shape=(n, len(owners)),
        )
        return matrix, np.array(owners, dtype=int)


class LogisticModel:
    """Regularised logistic regression on one-hot categories and standardised numbers."""

    name = "logistic"

    def __init__(self, seed: int = 0, C: float = 0.3):
        self.seed = seed
        self.C = C

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LogisticModel:
        self.design = _LinearDesign().fit(X)
        matrix, self.owners = self.design.transform(X)
        self.mean = np.asarray(matrix.mean(axis=0)).ravel()
        self.model = LogisticRegression(C=self.C, max_iter=3000).fit(matrix, y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        matrix, _ = self.design.transform(X)
        return np.asarray(self.model.predict_proba(matrix)[:, 1])

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        matrix, _ = self.design.transform(X)
        terms = (matrix.toarray() - self.mean) * self.model.coef_[0]
        out = np.zeros((len(X), X.shape[1]))
        for j, owner in enumerate(self.owners):
            out[:, owner] += terms[:, j]
        return out


class NaiveBayesModel:
    """Odoo-style predictive lead scoring: naive Bayes over per-value won/lost frequency tables.

    Odoo's CRM multiplies, for each field, how often the lead's value occurs among won
    versus lost leads. Numbers are cut into deciles first. It is the model many teams
    already trust, so the learned model has to beat it to be worth its complexity.
    """

    name = "naive_bayes"

    def __init__(self, seed: int = 0, smoothing: float = 1.0):
        self.seed = seed
        self.smoothing = smoothing

    def _keys(self, X: pd.DataFrame, position: int) -> list[str]:
        values = X.iloc[:, position]
        edges = self.edges[position]
        if edges is None:
            if isinstance(values.dtype, pd.CategoricalDtype):
                names = np.array([str(c) for c in values.cat.categories] + ["<missing>"])
                return names[values.cat.codes.to_numpy()].tolist()  # code -1: the last
            return [
                "<missing>" if v is None or v != v else str(v)
                for v in values.astype(object).tolist()
            ]
        numbers = values.to_numpy(dtype=float)
        bins = np.searchsorted(edges, numbers, side="right")
        names = np.array([f"bin{b}" for b in range(len(edges) + 1)] + ["<missing>"])
        return names[np.where(np.isfinite(numbers), bins, len(edges) + 1)].tolist()

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> NaiveBayesModel:
        self.edges: list[np.ndarray | None] = []
        for column in X.columns:
            if isinstance(X[column].dtype, pd.CategoricalDtype):
                self.edges.append(None)
            else:
                numbers = X[column].to_numpy(dtype=float)
                finite = numbers[np.isfinite(numbers)]
                edges = (
                    np.unique(np.percentile(finite, np.arange(10, 100, 10)))
                    if finite.size
                    else np.zeros(0)
                )
                self.edges.append(edges)
        won, lost = int(y.sum()), int(len(y) - y.sum())
        self.prior = float(np.log((won + 1) / (lost + 1)))
        self.tables: list[dict[str, float]] = []
        for position in range(X.shape[1]):
            keys = self._keys(X, position)
            frame = pd.DataFrame({"k": keys, "y": y})
            counts = frame.groupby("k")["y"].agg(["sum", "count"])
            k = len(counts)
            a = self.smoothing
            table = {}
            for key, row in counts.iterrows():
                p_won = (row["sum"] + a) / (won + a * k)
                p_lost = (row["count"] - row["sum"] + a) / (lost + a * k)
                table[str(key)] = float(np.log(p_won / p_lost))
            self.tables.append(table)
        return self

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(X), X.shape[1]))
        for position, table in enumerate(self.tables):
            out[:, position] = [table.get(k, 0.0) for k in self._keys(X, position)]
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return _sigmoid(self.prior + self.contributions(X).sum(axis=1))


class BlendModel:
    """The mean of calibrated LightGBM and logistic regression probabilities.

    On small or thin data (few columns, many rare categories) trees and a linear model
    make different mistakes and their average ranks better than either; cross-validation
    decides whether that is the case for a given history. Explanations come from the
    LightGBM half (tree SHAP), the part that carries interactions.
    """

    name = "blend"

    def __init__(self, seed: int = 0, calibration: tuple[float, float] | None = None):
        self.trees = LightGBMModel(seed, calibration=calibration)
        self.linear = LogisticModel(seed)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> BlendModel:
        self.trees.fit(X, y)
        self.linear.fit(X, y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return (self.trees.predict_proba(X) + self.linear.predict_proba(X)) / 2.0

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        return self.trees.contributions(X)


CANDIDATES = ("lightgbm", "blend", "logistic", "naive_bayes")


def make_model(name: str, seed: int) -> Model:
    if name == "lightgbm":
        return LightGBMModel(seed)
    if name == "blend":
        return BlendModel(seed)
    if name == "logistic":
        return LogisticModel(seed)
    if name == "naive_bayes":
        return NaiveBayesModel(seed)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(CANDIDATES)}")
