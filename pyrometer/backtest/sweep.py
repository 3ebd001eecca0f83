"""Every lead's score at every as-of time, in one pass over its events in time order.

A backtest asks for the leads' temperatures at many as-of times (180 daily ones, say).
Scoring each time from scratch rescans the history once per time. Here each lead's events
are applied once, in time order, keeping what the incremental scorer keeps (engagement at
its latest decay step, a count per cap window); at each as-of time that holds exactly the
events at or before that time (the as-of scorer's rule 1 in
:mod:`pyrometer.core.reference`). Decay between events is closed-form, so reading it
costs O(1) per as-of time: O(events + leads × as-of times) in all. Tests check every
as-of time against the reference scorer run at that time alone.

``pyrometer backtest`` scores all as-of times in SQL instead
(:mod:`pyrometer.engines.duckdb_backtest`), tested equal to this sweep, which stays the
reference, the fallback, and what ``pyrometer tune`` uses (it needs the scores).

A lead is *observed* from the first as-of time at which it has an event; a lead with
attributes but no event yet is not a lead anyone saw. Nothing here reads files or SQL.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyrometer.core.classify import CLASSIFY_DECIMALS
from pyrometer.core.conditions import normalize_record
from pyrometer.core.events import distinct_events
from pyrometer.core.fit import fit_and_suppression
from pyrometer.core.model import Event
from pyrometer.core.playbook import EngagementRule, Playbook

CODES = {"h": "hot", "w": "warm", "c": "cold"}
CODE_OF = {name: code for code, name in CODES.items()}


@dataclass(frozen=True, slots=True)
class Timeline:
    """One lead under one playbook: its score and temperature at as-of times number
    ``first_step``, ``first_step + 1``, ... up to the last as-of time. ``bands`` holds one
    letter per as-of time (``h``, ``w``, ``c``): compact, and counted at C speed."""

    lead_id: str
    first_step: int
    scores: tuple[float, ...]  # empty when only the bands were asked for
    bands: str

    @classmethod
    def of(
        cls,
        lead_id: str,
        first_step: int,
        temperatures: Sequence[str],
        scores: Sequence[float] = (),
    ) -> Timeline:
        """A timeline from temperature names (``hot``...), for tests and callers."""
        codes = "".join(CODE_OF.get(t, "?") for t in temperatures)
        return cls(lead_id, first_step, tuple(scores) or (0.0,) * len(codes), codes)

    @property
    def temperatures(self) -> tuple[str, ...]:
        return tuple(CODES.get(code, code) for code in self.bands)

    def at(self, step: int) -> str | None:
        """The temperature at as-of time number ``step``; ``None`` before the first event."""
        index = step - self.first_step
        return CODES[self.bands[index]] if 0 <= index < len(self.bands) else None


def as_of_grid(start_us: int, end_us: int, every_us: int) -> list[int]:
    """``start_us``, ``start_us + every_us``, ... up to ``end_us`` included."""
    if every_us <= 0:
        raise ValueError("every: the step between as-of times must be positive")
    if end_us < start_us:
        raise ValueError("the range of as-of times ends before it starts")
    return list(range(start_us, end_us + 1, every_us))


class _Rules:
    """``playbook.rules_matching`` remembered per (event name, properties): a history
    repeats a few hundred of them millions of times. Bounded; unhashable values skip it."""

    LIMIT = 100_000

    def __init__(self, playbook: Playbook) -> None:
        self.playbook = playbook
        self.found: dict[Any, list[EngagementRule]] = {}
        self.factors: dict[int, float] = {}  # decay factor by steps, shared by all leads
        self._fit: float | None = None
        self._steps: tuple[Sequence[int], list[int]] | None = None

    def no_attributes_fit(self) -> float:
        """Fit of a lead without attributes (rules testing ``missing`` may match)."""
        if self._fit is None:
            fits, _ = fit_and_suppression(self.playbook, {})
            self._fit = sum(line.points for line in fits)
        return self._fit

    def steps_of(self, as_of_times: Sequence[int]) -> list[int]:
        """The decay step of each as-of time (remembered for the list last asked)."""
        if self._steps is None or self._steps[0] is not as_of_times:
            step_us = self.playbook.decay.step_us
            self._steps = (as_of_times, [t // step_us for t in as_of_times])
        return self._steps[1]

    def __call__(self, event: Event) -> list[EngagementRule]:
        try:
            key: Any = (event.name, tuple(sorted(event.properties.items())))
            found = self.found.get(key)
        except TypeError:  # a list or dict among the properties
            return self.playbook.rules_matching(event.name, event.properties)
        if found is None:
            found = self.playbook.rules_matching(event.name, event.properties)
            if len(self.found) >= self.LIMIT:
                self.found.clear()
            self.found[key] = found
        return found


_MATCHERS: dict[int, tuple[Playbook, _Rules]] = {}


def _rules(playbook: Playbook) -> _Rules:
    cached = _MATCHERS.get(id(playbook))
    if cached is None or cached[0] is not playbook:
        if len(_MATCHERS) > 16:
            _MATCHERS.clear()
        cached = _MATCHERS[id(playbook)] = (playbook, _Rules(playbook))
    return cached[1]


def sweep_lead(
    playbook: Playbook,
    lead_id: str,
    events: Sequence[Event],
    attributes: Mapping[str, Any],
    as_of_times: Sequence[int],
    scores: bool = True,
) -> Timeline | None:
    """``lead_id``'s timeline; ``events`` are its events, distinct ids, in any order.

    ``None`` when the lead has no event at or before the last as-of time. The events are
    applied in time order (ties by id), so a cap or ``once`` window's rank is the count of
    its events so far, as the reference scorer counts it; engagement is carried from one
    decay step to the next as the incremental scorer carries it.

    Without ``scores`` only the bands are wanted: between two events the score moves
    monotonically toward fit, so each stretch's bands are found by binary search for the
    (at most two) as-of times where they change, not by scoring every as-of time.
    """
    ordered = sorted(events, key=lambda e: e.order_key)
    if not ordered or not as_of_times or ordered[0].ts_us > as_of_times[-1]:
        return None
    matching = _rules(playbook)
    if attributes:
        fits, _ = fit_and_suppression(playbook, normalize_record(dict(attributes)))
        fit = sum(line.points for line in fits)
    else:
        fit = matching.no_attributes_fit()
    decay = playbook.decay
    step_us = decay.step_us
    steps = matching.steps_of(as_of_times)
    hot, warm = playbook.temperature.hot, playbook.temperature.warm
    factors = matching.factors

    def factor(steps: int) -> float:
        value = factors.get(steps)
        if value is None:
            value = factors[steps] = decay.factor(steps)
        return value

    ranks: dict[tuple[str, int], int] = {}
    engagement = 0.0
    anchor = ordered[0].ts_us // step_us
    values: list[float] = []
    codes: list[str] = []
    first_step = bisect.bisect_left(as_of_times, ordered[0].ts_us)
    n_times = len(as_of_times)

    def score_at(k: int) -> float:
        return fit + engagement * factor(steps[k] - anchor)

    def code(score: float) -> str:
        rounded = round(score, CLASSIFY_DECIMALS)  # as classify does
        return "h" if rounded >= hot else "w" if rounded >= warm else "c"

    index, count = 0, len(ordered)
    k = first_step
    while k < n_times:
        while index < count and ordered[index].ts_us <= as_of_times[k]:
            event = ordered[index]
            index += 1
            event_step = event.ts_us // step_us
            if event_step > anchor:
                engagement *= factor(event_step - anchor)
                anchor = event_step
            for rule in matching(event):
                if rule.limited:
                    window = event.ts_us // rule.window_us if rule.window_us else 0
                    key = (rule.name, window)
                    rank = ranks.get(key, 0)
                    ranks[key] = rank + 1
                    engagement += rule.points_at_rank(rank)
                else:
                    engagement += rule.points
        # The as-of times before the next event: one stretch of fixed engagement.
        end = (
            bisect.bisect_left(as_of_times, ordered[index].ts_us, k + 1)
            if index < count
            else n_times
        )
        if scores:
            for j in range(k, end):
                value = score_at(j)
                values.append(value)
                codes.append(code(value))
        elif engagement == 0.0:  # fit alone: one band for the whole stretch
            codes.append(code(fit) * (end - k))
        else:
            while k < end:
                band = code(score_at(k))
                if code(score_at(end - 1)) == band:
                    codes.append(band * (end - k))
                    break
                lo, hi = k, end - 1  # band at lo, another at hi: find the first change
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if code(score_at(mid)) == band:
                        lo = mid
                    else:
                        hi = mid
                codes.append(band * (hi - k))
                k = hi
        k = end
    return Timeline(lead_id, first_step, tuple(values), "".join(codes))


def sweep(
    playbook: Playbook,
    events: Iterable[Event],
    leads: Mapping[str, Mapping[str, Any]],
    as_of_times: Sequence[int],
    scores: bool = True,
) -> Iterator[Timeline]:
    """Every lead's timeline, leads in id order. An event id seen twice is one event, the
    first seen (:func:`pyrometer.core.events.distinct_events`)."""
    by_lead: dict[str, list[Event]] = {}
    for event in distinct_events(events):
        by_lead.setdefault(event.lead_id, []).append(event)
    for lead_id in sorted(by_lead):
        timeline = sweep_lead(
            playbook, lead_id, by_lead[lead_id], leads.get(lead_id, {}), as_of_times, scores
        )
        if timeline is not None:
            yield timeline
