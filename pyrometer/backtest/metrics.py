"""What a backtest counts, from observations and outcomes alone: no SQL, no files.

An *observation* is one open lead's temperature at one as-of time, computed (by
:mod:`pyrometer.backtest.sweep`, one :class:`~pyrometer.backtest.sweep.Timeline` per lead)
from its events up to that time only. An *outcome* is a
lead's first win and the time it closed (its first win or loss). This module adds the
other half of honesty: an observation counts only while its lead is still open (closed
after the as-of time), and it *converted* only if the win comes after the as-of time and
no later than the horizon. Nothing here can see an outcome at or before the as-of time.

Figures, per playbook:

- per band: observations (lead-days), distinct leads, how many converted within the
  horizon, the conversion rate and its lift over the base rate (all observations);
- precision of hot (converted share of hot observations) and recall of hot (hot share of
  the observations that converted);
- of the leads won while observed (a win no later than the last as-of time plus the
  horizon), the share that were hot at some as-of time before the win, and how many days
  before it they were first hot (median);
- leads *becoming* hot per day (not hot at the previous as-of time, or not yet seen),
  from the second as-of time on, against a capacity per day: the days over it;
- churn: the share of a lead's consecutive as-of steps where its band changed.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from pyrometer.backtest.sweep import Timeline

BANDS = ("hot", "warm", "cold")
DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row of an outcomes file: ``won`` (or converted) or ``lost``, at a time."""

    lead_id: str
    outcome: str  # "won" or "lost"
    at_us: int


@dataclass(frozen=True, slots=True)
class LeadOutcome:
    """A lead's first win (if any) and when it closed: its first win or loss."""

    won_us: int | None
    closed_us: int | None


def lead_outcomes(rows: Iterable[Outcome]) -> dict[str, LeadOutcome]:
    """Outcome rows, per lead: the first win, and the first win or loss."""
    won: dict[str, int] = {}
    closed: dict[str, int] = {}
    for row in rows:
        if row.outcome == "won":
            won[row.lead_id] = min(won.get(row.lead_id, row.at_us), row.at_us)
        closed[row.lead_id] = min(closed.get(row.lead_id, row.at_us), row.at_us)
    return {lead: LeadOutcome(won.get(lead), closed[lead]) for lead in closed}


def is_open(outcome: LeadOutcome | None, as_of_us: int) -> bool:
    """Whether a lead is still open at ``as_of_us``: it has not closed by then."""
    return outcome is None or outcome.closed_us is None or outcome.closed_us > as_of_us


def converted_within(outcome: LeadOutcome | None, as_of_us: int, horizon_us: int) -> bool:
    """Whether the lead was won after ``as_of_us`` and no later than the horizon."""
    if outcome is None or outcome.won_us is None:
        return False
    return as_of_us < outcome.won_us <= as_of_us + horizon_us


@dataclass(frozen=True)
class BandFigures:
    band: str
    observations: int
    leads: int
    converted: int
    rate: float | None
    lift: float | None


@dataclass(frozen=True)
class Metrics:
    """Everything one playbook's backtest found (see the module's docstring)."""

    observations: int
    leads: int
    converted: int
    base_rate: float | None
    bands: tuple[BandFigures, ...]
    hot_precision: float | None
    hot_recall: float | None
    won_leads: int
    won_hot_before: int
    lead_time_days: tuple[float, ...]
    new_hot_per_step: tuple[int, ...]
    step_days: float
    capacity_per_day: float | None
    steps_over_capacity: int | None
    churn: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hot_share_before_win(self) -> float | None:
        return self.won_hot_before / self.won_leads if self.won_leads else None

    @property
    def median_lead_time_days(self) -> float | None:
        return statistics.median(self.lead_time_days) if self.lead_time_days else None

    @property
    def peak_new_hot_per_day(self) -> float | None:
        if len(self.new_hot_per_step) < 2 or self.step_days <= 0:
            return None
        return max(self.new_hot_per_step[1:]) / self.step_days

    @property
    def new_hot_per_day(self) -> float | None:
        """Mean leads becoming hot per day, from the second as-of time on (at the first,
        who was hot the day before is not known)."""
        steps = len(self.new_hot_per_step) - 1
        if steps < 1 or self.step_days <= 0:
            return None
        return sum(self.new_hot_per_step[1:]) / (steps * self.step_days)

    def band(self, name: str) -> BandFigures:
        return next(b for b in self.bands if b.band == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "observations": self.observations,
            "leads": self.leads,
            "converted": self.converted,
            "base_rate": self.base_rate,
            "bands": [
                {
                    "band": b.band,
                    "observations": b.observations,
                    "leads": b.leads,
                    "converted": b.converted,
                    "conversion_rate": b.rate,
                    "lift": b.lift,
                }
                for b in self.bands
            ],
            "hot_precision": self.hot_precision,
            "hot_recall": self.hot_recall,
            "won_leads": self.won_leads,
            "won_hot_before": self.won_hot_before,
            "hot_share_before_win": self.hot_share_before_win,
            "median_lead_time_days": self.median_lead_time_days,
            "new_hot_per_step": list(self.new_hot_per_step),
            "new_hot_per_day": self.new_hot_per_day,
            "peak_new_hot_per_day": self.peak_new_hot_per_day,
            "capacity_per_day": self.capacity_per_day,
            "steps_over_capacity": self.steps_over_capacity,
            "churn": self.churn,
        }


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


class Tally:
    """Adds up one playbook's timelines, one lead at a time (memory: per band counts, not
    per observation), then :meth:`result` gives the :class:`Metrics`."""

    def __init__(
        self,
        as_of_times: Sequence[int],
        outcomes: Mapping[str, LeadOutcome],
        horizon_us: int,
        capacity_per_day: float | None = None,
    ) -> None:
        if any(b <= a for a, b in pairwise(as_of_times)):
            raise ValueError("as-of times must increase")
        if horizon_us <= 0:
            raise ValueError("horizon: must be positive")
        self.as_of_times = list(as_of_times)
        self.outcomes = outcomes
        self.horizon_us = horizon_us
        self.capacity_per_day = capacity_per_day
        self.obs = dict.fromkeys(BANDS, 0)
        self.conv = dict.fromkeys(BANDS, 0)
        self.band_leads = dict.fromkeys(BANDS, 0)
        self.leads = 0
        self.new_hot = [0] * len(as_of_times)
        self.changes = self.pairs = 0
        self.won_leads = self.won_hot = 0
        self.lead_times: list[float] = []

    def add(self, timeline: Timeline) -> None:
        """One lead's timeline; its steps after the lead closed are not counted.

        Works on the timeline's band letters with string operations (counts, slices,
        finds), which run at C speed: a backtest has leads × as-of times of them."""
        outcome = self.outcomes.get(timeline.lead_id)
        times = self.as_of_times
        first = timeline.first_step
        codes = timeline.bands
        if outcome is not None and outcome.closed_us is not None:
            # Open while not closed: the as-of times before the close (closed stays closed).
            codes = codes[: max(0, bisect.bisect_left(times, outcome.closed_us) - first)]
        if not codes:
            return
        if codes.strip("hwc") or "?" in codes:  # letters only sweep_lead writes
            raise ValueError(f"lead {timeline.lead_id}: unknown temperature in {codes!r}")
        won = outcome.won_us if outcome is not None else None
        converted = ""
        if won is not None:
            # Converted at as-of T when T < won <= T + horizon: won - horizon <= T < won.
            lo = bisect.bisect_left(times, won - self.horizon_us) - first
            hi = bisect.bisect_left(times, won) - first
            converted = codes[max(lo, 0) : max(hi, 0)]
        for band, code in (("hot", "h"), ("warm", "w"), ("cold", "c")):
            n = codes.count(code)
            if n:
                self.obs[band] += n
                self.band_leads[band] += 1
                self.conv[band] += converted.count(code)
        if codes[0] == "h" and first > 0:  # at step 0 nobody knows the day before
            self.new_hot[first] += 1
        for pattern in ("ch", "wh"):
            at = codes.find(pattern)
            while at >= 0:
                self.new_hot[first + at + 1] += 1
                at = codes.find(pattern, at + 2)
        self.pairs += len(codes) - 1
        self.changes += sum(codes.count(p) for p in ("hw", "hc", "wh", "wc", "ch", "cw"))
        self.leads += 1
        # Open at an as-of time means not closed yet, so every step counted is before the
        # win; a win counts if it falls in the period the as-of times and horizon cover.
        if won is not None and won <= times[-1] + self.horizon_us:
            self.won_leads += 1
            at = codes.find("h")
            if at >= 0:
                self.won_hot += 1
                self.lead_times.append((won - times[first + at]) / DAY_US)

    def merge(self, other: Tally) -> None:
        """Add ``other``'s counts: a tally of other leads at the same as-of times."""
        if other.as_of_times != self.as_of_times:
            raise ValueError("tallies of different as-of times")
        for band in BANDS:
            self.obs[band] += other.obs[band]
            self.conv[band] += other.conv[band]
            self.band_leads[band] += other.band_leads[band]
        self.leads += other.leads
        self.new_hot = [a + b for a, b in zip(self.new_hot, other.new_hot, strict=True)]
        self.changes += other.changes
        self.pairs += other.pairs
        self.won_leads += other.won_leads
        self.won_hot += other.won_hot
        self.lead_times.extend(other.lead_times)

    def result(self) -> Metrics:
        total = sum(self.obs.values())
        converted = sum(self.conv.values())
        base = _ratio(converted, total)
        bands = []
        for band in BANDS:
            rate = _ratio(self.conv[band], self.obs[band])
            lift = rate / base if rate is not None and base else None
            bands.append(
                BandFigures(
                    band, self.obs[band], self.band_leads[band], self.conv[band], rate, lift
                )
            )
        times = self.as_of_times
        step_days = (times[-1] - times[0]) / (len(times) - 1) / DAY_US if len(times) > 1 else 1.0
        over = None
        if self.capacity_per_day is not None:
            over = sum(1 for n in self.new_hot[1:] if n > self.capacity_per_day * step_days)
        return Metrics(
            observations=total,
            leads=self.leads,
            converted=converted,
            base_rate=base,
            bands=tuple(bands),
            hot_precision=bands[0].rate,
            hot_recall=_ratio(self.conv["hot"], converted),
            won_leads=self.won_leads,
            won_hot_before=self.won_hot,
            lead_time_days=tuple(sorted(self.lead_times)),
            new_hot_per_step=tuple(self.new_hot),
            step_days=step_days,
            capacity_per_day=self.capacity_per_day,
            steps_over_capacity=over,
            churn=_ratio(self.changes, self.pairs),
        )


def compute(
    as_of_times: Sequence[int],
    timelines: Iterable[Timeline],
    outcomes: Mapping[str, LeadOutcome],
    horizon_us: int,
    capacity_per_day: float | None = None,
) -> Metrics:
    """The figures of one playbook's timelines at ``as_of_times`` (sorted, increasing)."""
    tally = Tally(as_of_times, outcomes, horizon_us, capacity_per_day)
    for timeline in timelines:
        tally.add(timeline)
    return tally.result()
