"""MODEL_DIR: the fitted model with everything needed to use it safely later.

A model is only safe to apply to data shaped like its history, so the directory keeps the
feature schema (checked on every prediction), the metrics it earned in cross-validation,
the versions that produced it, and a fingerprint of the training data so a team can tell
which export a model came from.

The model itself is ``model.json``, the same pickle-free document the service stores
(:mod:`pyrometer.predictive.model_bytes`): reading a folder someone sent runs no code.
Folders written before (format 1, ``model.pkl``) load only with ``trust_pickle``
(``--trust-pickle``), since unpickling a file can run anything.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import sklearn

from pyrometer.core.conditions import normalize_name
from pyrometer.predictive import event_features, model_bytes
from pyrometer.predictive.event_features import EventConfig
from pyrometer.predictive.features import Schema, SchemaError
from pyrometer.predictive.models import Model

FORMAT_VERSION = 2
PICKLED_FORMAT = 1
FILES = ("model.json", "schema.json", "metrics.json", "meta.json")


class ModelDirError(ValueError):
    """MODEL_DIR is missing, incomplete or from an incompatible version."""


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of the training table's columns and cells (as text), order-sensitive."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    hashed = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    digest.update(hashed.tobytes())
    return digest.hexdigest()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("pyrometer")
    except Exception:
        import pyrometer

        return str(getattr(pyrometer, "__version__", "0.1.0"))


class PredictiveModel:
    """A trained conversion model: schema-checked probabilities and their reasons."""

    def __init__(self, model: Model, schema: Schema, metrics: dict[str, Any], meta: dict[str, Any]):
        self.model = model
        self.schema = schema
        self.metrics = metrics
        self.meta = meta
        events = meta.get("events")
        self.events = EventConfig(**events) if events else None

    @property
    def id_column(self) -> str | None:
        return self.schema.id_column

    @property
    def bands(self) -> dict[str, float]:
        """Probability thresholds for hot and warm, from the history's out-of-fold scores."""
        return dict(self.metrics.get("bands", {}))

    def _matching_names(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Accept ``lead_source`` for ``Lead Source``: the scoring core normalises names."""
        present = set(frame.columns)
        by_norm = {normalize_name(c): c for c in frame.columns}
        renames = {}
        for name in [*self.schema.columns, self.id_column or ""]:
            if name and name not in present and normalize_name(name) in by_norm:
                renames[by_norm[normalize_name(name)]] = name
        return frame.rename(columns=renames) if renames else frame

    def _with_events(
        self, frame: pd.DataFrame, events: pd.DataFrame | None, now: datetime | None, source: str
    ) -> pd.DataFrame:
        if self.events is None:
            return frame
        names = [n for n in self.schema.columns if n.startswith(event_features.PREFIX)]
        if all(n in frame.columns for n in names):
            return frame
        if events is None:
            raise SchemaError(
                f"{source}: this model uses event features: pass the event log (--events EVENTS)"
            )
        if self.id_column is None or self.id_column not in frame.columns:
            raise SchemaError(
                f"{source}: missing column(s): {self.id_column!r} (needed to match events)"
            )
        time_column = self.schema.time_column
        if time_column and time_column in frame.columns:
            times = frame[time_column]
        else:
            stamp = (now or datetime.now(UTC)).replace(tzinfo=None).isoformat()
            times = pd.Series([stamp] * len(frame), dtype=object)
        extra = event_features.compute(self.events, events, frame[self.id_column], times)
        extra.index = frame.index
        return pd.concat([frame, extra.astype(object)], axis=1)

    def cleaned(
        self,
        frame: pd.DataFrame,
        events: pd.DataFrame | None = None,
        source: str = "input",
        now: datetime | None = None,
    ) -> pd.DataFrame:
        """The model's input columns (with event features), checked, placeholders as None."""
        frame = frame.copy()
        frame.columns = [str(c) for c in frame.columns]
        frame = self._matching_names(frame)
        frame = self._with_events(frame, events, now, source)
        return self.schema.check(frame, source).reset_index(drop=True)

    def design(
        self,
        frame: pd.DataFrame,
        events: pd.DataFrame | None = None,
        source: str = "input",
        now: datetime | None = None,
    ) -> pd.DataFrame:
        return self.schema.design(self.cleaned(frame, events, source, now))

    def predict_proba(
        self, frame: pd.DataFrame, events: pd.DataFrame | None = None, source: str = "input"
    ) -> np.ndarray:
        """Probability of converting for each row, in input order.

        Raises :class:`SchemaError` naming missing or mistyped columns.
        """
        if len(frame) == 0:
            return np.zeros(0)
        return np.asarray(self.model.predict_proba(self.design(frame, events, source)))

    def factors(
        self,
        frame: pd.DataFrame,
        top: int = 3,
        events: pd.DataFrame | None = None,
        source: str = "input",
        raw: pd.DataFrame | None = None,
    ) -> list[tuple[list[tuple[str, Any, float]], list[tuple[str, Any, float]]]]:
        """Per row, the ``top`` ``(column, value, effect)`` pushing the probability up, and
        those pushing it down (effects in log-odds, largest first).

        Factors are input columns with the lead's value and their effect in log-odds (tree
        SHAP values for LightGBM; a date's month, weekday and age are summed into one).
        ``raw``: the rows as :meth:`cleaned` gave them already, so they are not read twice.
        """
        if raw is None:
            raw = self.cleaned(frame, events, source)
        X = self.schema.design(raw)
        contrib = self.model.contributions(X)
        owners = [owner for _, owner in self.schema.design_names()]
        names = list(dict.fromkeys(owners))
        per_column = np.zeros((len(X), len(names)))
        for j, owner in enumerate(owners):
            per_column[:, names.index(owner)] += contrib[:, j]
        out = []
        for i in range(len(X)):
            row = per_column[i]
            order = np.argsort(-row)

            def item(k: int, i: int = i, row: np.ndarray = row) -> tuple[str, Any, float]:
                name = names[k]
                value = raw[name].iloc[i] if name in raw.columns else None
                return name, value, float(row[k])

            up = [item(k) for k in order[:top] if row[k] > 1e-6]
            down = [item(k) for k in order[::-1][:top] if row[k] < -1e-6]
            out.append((up, down))
        return out

    def explain(
        self,
        frame: pd.DataFrame,
        top: int = 3,
        events: pd.DataFrame | None = None,
        source: str = "input",
    ) -> list[tuple[list[str], list[str]]]:
        """:meth:`factors` as text: ``column=value (+0.42)``."""

        def text(factor: tuple[str, Any, float]) -> str:
            name, value, effect = factor
            return f"{name}={_value_text(value)} ({effect:+.2f})"

        return [
            ([text(f) for f in up], [text(f) for f in down])
            for up, down in self.factors(frame, top, events, source)
        ]


def _value_text(value: object) -> str:
    if value is None or value != value or (isinstance(value, str) and not value.strip()):
        return "missing"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def save(
    path: str | Path,
    model: Model,
    schema: Schema,
    metrics: dict[str, Any],
    data_fingerprint: str,
    rows: int,
    events: EventConfig | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_bytes(model_bytes.dump(model, schema, events))
    (folder / "model.pkl").unlink(missing_ok=True)  # an older model in the same folder
    (folder / "schema.json").write_text(json.dumps(schema.to_dict(), indent=2) + "\n")
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    meta = {
        "format": FORMAT_VERSION,
        "pyrometer": _version(),
        "lightgbm": lightgbm.__version__,
        "scikit_learn": sklearn.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": getattr(model, "name", type(model).__name__),
        "training_rows": rows,
        "training_fingerprint": data_fingerprint,
        "events": events.to_dict() if events else None,
        **(extra or {}),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def load_model(path: str | Path, trust_pickle: bool = False) -> PredictiveModel:
    """The model saved in ``path`` by ``pyrometer train``.

    An old folder (``model.pkl``) is refused unless ``trust_pickle``: unpickling runs code.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ModelDirError(f"{folder}: not a model folder (run pyrometer train ... -o {folder})")
    pickled = not (folder / "model.json").exists() and (folder / "model.pkl").exists()
    needed = [n.replace("model.json", "model.pkl") if pickled else n for n in FILES]
    absent = [name for name in needed if not (folder / name).exists()]
    if absent:
        raise ModelDirError(f"{folder}: incomplete model folder, missing {', '.join(absent)}")
    meta = json.loads((folder / "meta.json").read_text())
    expected = PICKLED_FORMAT if pickled else FORMAT_VERSION
    if meta.get("format") != expected:
        raise ModelDirError(f"{folder}: model format {meta.get('format')} is not supported")
    schema = Schema.from_dict(json.loads((folder / "schema.json").read_text()))
    metrics = json.loads((folder / "metrics.json").read_text())
    if pickled:
        if not trust_pickle:
            raise ModelDirError(
                f"{folder}: an old model folder stored as a pickle (model.pkl), which can run "
                "any code when loaded: pass --trust-pickle if you trust where it came from, "
                "or train it again"
            )
        import pickle

        with open(folder / "model.pkl", "rb") as handle:
            model = pickle.load(handle)  # the user vouched for the file (--trust-pickle)
        return PredictiveModel(model, schema, metrics, meta)
    try:
        stored = model_bytes.load((folder / "model.json").read_bytes())
    except model_bytes.ModelBytesError as exc:
        raise ModelDirError(f"{folder}/model.json: {exc}") from None
    return PredictiveModel(stored.model, schema, metrics, meta)
