"""From two numbers (fit and engagement) to the classes a team acts on.

Every engine classifies with these functions or with SQL compiled from the same playbook
fields; values are rounded to :data:`CLASSIFY_DECIMALS` first so that two engines whose
floating-point sums differ in the last bit still agree on a lead sitting on a threshold.
"""

from __future__ import annotations

from pyrometer.core.playbook import Metric, Playbook, ProbabilityBands, Stage, Temperature

CLASSIFY_DECIMALS = 6


def temperature_of(playbook: Playbook, score: float) -> Temperature:
    return _temperature(playbook, round(score, CLASSIFY_DECIMALS))


def _temperature(playbook: Playbook, rounded_score: float) -> Temperature:
    if rounded_score >= playbook.temperature.hot:
        return Temperature.HOT
    if rounded_score >= playbook.temperature.warm:
        return Temperature.WARM
    return Temperature.COLD


def temperature_of_probability(bands: ProbabilityBands, p: float) -> Temperature:
    """A predicted probability's ``temperature.probability`` band: hot at or above
    ``hot``, warm at or above ``warm`` (as ``pyrometer score --model`` classifies)."""
    if p >= bands.hot:
        return Temperature.HOT
    if p >= bands.warm:
        return Temperature.WARM
    return Temperature.COLD


def is_marketing_qualified(playbook: Playbook, fit: float, engagement: float) -> bool:
    """Whether the lifecycle's ``mql`` conditions hold for these scores."""
    return _qualified(playbook, round(fit + engagement, CLASSIFY_DECIMALS), fit, engagement)


def _qualified(playbook: Playbook, rounded_score: float, fit: float, engagement: float) -> bool:
    """The ``mql`` bounds (``gt``/``gte``/``lt``/``lte``, the only tests a playbook allows
    on scores) against the rounded scores, compared as numbers, never read as text: this
    runs several times for every event the service scores. The SQL twin is
    :func:`pyrometer.engines.sql_conditions.bounds_sql`."""
    for metric, gt, gte, lt, lte in playbook.lifecycle.mql_bounds:
        if metric is Metric.SCORE:
            value = rounded_score
        elif metric is Metric.FIT:
            value = round(fit, CLASSIFY_DECIMALS)
        else:
            value = round(engagement, CLASSIFY_DECIMALS)
        if not (
            (gt is None or value > gt)
            and (gte is None or value >= gte)
            and (lt is None or value < lt)
            and (lte is None or value <= lte)
        ):
            return False
    return True


def stage_of(playbook: Playbook, fit: float, engagement: float, explicit: Stage | None) -> Stage:
    """Sales stages come from the latest lifecycle event; otherwise the scores decide.

    An explicit ``lead`` (a lost or recycled lead) hands the lead back to the scores.
    """
    if explicit is not None and explicit is not Stage.LEAD:
        return explicit
    return Stage.MQL if is_marketing_qualified(playbook, fit, engagement) else Stage.LEAD


def classes_of(
    playbook: Playbook, fit: float, engagement: float, explicit: Stage | None
) -> tuple[Temperature, Stage]:
    """``temperature_of(fit + engagement)`` and ``stage_of`` at once, the score rounded
    once: the incremental scorer classifies several times per event."""
    score = round(fit + engagement, CLASSIFY_DECIMALS)
    temperature = _temperature(playbook, score)
    if explicit is not None and explicit is not Stage.LEAD:
        return temperature, explicit
    qualified = _qualified(playbook, score, fit, engagement)
    return temperature, Stage.MQL if qualified else Stage.LEAD


def funnel_of(playbook: Playbook, stage: Stage) -> str:
    return playbook.lifecycle.funnel[stage]
