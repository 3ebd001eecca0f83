"""Tuning a playbook on its own history: thresholds for a capacity or a precision, and
points learned from what preceded wins.

Thresholds: every open lead-day's score (from :mod:`pyrometer.backtest.sweep`), whether
it won within the horizon, and the score the lead had the as-of time before. For a hot
threshold ``h``, the lead-days at or above it are the hot ones, and a lead *becomes* hot
on a day when its score is at or above ``h`` and was below it the day before; so the
whole trade-off curve (new hot leads per day, precision, recall) comes from three sorted
lists and binary search, for any number of thresholds.

Points: at each as-of time, each engagement rule's points decayed to that time (in units
of the rule's points, caps applied as the playbook applies them) and each fit rule's
match are the features of a regularised logistic model of winning within the horizon.
Its coefficients, scaled so that the largest is 25 points and rounded to integers, are a
candidate playbook's points; caps keep the same number of events per window.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyrometer.backtest.metrics import DAY_US, LeadOutcome, converted_within, is_open
from pyrometer.backtest.sweep import Timeline
from pyrometer.core.conditions import normalize_record
from pyrometer.core.fit import fit_lines
from pyrometer.core.incremental import apply_event, new_state
from pyrometer.core.model import Event
from pyrometer.core.playbook import Playbook

LARGEST_POINTS = 25


@dataclass(frozen=True)
class CurvePoint:
    """What a hot threshold gives: new hot leads per day, precision and recall of hot."""

    threshold: float
    new_hot_per_day: float
    hot_lead_days: int
    precision: float | None
    recall: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "hot": self.threshold,
            "new_hot_per_day": self.new_hot_per_day,
            "hot_lead_days": self.hot_lead_days,
            "precision": self.precision,
            "recall": self.recall,
        }


class ScoreTable:
    """The open lead-days' scores, sorted three ways (see the module's docstring)."""

    def __init__(
        self,
        as_of_times: Sequence[int],
        timelines: Iterable[Timeline],
        outcomes: Mapping[str, LeadOutcome],
        horizon_us: int,
        since_step: int = 0,
    ) -> None:
        """``since_step``: count only the lead-days from that as-of time on (a capacity is
        about the volume a team faces now, not when the history began)."""
        scores: list[float] = []
        lows: list[float] = []  # min(score, score the step before): hot already before
        won: list[float] = []
        for timeline in timelines:
            outcome = outcomes.get(timeline.lead_id)
            previous = -math.inf
            for offset, score in enumerate(timeline.scores):
                if timeline.first_step + offset == 0:
                    previous = round(score, 6)  # the first as-of time: nobody *becomes* hot
                as_of = as_of_times[timeline.first_step + offset]
                if not is_open(outcome, as_of):
                    break
                score = round(score, 6)  # as classify rounds before comparing
                if timeline.first_step + offset < since_step:
                    previous = score
                    continue
                scores.append(score)
                lows.append(min(score, previous))
                if converted_within(outcome, as_of, horizon_us):
                    won.append(score)
                previous = score
        self.scores, self.lows, self.won = sorted(scores), sorted(lows), sorted(won)
        # Days over which leads can *become* hot: from the second as-of time on.
        start = min(max(since_step - 1, 0), len(as_of_times) - 1)
        self.days = (as_of_times[-1] - as_of_times[start]) / DAY_US

    def _at_least(self, values: list[float], threshold: float) -> int:
        return len(values) - bisect.bisect_left(values, threshold)

    def point(self, threshold: float) -> CurvePoint:
        hot = self._at_least(self.scores, threshold)
        new = hot - self._at_least(self.lows, threshold)
        won = self._at_least(self.won, threshold)
        return CurvePoint(
            threshold,
            new / self.days if self.days else 0.0,
            hot,
            won / hot if hot else None,
            won / len(self.won) if self.won else None,
        )

    def candidates(self, count: int = 400) -> list[float]:
        """Thresholds worth trying: the scores' quantiles, to one decimal."""
        if not self.scores:
            return []
        n = len(self.scores)
        picked = {round(self.scores[min(n - 1, (i * n) // count)], 1) for i in range(count)}
        return sorted(picked | {math.ceil(self.scores[-1] * 10) / 10 + 0.1})

    def curve(self, count: int = 400) -> list[CurvePoint]:
        return [self.point(t) for t in self.candidates(count)]

    def base_rate(self) -> float | None:
        return len(self.won) / len(self.scores) if self.scores else None


def pick_hot(
    curve: Sequence[CurvePoint],
    capacity_per_day: float | None = None,
    precision: float | None = None,
) -> CurvePoint | None:
    """The lowest threshold (most recall) whose new hot leads per day fit the capacity, or
    whose precision reaches the target, among those that make some lead hot. When scores
    take few values (one event per lead) no threshold may fit a capacity: then the one
    with the fewest hot leads still above none. ``None`` when no threshold makes a lead
    hot."""
    if (capacity_per_day is None) == (precision is None):
        raise ValueError("give a capacity or a precision to tune for, one of them")
    usable = [
        p for p in sorted(curve, key=lambda p: p.threshold) if p.threshold > 0 and p.hot_lead_days
    ]  # a hot threshold of 0 or less would make inactive leads hot
    for point in usable:
        if capacity_per_day is not None and point.new_hot_per_day <= capacity_per_day:
            return point
        if precision is not None and point.precision is not None and point.precision >= precision:
            return point
    if capacity_per_day is not None and usable:
        return usable[-1]
    return None


def pick_warm(table: ScoreTable, hot: float) -> float:
    """The lowest threshold below ``hot`` whose band [warm, hot) still wins at least at the
    base rate: warm leads are better than average, as the source documents' 14.6% warm
    against 1.7% cold."""
    base = table.base_rate() or 0.0
    hot_all = table._at_least(table.scores, hot)
    hot_won = table._at_least(table.won, hot)
    for threshold in table.candidates():  # lowest first: the lowest that qualifies
        if threshold >= hot:
            break
        n = table._at_least(table.scores, threshold) - hot_all
        won = table._at_least(table.won, threshold) - hot_won
        if n and won / n >= base and threshold > 0:
            return threshold
    return hot / 2


def with_thresholds(playbook: Playbook, hot: float, warm: float) -> Playbook:
    """``playbook`` with these hot and warm thresholds (validated as a playbook is)."""
    data = playbook.to_yaml_dict()
    data["temperature"] = {**data["temperature"], "hot": hot, "warm": warm}
    return Playbook.model_validate(data)


# --- points ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureRows:
    """One row per open lead-day: rule units, fit matches, won within the horizon."""

    names: tuple[str, ...]  # engagement rule names, then fit rule names
    rows: list[list[float]]
    labels: list[int]
    steps: list[int]


def unit_playbook(playbook: Playbook) -> Playbook:
    """``playbook`` with each 0-point engagement rule worth 1: a rule the team switched off
    still gets a feature (its events, decayed), so learning can switch it back on."""
    if all(rule.points for rule in playbook.engagement):
        return playbook
    data = playbook.to_yaml_dict()
    for rule, dumped in zip(playbook.engagement, data["engagement"], strict=True):
        if not rule.points:
            dumped["points"] = 1.0
    return Playbook.model_validate(data)


def features(
    playbook: Playbook,
    leads: Iterable[tuple[str, Sequence[Event]]],
    attributes: Mapping[str, Mapping[str, Any]],
    outcomes: Mapping[str, LeadOutcome],
    as_of_times: Sequence[int],
    horizon_us: int,
) -> FeatureRows:
    """Per-rule decayed points (in units of the rule's points) and fit matches at every
    open lead-day, from one pass per lead as :func:`pyrometer.backtest.sweep.sweep_lead`."""
    playbook = unit_playbook(playbook)
    rules = [rule.name for rule in playbook.engagement]
    index = {name: i for i, name in enumerate(rules)}
    unit = [rule.points for rule in playbook.engagement]
    fits = [rule.name for rule in playbook.fit]
    decay = playbook.decay
    out = FeatureRows((*rules, *fits), [], [], [])
    for lead_id, events in leads:
        ordered = sorted(events, key=lambda e: e.order_key)
        outcome = outcomes.get(lead_id)
        matched = {
            line.rule
            for line in fit_lines(playbook, normalize_record(dict(attributes.get(lead_id, {}))))
        }
        fit_row = [1.0 if name in matched else 0.0 for name in fits]
        state = new_state(lead_id)
        values = [0.0] * len(rules)
        anchor: int | None = None
        i = 0
        for step, as_of in enumerate(as_of_times):
            while i < len(ordered) and ordered[i].ts_us <= as_of:
                event = ordered[i]
                event_step = decay.step_of(event.ts_us)
                if anchor is not None and event_step > anchor:
                    factor = decay.factor(event_step - anchor)
                    values = [v * factor for v in values]
                if anchor is None or event_step > anchor:
                    anchor = event_step
                applied = apply_event(playbook, state, event)
                state = applied.state
                for line in applied.lines:  # in time order: no late corrections
                    r = index[line.rule]
                    values[r] += line.points / unit[r]
                i += 1
            if i == 0 or not is_open(outcome, as_of):
                if i and not is_open(outcome, as_of):
                    break
                continue
            assert anchor is not None
            factor = decay.factor(decay.step_of(as_of) - anchor)
            out.rows.append([v * factor for v in values] + fit_row)
            out.labels.append(int(converted_within(outcome, as_of, horizon_us)))
            out.steps.append(step)
    return out


def learn_points(
    playbook: Playbook, data: FeatureRows, strength: float = 1.0
) -> tuple[Playbook, dict[str, tuple[float, float]]]:
    """A playbook with learned points (thresholds unchanged: tune them after) and, per
    rule, (old points, new points). Needs scikit-learn (the ``predict`` extra)."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:  # pragma: no cover - the extra is part of dev
        raise ImportError(
            "learning points needs scikit-learn: pip install 'pyrometer[predict]'"
        ) from None
    if len(set(data.labels)) < 2:
        raise ValueError("no win (or only wins) in the learning period: nothing to learn from")
    model = LogisticRegression(C=strength, max_iter=2000)
    model.fit(data.rows, data.labels)
    weights = list(model.coef_[0])
    n_rules = len(playbook.engagement)
    largest = max(abs(w) for w in weights) or 1.0
    scale = LARGEST_POINTS / largest
    yaml_data = playbook.to_yaml_dict()
    changes: dict[str, tuple[float, float]] = {}
    for rule, dumped, weight in zip(
        playbook.engagement, yaml_data["engagement"], weights[:n_rules], strict=True
    ):
        points = float(round(weight * scale))
        changes[rule.name] = (rule.points, points)
        dumped["points"] = points
        dumped["why"] = f"learned: was {rule.points:g}. " + (rule.why or "")
        if rule.cap is not None:
            if points == 0:
                dumped.pop("cap")
            else:
                ratio = abs(points / (rule.points or 1.0))
                dumped["cap"]["points"] = round(rule.cap.points * ratio, 2)
    for rule, dumped, weight in zip(playbook.fit, yaml_data["fit"], weights[n_rules:], strict=True):
        points = float(round(weight * scale))
        changes[rule.name] = (rule.points, points)
        dumped["points"] = points
        dumped["why"] = f"learned: was {rule.points:g}. " + (rule.why or "")
    return Playbook.model_validate(yaml_data), changes
