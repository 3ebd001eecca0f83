"""From two numbers (fit and engagement) to the classes a team acts on.

Every engine classifies with these functions or with SQL compiled from the same playbook
fields; values are rounded to :data:`CLASSIFY_DECIMALS` first so that two engines whose
floating-point sums differ in the last bit still agree on a lead sitting on a threshold.
"""

from __future__ import annotations

from pyrometer.core.conditions import Condition
from pyrometer.core.playbook import Metric, Playbook, Stage, Temperature

CLASSIFY_DECIMALS = 6


def temperature_of(playbook: Playbook, score: float) -> Temperature:
    score = round(score, CLASSIFY_DECIMALS)
    if score >= playbook.temperature.hot:
        return Temperature.HOT
    if score >= playbook.temperature.warm:
        return Temperature.WARM
    return Temperature.COLD


def is_marketing_qualified(playbook: Playbook, fit: float, engagement: float) -> bool:
    """Whether the lifecycle's ``mql`` conditions hold for these scores."""
    values = {
        Metric.SCORE: round(fit + engagement, CLASSIFY_DECIMALS),
        Metric.FIT: round(fit, CLASSIFY_DECIMALS),
        Metric.ENGAGEMENT: round(engagement, CLASSIFY_DECIMALS),
    }
    return all(_within(cond, values[metric]) for metric, cond in playbook.lifecycle.mql.items())


def _within(cond: Condition, value: float) -> bool:
    """A score against ``gt``/``gte``/``lt``/``lte`` (the only tests a playbook allows on
    scores): the same answer as ``cond.matches(value)``, without reading it as text, which
    matters in the incremental scorer's inner loop."""
    return (
        (cond.gt is None or value > cond.gt)
        and (cond.gte is None or value >= cond.gte)
        and (cond.lt is None or value < cond.lt)
        and (cond.lte is None or value <= cond.lte)
    )


def stage_of(playbook: Playbook, fit: float, engagement: float, explicit: Stage | None) -> Stage:
    """Sales stages come from the latest lifecycle event; otherwise the scores decide.

    An explicit ``lead`` (a lost or recycled lead) hands the lead back to the scores.
    """
    if explicit is not None and explicit is not Stage.LEAD:
        return explicit
    return Stage.MQL if is_marketing_qualified(playbook, fit, engagement) else Stage.LEAD


def funnel_of(playbook: Playbook, stage: Stage) -> str:
    return playbook.lifecycle.funnel[stage]
