"""What the playbook compiles to per lead: fit, suppression by attribute, and classes.

Fit and suppression are ``where`` trees over the lead table's columns (the playbook's
attribute aliases resolved); temperature and stage are thresholds on the rounded score
(:data:`pyrometer.core.classify.CLASSIFY_DECIMALS`, so every engine rounds alike). An
engine renders these as expressions over its own columns ``fit``, ``engagement`` and
``explicit_stage``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from pyrometer.core.classify import CLASSIFY_DECIMALS
from pyrometer.core.fit import fit_lines, suppressed_by_attributes
from pyrometer.core.playbook import Metric, Playbook
from pyrometer.engines.plan.conditions import AllFields, bounds, compile_where

OUTPUT_COLUMNS = (
    "lead_id",
    "score",
    "fit",
    "engagement",
    "temperature",
    "stage",
    "funnel",
    "suppressed",
    "last_activity",
    "events",
)
"""What every engine returns per lead, in this order."""


@dataclass(frozen=True)
class FitTerm:
    """A fit rule: ``points`` where ``where`` holds."""

    name: str
    where: AllFields
    points: float


@dataclass(frozen=True)
class FitPlan:
    """Fit and suppression by attribute, over a lead table's (resolved) columns."""

    terms: tuple[FitTerm, ...]
    suppression: tuple[AllFields, ...]
    """The lead is suppressed when one holds."""
    default_fit: float
    """Fit of a lead without attributes (rules on ``missing`` match)."""
    default_suppressed: bool


@dataclass(frozen=True)
class ClassPlan:
    """Temperature, stage and funnel from a lead's fit, engagement and explicit stage."""

    decimals: int
    warm: float
    hot: float
    mql: tuple[tuple[Metric, tuple[tuple[str, float], ...]], ...]
    """Per metric, the (operator, bound) pairs its rounded value must meet for MQL."""
    funnel: tuple[tuple[str, str], ...]
    """Stage → funnel name."""


def fit_plan(playbook: Playbook, columns: Collection[str]) -> FitPlan:
    """Fit over a lead table with the (alias-resolved, normalised) ``columns``."""
    missing = playbook.missing_values
    return FitPlan(
        terms=tuple(
            FitTerm(rule.name, compile_where(rule.where, columns, missing), rule.points)
            for rule in playbook.fit
        ),
        suppression=tuple(
            compile_where(where, columns, missing) for where in playbook.suppression.attributes
        ),
        default_fit=sum(line.points for line in fit_lines(playbook, {})),
        default_suppressed=suppressed_by_attributes(playbook, {}),
    )


def class_plan(playbook: Playbook) -> ClassPlan:
    return ClassPlan(
        decimals=CLASSIFY_DECIMALS,
        warm=playbook.temperature.warm,
        hot=playbook.temperature.hot,
        mql=tuple((metric, bounds(cond)) for metric, cond in playbook.lifecycle.mql.items()),
        funnel=tuple((str(stage), name) for stage, name in playbook.lifecycle.funnel.items()),
    )
