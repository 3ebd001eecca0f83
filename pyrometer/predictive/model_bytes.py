"""A fitted model as bytes without pickle: the service's ``models`` table and the CLI's
model folder (``model.json``).

Unpickling runs code, so a model row (or a folder a user was sent) must not be a pickle.
The bytes are one JSON document: LightGBM's own text format for the trees, the Platt
calibration and the target-encoding tables; for the baselines the CLI may choose, their
coefficients, bins and frequency tables; then the feature schema and the event feature
configuration. Loading rebuilds the model (a LightGBM booster is a plain
``lightgbm.Booster``); predictions and contributions are the same as before saving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.linear_model import LogisticRegression

from pyrometer.predictive.event_features import EventConfig
from pyrometer.predictive.features import Schema
from pyrometer.predictive.models import (
    BlendModel,
    LightGBMModel,
    LogisticModel,
    Model,
    NaiveBayesModel,
    _LinearDesign,
)

FORMAT = "pyrometer-model/1"


class ModelBytesError(ValueError):
    """The bytes are not a model this version can read."""


@dataclass
class StoredModel:
    """What a model row holds: the fitted model, its schema and its event features."""

    model: Model
    schema: Schema
    events: EventConfig | None


def _booster_text(model: LightGBMModel) -> str:
    booster = model.booster
    if isinstance(booster, lgb.LGBMClassifier):
        booster = booster.booster_
    return str(booster.model_to_string())


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=float).ravel()]


def model_to_dict(model: Model) -> dict[str, Any]:
    """The model's fitted state as JSON-ready data (``kind`` names the class)."""
    if isinstance(model, LightGBMModel):
        return {
            "kind": "lightgbm",
            "lightgbm": _booster_text(model),
            "slope": model.slope,
            "intercept": model.intercept,
            "prior": model.prior,
            "encoders": {str(k): v for k, v in model.encoders.items()},
            "seed": model.seed,
        }
    if isinstance(model, LogisticModel):
        blocks: list[list[Any]] = []
        for kind, spec in model.design.blocks:
            if kind == "cat":
                position, levels = spec
                blocks.append(["cat", int(position), [str(v) for v in levels]])
            else:
                position, low, high, center, scale, edges = spec
                blocks.append(
                    ["num", int(position), *_floats([low, high, center, scale]), _floats(edges)]
                )
        return {
            "kind": "logistic",
            "seed": model.seed,
            "C": model.C,
            "blocks": blocks,
            "owners": [int(o) for o in model.owners],
            "mean": _floats(model.mean),
            "coef": _floats(model.model.coef_),
            "bias": float(model.model.intercept_[0]),
        }
    if isinstance(model, NaiveBayesModel):
        return {
            "kind": "naive_bayes",
            "seed": model.seed,
            "smoothing": model.smoothing,
            "edges": [None if e is None else _floats(e) for e in model.edges],
            "prior": model.prior,
            "tables": model.tables,
        }
    if isinstance(model, BlendModel):
        return {
            "kind": "blend",
            "trees": model_to_dict(model.trees),
            "linear": model_to_dict(model.linear),
        }
    raise ModelBytesError(f"cannot store a model of type {type(model).__name__}")


def _lightgbm(document: dict[str, Any]) -> LightGBMModel:
    model = LightGBMModel(seed=int(document["seed"]))
    model.booster = lgb.Booster(model_str=document["lightgbm"])
    model.slope = float(document["slope"])
    model.intercept = float(document["intercept"])
    model.prior = float(document["prior"])
    model.encoders = {int(k): v for k, v in document["encoders"].items()}
    return model


def _logistic(document: dict[str, Any]) -> LogisticModel:
    model = LogisticModel(seed=int(document["seed"]), C=float(document["C"]))
    design = _LinearDesign()
    design.blocks = []
    for block in document["blocks"]:
        if block[0] == "cat":
            design.blocks.append(("cat", (int(block[1]), list(block[2]))))
        else:
            _, position, low, high, center, scale, edges = block
            spec = (int(position), low, high, center, scale, np.asarray(edges, dtype=float))
            design.blocks.append(("num", spec))
    model.design = design
    model.owners = np.asarray(document["owners"], dtype=int)
    model.mean = np.asarray(document["mean"], dtype=float)
    coef = np.asarray(document["coef"], dtype=float).reshape(1, -1)
    linear = LogisticRegression(C=model.C)
    linear.coef_ = coef
    linear.intercept_ = np.array([float(document["bias"])])
    linear.classes_ = np.array([0, 1])
    linear.n_features_in_ = coef.shape[1]
    model.model = linear
    return model


def _naive_bayes(document: dict[str, Any]) -> NaiveBayesModel:
    model = NaiveBayesModel(seed=int(document["seed"]), smoothing=float(document["smoothing"]))
    model.edges = [None if e is None else np.asarray(e, dtype=float) for e in document["edges"]]
    model.prior = float(document["prior"])
    model.tables = [{str(k): float(v) for k, v in t.items()} for t in document["tables"]]
    return model


def model_from_dict(document: dict[str, Any]) -> Model:
    """The model :func:`model_to_dict` described (no ``kind``: LightGBM, the first format)."""
    kind = document.get("kind", "lightgbm")
    if kind == "lightgbm":
        return _lightgbm(document)
    if kind == "logistic":
        return _logistic(document)
    if kind == "naive_bayes":
        return _naive_bayes(document)
    if kind == "blend":
        trees, linear = model_from_dict(document["trees"]), model_from_dict(document["linear"])
        if not isinstance(trees, LightGBMModel) or not isinstance(linear, LogisticModel):
            raise ModelBytesError("a blend is LightGBM and logistic regression")
        blend = BlendModel(int(document["trees"]["seed"]))
        blend.trees, blend.linear = trees, linear
        return blend
    raise ModelBytesError(f"unknown model kind {kind!r}")


def dump(model: Model, schema: Schema, events: EventConfig | None) -> bytes:
    document: dict[str, Any] = {
        "format": FORMAT,
        **model_to_dict(model),
        "schema": schema.to_dict(),
        "events": events.to_dict() if events else None,
    }
    return json.dumps(document).encode()


def load(data: bytes) -> StoredModel:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ModelBytesError(f"not a stored model: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelBytesError(f"not a stored model of format {FORMAT!r}")
    try:
        model = model_from_dict(document)
        schema = Schema.from_dict(document["schema"])
    except (KeyError, TypeError, IndexError) as exc:
        raise ModelBytesError(f"not a complete stored model: {exc!r}") from exc
    events = EventConfig(**document["events"]) if document.get("events") else None
    return StoredModel(model, schema, events)
