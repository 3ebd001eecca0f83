"""Predictive scoring: a calibrated probability of converting, learned from a team's history.

The public API for other parts of Pyrometer (``pyrometer score --model MODEL_DIR``)::

    from pyrometer.predictive import load_model
    model = load_model("model_dir")
    p = model.predict_proba(frame)  # numpy array, one probability per row, input order
"""

from pyrometer.predictive.artifact import ModelDirError, PredictiveModel, load_model
from pyrometer.predictive.features import SchemaError

__all__ = ["ModelDirError", "PredictiveModel", "SchemaError", "load_model"]
