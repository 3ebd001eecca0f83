"""The feature schema: which columns a model uses, what each holds, and how it becomes numbers.

The schema is learned once from the training history and stored with the model, so that
new leads are read exactly the way the history was (same categories, same date origin)
and a renamed or retyped column is reported instead of silently scored as missing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pyrometer.predictive.loading import (
    ColumnKind,
    clean_missing,
    infer_kind,
    is_date,
    is_number,
    looks_like_id,
    to_booleans,
    to_datetimes,
    to_numbers,
)

MIN_CATEGORY_COUNT = 5
MAX_CATEGORIES = 200
HIGH_CARDINALITY = 30
OTHER = "__other__"


class SchemaError(ValueError):
    """New data does not match the columns or types a model was trained on."""


def category_key(value: Any) -> str:
    """Categories match ignoring case and surrounding spaces, like playbook conditions do."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


@dataclass
class FeatureSpec:
    """One input column: its kind and what was learned about it from the history."""

    name: str
    kind: str
    categories: list[str] = field(default_factory=list)
    frequencies: dict[str, float] = field(default_factory=dict)
    origin: str | None = None

    def outputs(self) -> list[str]:
        """Names of the model columns this input becomes."""
        if self.kind == ColumnKind.DATETIME:
            return [f"{self.name}: month", f"{self.name}: weekday", f"{self.name}: days"]
        if self.kind == ColumnKind.CATEGORICAL and self.frequencies:
            return [self.name, f"{self.name}: frequency"]
        return [self.name]


@dataclass
class Schema:
    """Everything needed to turn a raw lead table into model input, stored in MODEL_DIR."""

    features: list[FeatureSpec]
    target: str
    id_column: str | None = None
    time_column: str | None = None
    placeholders: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        features = [FeatureSpec(**spec) for spec in data["features"]]
        return cls(**{**data, "features": features})

    @property
    def columns(self) -> list[str]:
        return [spec.name for spec in self.features]

    def design_names(self) -> list[tuple[str, str]]:
        """``(model column, input column)`` pairs, in model order."""
        return [(out, spec.name) for spec in self.features for out in spec.outputs()]

    def check(self, frame: pd.DataFrame, source: str = "input") -> pd.DataFrame:
        """The cleaned frame, or :class:`SchemaError` naming missing and mistyped columns."""
        missing = [name for name in self.columns if name not in frame.columns]
        problems: list[str] = []
        if missing:
            problems.append("missing column(s): " + ", ".join(repr(m) for m in missing))
        cleaned = clean_missing(
            frame[[c for c in self.columns if c in frame.columns]], self.placeholders
        )
        for spec in self.features:
            if spec.name not in cleaned.columns:
                continue
            bad = _mistyped(cleaned[spec.name], spec.kind)
            if bad is not None:
                row, value = bad
                problems.append(
                    f"column {spec.name!r} should be {spec.kind} but row {row} has {value!r}"
                )
        if problems:
            raise SchemaError(f"{source}: " + "; ".join(problems))
        return cleaned

    def design(self, cleaned: pd.DataFrame) -> pd.DataFrame:
        """Model input for tree models: numbers, and pandas categoricals with fixed levels."""
        out: dict[str, Any] = {}
        for spec in self.features:
            values = cleaned[spec.name]
            if spec.kind == ColumnKind.NUMERIC:
                out[spec.name] = to_numbers(values)
            elif spec.kind == ColumnKind.BOOLEAN:
                out[spec.name] = to_booleans(values)
            elif spec.kind == ColumnKind.DATETIME:
                stamps = to_datetimes(values)
                origin = pd.Timestamp(spec.origin)
                out[f"{spec.name}: month"] = stamps.dt.month.to_numpy(dtype=float)
                out[f"{spec.name}: weekday"] = stamps.dt.day_of_week.to_numpy(dtype=float)
                out[f"{spec.name}: days"] = (
                    (stamps - origin).dt.total_seconds() / 86400.0
                ).to_numpy(dtype=float)
            else:
                keys = category_codes(values, spec.categories)
                out[spec.name] = pd.Categorical(keys, categories=[*spec.categories, OTHER])
                if spec.frequencies:
                    raw = [None if v is None else category_key(v) for v in values.tolist()]
                    out[f"{spec.name}: frequency"] = np.array(
                        [np.nan if k is None else spec.frequencies.get(k, 0.0) for k in raw]
                    )
        return pd.DataFrame(out, index=range(len(cleaned)))


def category_codes(values: pd.Series, categories: list[str]) -> list[str | None]:
    """Each value's category; rare and unseen values share :data:`OTHER`, missing is ``None``."""
    known = set(categories)
    out: list[str | None] = []
    for v in values.tolist():
        if v is None:
            out.append(None)
        else:
            key = category_key(v)
            out.append(key if key in known else OTHER)
    return out


def _mistyped(values: pd.Series, kind: str) -> tuple[int, Any] | None:
    """The first (1-based data row, value) that is not of ``kind``."""
    for i, v in enumerate(values.tolist(), start=1):
        if v is None:
            continue
        if kind == ColumnKind.NUMERIC and not is_number(v):
            return i, v
        if kind == ColumnKind.DATETIME and not is_date(v):
            return i, v
        if kind == ColumnKind.BOOLEAN and np.isnan(to_booleans(pd.Series([v], dtype=object))[0]):
            return i, v
    return None


def learn_schema(
    frame: pd.DataFrame,
    target: str,
    id_column: str | None,
    placeholders: list[str],
    exclude: list[str] | None = None,
    time_column: str | None = None,
) -> tuple[Schema, pd.DataFrame]:
    """The schema of a history (all columns but target, id, excluded, constant and id-like)."""
    cleaned = clean_missing(frame, placeholders)
    dropped: dict[str, str] = {}
    features: list[FeatureSpec] = []
    for name in cleaned.columns:
        if name == target:
            continue
        if name == id_column:
            dropped[name] = "the id column"
            continue
        if exclude and name in exclude:
            dropped[name] = "excluded (--exclude)"
            continue
        values = cleaned[name]
        kind = infer_kind(values)
        if kind is None:
            dropped[name] = "always empty"
            continue
        distinct = {category_key(v) for v in values.tolist() if v is not None}
        if len(distinct) < 2:
            dropped[name] = "one value only"
            continue
        if name != time_column and looks_like_id(values, kind, name):
            dropped[name] = "looks like an identifier (a different value on nearly every row)"
            continue
        spec = FeatureSpec(name=name, kind=kind)
        if kind == ColumnKind.DATETIME:
            stamps = to_datetimes(values)
            spec.origin = stamps.min().isoformat()
        elif kind == ColumnKind.CATEGORICAL:
            counts = pd.Series([category_key(v) for v in values.tolist() if v is not None])
            counts = counts.value_counts()
            kept = counts[counts >= MIN_CATEGORY_COUNT].index.tolist()[:MAX_CATEGORIES]
            spec.categories = sorted(str(k) for k in kept)
            if len(distinct) > HIGH_CARDINALITY:
                share = counts / len(values)
                spec.frequencies = {str(k): float(v) for k, v in share.items()}
        features.append(spec)
    schema = Schema(
        features=features,
        target=target,
        id_column=id_column,
        time_column=time_column,
        placeholders=list(placeholders),
        dropped=dropped,
    )
    return schema, cleaned
