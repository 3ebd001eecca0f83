"""Speed to lead, as figures: how fast routed leads were touched, and whether it paid.

Pure arithmetic over routed assignments, per rep and overall, so every figure of the
report can be checked by hand. One row is one assignment that carried a speed-to-lead
clock: a lead reassigned after a breach is a row for each rep it went to (each rep is
judged on what they were given), so the overall counts are the sums of the reps'.

- ``routed``: rows; ``touched``: rows whose first touch came (at or after the clock start).
- Time to first touch is the buyer's wait: first touch minus the clock start (the
  routing transition's time, which a reassignment keeps). Median and p90 are
  nearest-rank percentiles (the value at position ``ceil(p * n / 100)`` of the sorted
  waits), so each is a wait that happened; ``None`` without touched rows.
- ``within_sla_share``: rows touched by their SLA due time, over all rows routed (a row
  never touched is a miss).
- Conversion by speed: rows touched within 5 minutes (the documents' figure), touched
  later, and never touched, each with how many converted and the rate (``None`` for an
  empty group). What "converted" means is the caller's (the report: the lead is a
  customer now).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

FIVE_MINUTES_US = 5 * 60 * 1_000_000


@dataclass(frozen=True, slots=True)
class Routed:
    """One routed assignment: its rep (``None``: the unassigned queue), clock start, first
    touch (``None``: not touched), SLA due time, and whether its lead converted."""

    rep: str | None
    clock_us: int
    first_touch_us: int | None
    sla_due_us: int | None
    converted: bool

    @property
    def wait_us(self) -> int | None:
        return None if self.first_touch_us is None else self.first_touch_us - self.clock_us

    @property
    def within_sla(self) -> bool:
        return (
            self.first_touch_us is not None
            and self.sla_due_us is not None
            and self.first_touch_us <= self.sla_due_us
        )


@dataclass(frozen=True, slots=True)
class Conversion:
    """A group of rows and how many of their leads converted."""

    leads: int
    converted: int

    @property
    def rate(self) -> float | None:
        return self.converted / self.leads if self.leads else None


@dataclass(frozen=True, slots=True)
class Speed:
    """The figures of one rep, or of everyone."""

    routed: int
    touched: int
    median_us: int | None
    p90_us: int | None
    within_sla: int
    within_5_minutes: Conversion
    later: Conversion
    not_touched: Conversion

    @property
    def within_sla_share(self) -> float | None:
        return self.within_sla / self.routed if self.routed else None

    @property
    def touched_share(self) -> float | None:
        return self.touched / self.routed if self.routed else None


def nearest_rank(ordered: Sequence[int], percent: int) -> int | None:
    """The nearest-rank ``percent``-th percentile of sorted values (``None`` if empty)."""
    if not ordered:
        return None
    rank = -(-percent * len(ordered) // 100)  # ceil without floats
    return ordered[max(rank, 1) - 1]


def _conversion(rows: Sequence[Routed]) -> Conversion:
    return Conversion(len(rows), sum(1 for row in rows if row.converted))


def speed_of(rows: Iterable[Routed]) -> Speed:
    """The figures of these rows."""
    rows = list(rows)
    waits = sorted(w for row in rows if (w := row.wait_us) is not None)
    fast = [r for r in rows if r.wait_us is not None and r.wait_us <= FIVE_MINUTES_US]
    slow = [r for r in rows if r.wait_us is not None and r.wait_us > FIVE_MINUTES_US]
    never = [r for r in rows if r.wait_us is None]
    return Speed(
        routed=len(rows),
        touched=len(waits),
        median_us=nearest_rank(waits, 50),
        p90_us=nearest_rank(waits, 90),
        within_sla=sum(1 for row in rows if row.within_sla),
        within_5_minutes=_conversion(fast),
        later=_conversion(slow),
        not_touched=_conversion(never),
    )


def speed_by_rep(rows: Iterable[Routed]) -> tuple[Mapping[str | None, Speed], Speed]:
    """Each rep's figures (the unassigned queue under ``None``), and everyone's."""
    rows = list(rows)
    groups: dict[str | None, list[Routed]] = {}
    for row in rows:
        groups.setdefault(row.rep, []).append(row)
    return {rep: speed_of(group) for rep, group in groups.items()}, speed_of(rows)
