"""A calibrated LightGBM model as bytes without pickle: for the service's ``models`` table.

Unpickling runs code, so a model row (or a file a user was sent) must not be a pickle.
The bytes are one JSON document: LightGBM's own text format for the trees, the Platt
calibration, the target-encoding tables, the feature schema and the event feature
configuration. Loading rebuilds a :class:`LightGBMModel` whose booster is a plain
``lightgbm.Booster``; predictions and contributions are the same as before saving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb

from pyrometer.predictive.event_features import EventConfig
from pyrometer.predictive.features import Schema
from pyrometer.predictive.models import LightGBMModel

FORMAT = "pyrometer-model/1"


class ModelBytesError(ValueError):
    """The bytes are not a model this version can read."""


@dataclass
class StoredModel:
    """What a model row holds: the fitted model, its schema and its event features."""

    model: LightGBMModel
    schema: Schema
    events: EventConfig | None


def _booster_text(model: LightGBMModel) -> str:
    booster = model.booster
    if isinstance(booster, lgb.LGBMClassifier):
        booster = booster.booster_
    return str(booster.model_to_string())


def dump(model: LightGBMModel, schema: Schema, events: EventConfig | None) -> bytes:
    if not isinstance(model, LightGBMModel):
        raise ModelBytesError(f"only LightGBM models are stored, not {type(model).__name__}")
    document: dict[str, Any] = {
        "format": FORMAT,
        "lightgbm": _booster_text(model),
        "slope": model.slope,
        "intercept": model.intercept,
        "prior": model.prior,
        "encoders": {str(k): v for k, v in model.encoders.items()},
        "seed": model.seed,
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
    model = LightGBMModel(seed=int(document["seed"]))
    model.booster = lgb.Booster(model_str=document["lightgbm"])
    model.slope = float(document["slope"])
    model.intercept = float(document["intercept"])
    model.prior = float(document["prior"])
    model.encoders = {int(k): v for k, v in document["encoders"].items()}
    events = EventConfig(**document["events"]) if document["events"] else None
    return StoredModel(model, Schema.from_dict(document["schema"]), events)
