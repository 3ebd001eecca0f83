"""The ledger: every point a lead earned, and what it is worth at a given time.

A ledger line records the points a rule gave for an event when it happened; its value at
any later time follows from the playbook's decay alone, so stores keep the points and
:func:`revalue` computes the values when someone reads them. The values of a lead's lines
plus its fit lines add up to its score.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from pyrometer.core.model import EngagementLine
from pyrometer.core.playbook import Playbook


def revalue(
    playbook: Playbook, lines: Iterable[EngagementLine], as_of_us: int
) -> tuple[EngagementLine, ...]:
    """``lines`` with ``value`` set to what their points are worth at ``as_of_us``."""
    decay = playbook.decay
    now = decay.step_of(as_of_us)
    return tuple(
        replace(line, value=line.points * decay.factor(now - decay.step_of(line.ts_us)))
        for line in lines
        if line.ts_us <= as_of_us
    )


def upsert(
    book: dict[tuple[str, str], EngagementLine], lines: Iterable[EngagementLine]
) -> dict[tuple[str, str], EngagementLine]:
    """Apply an incremental step's lines to a ledger keyed by (rule, event id), in place."""
    for line in lines:
        book[(line.rule, line.event_id)] = line
    return book


def in_event_order(lines: Iterable[EngagementLine]) -> list[EngagementLine]:
    return sorted(lines, key=lambda line: (line.ts_us, line.event_id, line.rule))
