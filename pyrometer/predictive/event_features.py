"""Point-in-time engagement features from an event log.

A lead's features must be what we could have known when we decided about it. Counting
events that happened after the decision (the demo booked after the sales call) teaches a
model that converted leads are active, which is true and useless. Every feature here is
computed from the events strictly before or at the lead's decision time, never after.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pyrometer.core.conditions import normalize_name
from pyrometer.core.ids import EmptyLeadId, normalize_lead_id
from pyrometer.core.timeutil import MAX_US, MIN_US, TIME_RANGE
from pyrometer.predictive.loading import DataError, clean_missing, to_datetimes

WINDOWS_DAYS = (7, 30, 90)
HALF_LIFE_DAYS = 30.0
MAX_EVENT_TYPES = 30
PREFIX = "events: "

_ID_NAMES = ("lead_id", "lead", "id", "contact_id", "prospect_id")
_NAME_NAMES = ("event", "event_name", "name", "type", "event_type", "activity")
_TIME_NAMES = ("timestamp", "ts", "time", "occurred_at", "created_at", "date", "datetime")


@dataclass
class EventConfig:
    """Which columns of the event log mean what, and which event types became features."""

    id_column: str
    name_column: str
    time_column: str
    types: list[str] = field(default_factory=list)
    windows_days: list[int] = field(default_factory=lambda: list(WINDOWS_DAYS))
    half_life_days: float = HALF_LIFE_DAYS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def feature_names(self) -> list[str]:
        names = [f"{PREFIX}{t} in {w}d" for t in self.types for w in self.windows_days]
        return [
            *names,
            f"{PREFIX}total in 30d",
            f"{PREFIX}days since last",
            f"{PREFIX}decayed engagement",
        ]


def _pick(columns: list[str], wanted: tuple[str, ...], what: str, source: str) -> str:
    by_norm = {normalize_name(c): c for c in columns}
    for name in wanted:
        if name in by_norm:
            return by_norm[name]
    raise DataError(
        f"{source}: cannot find the {what} column (tried {', '.join(wanted)}); "
        f"columns are {', '.join(columns)}"
    )


def configure(events: pd.DataFrame, source: str, lead_id_column: str | None) -> EventConfig:
    """Find the id, event name and time columns; keep the most frequent event types."""
    columns = [str(c) for c in events.columns]
    wanted = (normalize_name(lead_id_column), *_ID_NAMES) if lead_id_column else _ID_NAMES
    config = EventConfig(
        id_column=_pick(columns, wanted, "lead id", source),
        name_column=_pick(columns, _NAME_NAMES, "event name", source),
        time_column=_pick(columns, _TIME_NAMES, "event time", source),
    )
    names = events[config.name_column].map(lambda v: normalize_name(str(v)))
    config.types = [str(t) for t in names.value_counts().index[:MAX_EVENT_TYPES] if t]
    return config


def _lead_key(value: object) -> str | None:
    """A lead id in its normal form (trimmed, NFC) to join on; blank ids join nothing."""
    if value is None:
        return None
    try:
        return normalize_lead_id(str(value))
    except EmptyLeadId:
        return None


def compute(
    config: EventConfig,
    events: pd.DataFrame,
    lead_ids: pd.Series,
    decision_times: pd.Series,
    source: str = "events",
) -> pd.DataFrame:
    """One row per lead (in the order given) of features as of its decision time."""
    log = clean_missing(events[[config.id_column, config.name_column, config.time_column]])
    stamps = to_datetimes(log[config.time_column])
    bad = stamps.isna() & log[config.time_column].reset_index(drop=True).notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
        value = log[config.time_column].iloc[row - 1]
        raise DataError(
            f"{source}: row {row}, column {config.time_column!r}: {value!r} is not a date/time"
        )
    # The accepted range of times, as everywhere (pyrometer.core.timeutil).
    ts_us = stamps.to_numpy(dtype="datetime64[us]").astype("int64")
    outside = stamps.notna().to_numpy() & ((ts_us < MIN_US) | (ts_us > MAX_US))
    if outside.any():
        row = int(np.flatnonzero(outside)[0]) + 1
        value = log[config.time_column].iloc[row - 1]
        raise DataError(
            f"{source}: row {row}, column {config.time_column!r}: {value!r} must be {TIME_RANGE}"
        )
    frame = pd.DataFrame(
        {
            "lead": log[config.id_column].map(_lead_key).to_numpy(),
            "type": log[config.name_column].map(lambda v: normalize_name(str(v))).to_numpy(),
            "ts": stamps.to_numpy(),
        }
    ).dropna()
    leads = pd.DataFrame(
        {
            "lead": [_lead_key(v) for v in lead_ids.tolist()],
            "decision": to_datetimes(decision_times).to_numpy(),
            "row": np.arange(len(lead_ids)),
        }
    )
    joined = frame.merge(leads.dropna(subset=["lead"]), on="lead", how="inner")
    joined = joined[joined["ts"] <= joined["decision"]]  # never after the decision
    age = (joined["decision"] - joined["ts"]).dt.total_seconds().to_numpy() / 86400.0
    joined = joined.assign(age=age)
    # One pass of array sums rather than a group-by per type and window: the same
    # counts, and a lead read (one row) costs well under the pandas version's time.
    n, width = len(lead_ids), len(config.windows_days)
    rows = joined["row"].to_numpy(dtype=np.int64)
    ages = np.asarray(age, dtype=float)
    position = {t: i for i, t in enumerate(config.types)}
    kinds = np.fromiter((position.get(t, -1) for t in joined["type"]), dtype=np.int64)
    counts = np.zeros((n, len(config.types) * width))
    for w, window in enumerate(config.windows_days):
        hit = (kinds >= 0) & (ages <= window)
        np.add.at(counts, (rows[hit], kinds[hit] * width + w), 1.0)
    names = [f"{PREFIX}{t} in {w}d" for t in config.types for w in config.windows_days]
    out = pd.DataFrame(counts, columns=names, index=range(n))
    out[f"{PREFIX}total in 30d"] = np.bincount(rows[ages <= 30], minlength=n).astype(float)
    last = np.full(n, np.inf)
    np.minimum.at(last, rows, ages)
    out[f"{PREFIX}days since last"] = np.where(np.isfinite(last), last, np.nan)  # never active
    weights = np.power(2.0, -ages / config.half_life_days)
    out[f"{PREFIX}decayed engagement"] = np.bincount(rows, weights=weights, minlength=n)
    no_time = leads["decision"].isna().to_numpy()
    if no_time.any():
        out.loc[no_time, :] = np.nan  # without a decision time nothing is known as of it
    return out.astype(float)
