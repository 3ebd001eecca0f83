"""Training a conversion model from a store's own outcomes, point in time (issue #14).

Pure: the service reads leads, their stage history and their events from the store and
hands them here as plain data; nothing here knows SQL or HTTP. The model family, the
feature schema, the event features, the leakage guard and the metrics are the ones
``pyrometer train`` uses (:mod:`pyrometer.predictive`), so the CLI and the service learn
the same way. What this module adds is the store's view of time:

- **labels**: a lead that reached ``customer`` is a positive; one disqualified, or that
  received a ``models.lost_events`` event, or still open ``models.horizon`` after it was
  first seen, is a negative; younger open leads are left out (their outcome is unknown);
- **cut-off**: each lead's features are its events up to its cut-off (its first N days,
  or the moment it turned MQL); a lead whose outcome came at or before its cut-off is
  left out (nobody scores a decided lead), so nothing at or after an outcome is seen and
  every lead is cut the same way; lifecycle events (the stage history) are never
  features;
- **validation on the most recent outcomes**: the leads are ordered by outcome time, the
  newest ``models.holdout`` share is held out, and the figures are measured there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pyrometer.core.playbook import Models, Playbook
from pyrometer.predictive import event_features, model_bytes
from pyrometer.predictive.artifact import PredictiveModel
from pyrometer.predictive.evaluate import (
    band_rates,
    calibration_curve,
    lift_by_decile,
    metrics,
    probability_bands,
)
from pyrometer.predictive.event_features import EventConfig
from pyrometer.predictive.features import learn_schema
from pyrometer.predictive.leakage import (
    dominant_column,
    find_leaks,
    per_column,
    rewritten_copies,
)
from pyrometer.predictive.loading import DEFAULT_PLACEHOLDERS, ColumnKind
from pyrometer.predictive.models import LightGBMModel, make_model
from pyrometer.predictive.pipeline import MIN_PER_CLASS

ID = "lead_id"
DECISION = "__decision__"
TARGET = "__outcome__"
EVENT_COLUMNS = ("lead_id", "event", "ts")
Progress = Callable[[str], None]


class NotEnoughOutcomes(ValueError):
    """Too few known outcomes (of either kind) to train and validate a model."""


@dataclass(frozen=True)
class LeadHistory:
    """What the store knows of one lead, as plain data.

    ``first_seen_us``: its first event or its creation, whichever is earlier;
    ``customer_us`` / ``disqualified_us`` / ``mql_us``: its first stage move there;
    ``lost_us``: its first event named in ``models.lost_events``.
    """

    lead_id: str
    attributes: dict[str, Any]
    first_seen_us: int
    customer_us: int | None = None
    disqualified_us: int | None = None
    lost_us: int | None = None
    mql_us: int | None = None


@dataclass(frozen=True)
class Labelled:
    lead_id: str
    outcome: int
    outcome_us: int
    decision_us: int


def label(lead: LeadHistory, settings: Models, now_us: int) -> Labelled | None:
    """The lead's outcome and the moment its features are taken, or ``None`` if unknown."""
    deadline = lead.first_seen_us + settings.horizon_us
    won = (
        lead.customer_us if lead.customer_us is not None and lead.customer_us <= deadline else None
    )
    negatives = [t for t in (lead.disqualified_us, lead.lost_us) if t is not None and t <= deadline]
    if won is not None and (not negatives or won <= min(negatives)):
        outcome, outcome_us = 1, won
    elif negatives:
        outcome, outcome_us = 0, min(negatives)
    elif now_us >= deadline:
        outcome, outcome_us = 0, deadline  # open (or won too late) past the horizon
    else:
        return None
    window = settings.cutoff_us
    if window is None:
        if lead.mql_us is None or lead.mql_us >= outcome_us:
            return None  # cut at MQL: a lead that never was one is not in this population
        cut = lead.mql_us
    else:
        cut = lead.first_seen_us + window
    if outcome_us <= cut:
        # Decided before its cut-off: not a lead anyone scores at that moment. Cutting it
        # earlier instead would let "how recent is its last event" tell the outcome.
        return None
    return Labelled(lead.lead_id, outcome, outcome_us, cut)


def feature_events(events: pd.DataFrame, book: Playbook) -> pd.DataFrame:
    """The event log without the stage history: lifecycle and lost events are outcomes."""
    excluded = set(book.models.lost_events)
    names = events["event"].astype(str)
    meaning = names.map(book.event_name)
    stage = meaning.map(lambda n: book.stage_event(n) is not None)
    keep = ~stage & ~names.isin(excluded) & ~meaning.isin(excluded)
    return events.loc[keep.to_numpy()].reset_index(drop=True)


def _iso(us: Sequence[int]) -> list[str]:
    return [pd.Timestamp(int(u), unit="us").isoformat() for u in us]


def lead_frame(
    attributes: Sequence[dict[str, Any]], ids: Sequence[str], decisions_us: Sequence[int]
) -> pd.DataFrame:
    """Model input rows: each lead's attributes, its id and its decision time."""
    rows = [
        {str(k): v for k, v in attrs.items() if not isinstance(v, dict | list)}
        for attrs in attributes
    ]
    frame = pd.DataFrame(rows, index=range(len(rows))).astype(object)
    frame = frame.drop(columns=[c for c in (ID, DECISION, TARGET) if c in frame.columns])
    frame[ID] = list(ids)
    frame[DECISION] = _iso(decisions_us)
    return frame


def event_log(rows: Sequence[tuple[str, str, int]]) -> pd.DataFrame:
    """``(lead_id, event name, ts_us)`` rows as the event log the features read."""
    frame = pd.DataFrame(list(rows), columns=list(EVENT_COLUMNS))
    frame["ts"] = _iso(frame["ts"].tolist()) if len(frame) else []
    return frame.astype(object)


def _event_config(log: pd.DataFrame) -> EventConfig | None:
    if log.empty:
        return None
    config = EventConfig(id_column="lead_id", name_column="event", time_column="ts")
    counts = log["event"].astype(str).value_counts()
    config.types = [str(t) for t in counts.index[: event_features.MAX_EVENT_TYPES] if t]
    return config


def with_columns(frame: pd.DataFrame, model: PredictiveModel) -> pd.DataFrame:
    """``frame`` with every attribute column the model reads: a lead of the service that
    never had an attribute has it missing (``None``), not a malformed input."""
    absent = [
        c
        for c in model.schema.columns
        if c not in frame.columns and not c.startswith(event_features.PREFIX)
    ]
    if not absent:
        return frame
    return pd.concat(
        [frame, pd.DataFrame({c: [None] * len(frame) for c in absent}, dtype=object)], axis=1
    )


def as_predictive(stored: model_bytes.StoredModel, metrics_: dict[str, Any]) -> PredictiveModel:
    """A stored model as the CLI's :class:`PredictiveModel`: the same scoring and reasons."""
    meta = {"events": stored.events.to_dict() if stored.events else None}
    return PredictiveModel(stored.model, stored.schema, metrics_, meta)


@dataclass
class Trained:
    artifact: bytes
    metrics: dict[str, Any]
    warnings: list[str]
    holdout_ids: list[str]
    outcomes: int
    seconds: float
    champion: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class TrainingData:
    """Labelled leads in outcome-time order, their input rows and the feature event log."""

    labelled: list[Labelled]
    frame: pd.DataFrame
    events: pd.DataFrame

    @property
    def y(self) -> np.ndarray:
        return np.array([item.outcome for item in self.labelled], dtype=int)


def training_data(
    leads: Sequence[LeadHistory], events: pd.DataFrame, book: Playbook, now_us: int
) -> TrainingData:
    found = [(lead, label(lead, book.models, now_us)) for lead in leads]
    known = sorted(
        ((lead, item) for lead, item in found if item is not None),
        key=lambda pair: (pair[1].outcome_us, pair[1].lead_id),
    )
    labelled = [item for _, item in known]
    y = np.array([item.outcome for item in labelled], dtype=int)
    counts = np.bincount(y, minlength=2)
    if counts.min() < MIN_PER_CLASS * 2:
        raise NotEnoughOutcomes(
            f"{int(counts[1])} converted and {int(counts[0])} lost, disqualified or expired "
            f"lead(s) with a known outcome; training needs at least {MIN_PER_CLASS * 2} of each"
        )
    frame = lead_frame(
        [lead.attributes for lead, _ in known],
        [item.lead_id for item in labelled],
        [item.decision_us for item in labelled],
    )
    return TrainingData(labelled, frame, feature_events(events, book))


def _split(y: np.ndarray, share: float) -> int:
    """Index of the first held-out row: the newest ``share``, with both outcomes on each side."""
    start = round(len(y) * (1 - share))
    start = min(max(start, 1), len(y) - 1)
    while start > 1 and (
        np.bincount(y[start:], minlength=2).min() < 2
        or np.bincount(y[:start], minlength=2).min() < 2
    ):
        start -= 1
    return start


def train(
    data: TrainingData,
    book: Playbook,
    now_us: int,
    seed: int = 0,
    champion: tuple[bytes, dict[str, Any]] | None = None,
    progress: Progress | None = None,
) -> Trained:
    """Fit on the older outcomes, measure on the newest, refit on all; judge the champion.

    ``champion`` (the active model's bytes and metrics) is scored on the same held-out
    leads, as of the same cut-offs, so the two are compared on equal terms.
    """
    started = time.perf_counter()
    say = progress or (lambda _: None)
    y = data.y
    config = _event_config(data.events)
    frame = data.frame
    if config is not None:
        say("event features")
        extra = event_features.compute(config, data.events, frame[ID], frame[DECISION], "events")
        frame = pd.concat([frame, extra.astype(object)], axis=1)
    frame = frame.assign(**{TARGET: y})
    schema, cleaned = learn_schema(
        frame, TARGET, ID, list(DEFAULT_PLACEHOLDERS), exclude=[DECISION], time_column=DECISION
    )
    # An attribute that is a date (created_at, a sign-up date) is read as days since the
    # history's first: the model would learn when the history's leads arrived, and every
    # lead it scores later lies past the end of that range. The lead's age and recency come
    # from its events (as of its cut-off) instead.
    dates = {f.name for f in schema.features if f.kind == ColumnKind.DATETIME}
    for name in dates:
        schema.dropped[name] = "a calendar date (scored leads all lie after the history)"
    schema.features = [f for f in schema.features if f.name not in dates]
    leaks = find_leaks(schema, cleaned, y)
    # A rewritten copy (sign 6) is a warning only, here as in the CLI.
    copies = [
        c for c in rewritten_copies(schema, cleaned, y) if c.column not in {k.column for k in leaks}
    ]
    warnings = [leak.message() for leak in leaks + copies]
    if leaks:
        names = {leak.column for leak in leaks}
        for leak in leaks:
            schema.dropped[leak.column] = "may leak the outcome (left out)"
        schema.features = [f for f in schema.features if f.name not in names]
    if not schema.features:
        raise NotEnoughOutcomes("no usable feature left: every attribute and event was dropped")
    X = schema.design(cleaned)
    cut = _split(y, book.models.holdout)
    train_rows, test_rows = np.arange(cut), np.arange(cut, len(y))
    say(f"validating on the newest {len(test_rows)} outcomes")
    held: dict[str, np.ndarray] = {}
    calibration = None
    for name in ("lightgbm", "logistic", "naive_bayes"):
        fitted = make_model(name, seed).fit(X.iloc[train_rows], y[train_rows])
        held[name] = np.asarray(fitted.predict_proba(X.iloc[test_rows]))
        if isinstance(fitted, LightGBMModel):
            calibration = (fitted.slope, fitted.intercept)
    y_test = y[test_rows]
    p = held["lightgbm"]
    bands = probability_bands(p)
    summary: dict[str, Any] = {
        "model": "lightgbm",
        "leads": len(y),
        "converted": int(y.sum()),
        "base_rate": float(y.mean()),
        "train_leads": len(train_rows),
        "holdout_leads": len(test_rows),
        "holdout_from": pd.Timestamp(data.labelled[cut].outcome_us, unit="us").isoformat() + "Z",
        "cutoff": book.models.cutoff,
        "trained_until_us": int(now_us),
        "features": schema.columns,
        "dropped": dict(schema.dropped),
        **metrics(y_test, p),
        "baselines": {n: metrics(y_test, held[n]) for n in ("logistic", "naive_bayes")},
        "lift_by_decile": lift_by_decile(y_test, p),
        "calibration": calibration_curve(y_test, p),
        "bands": bands,
        "band_rates": band_rates(y_test, p, bands),
        "leakage_warnings": warnings,
    }
    say("fitting on every outcome")
    # The Platt correction learned on the training rows' out-of-fold scores: one booster.
    final = LightGBMModel(seed, calibration=calibration).fit(X, y)
    dominant = dominant_column(*per_column(schema, final.contributions(X.iloc[test_rows])))
    if dominant is not None:
        warnings.append(dominant.message())
        summary["leakage_warnings"] = warnings
    artifact = model_bytes.dump(final, schema, config)
    holdout_ids = [data.labelled[i].lead_id for i in test_rows]
    judged = None
    if champion is not None:
        judged = judge(champion, data, test_rows, p)
    return Trained(
        artifact=artifact,
        metrics=summary,
        warnings=warnings,
        holdout_ids=holdout_ids,
        outcomes=len(y),
        seconds=time.perf_counter() - started,
        champion=judged,
    )


def holdout_scores(
    artifact: bytes, data: TrainingData, rows: np.ndarray, metrics_: dict[str, Any]
) -> np.ndarray:
    """A stored model's probabilities for the given rows of ``data``, as of their cut-offs."""
    model = as_predictive(model_bytes.load(artifact), metrics_)
    subset = with_columns(data.frame.iloc[rows].reset_index(drop=True), model)
    ids = set(subset[ID])
    log = data.events[data.events["lead_id"].isin(ids)].reset_index(drop=True)
    return model.predict_proba(subset, log if model.events else None, source="holdout")


def judge(
    champion: tuple[bytes, dict[str, Any]],
    data: TrainingData,
    rows: np.ndarray,
    challenger_p: np.ndarray,
) -> dict[str, Any]:
    """Both models' figures on the same held-out leads, and whether the new one wins.

    Only leads whose outcome came after the champion was trained count: on leads it was
    trained on the champion looks better than it is. With fewer than two of each outcome
    among them there is no fair comparison, and the champion stays (``fair`` is false).
    """
    artifact, champion_metrics = champion
    y = data.y
    trained_until = champion_metrics.get("trained_until_us")
    fresh = np.array(
        [trained_until is None or data.labelled[i].outcome_us > trained_until for i in rows]
    )
    counts = np.bincount(y[rows][fresh], minlength=2)
    if counts.min() < 2:
        return {
            "roc_auc": None,
            "leads": int(fresh.sum()),
            "fair": False,
            "challenger_wins": False,
            "note": f"{int(counts[1])} converted and {int(counts[0])} other outcome(s) came "
            "after the active model was trained; a fair comparison needs 2 of each",
        }
    try:
        p = holdout_scores(artifact, data, rows[fresh], champion_metrics)
    except ValueError as exc:  # the champion cannot read these leads (a column went away)
        return {"roc_auc": None, "fair": True, "error": str(exc), "challenger_wins": True}
    figures = metrics(y[rows][fresh], p)
    challenger = metrics(y[rows][fresh], challenger_p[fresh])
    return {
        **figures,
        "leads": int(fresh.sum()),
        "fair": True,
        "challenger": {"roc_auc": challenger["roc_auc"], "brier": challenger["brier"]},
        "challenger_wins": not_worse(challenger, figures),
    }


# Ranking is what a rep acts on, so ROC AUC decides; a tie within this margin goes to the
# one with the better Brier score (probabilities that mean what they say).
AUC_TIE = 0.002


def not_worse(challenger: dict[str, Any], champion: dict[str, Any]) -> bool:
    """Whether a new model is at least as good as the active one on the same outcomes."""
    if champion.get("roc_auc") is None:
        return True
    gap = challenger["roc_auc"] - champion["roc_auc"]
    if gap > AUC_TIE:
        return True
    if gap < -AUC_TIE:
        return False
    return bool(challenger["brier"] <= champion["brier"] + 1e-9)
