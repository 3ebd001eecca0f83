"""Fit: points for who a lead is, from its attributes. Fit does not fade with time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyrometer.core.model import FitLine
from pyrometer.core.playbook import Playbook


def fit_lines(playbook: Playbook, attributes: Mapping[str, Any]) -> tuple[FitLine, ...]:
    """Every fit rule that matches the attributes (any spelling of their names, nested
    objects flattened, the playbook's aliases)."""
    attributes = playbook.lead_attributes(attributes)
    return tuple(
        FitLine(rule=rule.name, points=rule.points)
        for rule in playbook.fit
        if rule.where.matches(attributes, playbook.missing_values)
    )


def suppressed_by_attributes(playbook: Playbook, attributes: Mapping[str, Any]) -> bool:
    """Whether an attribute (``Do Not Email: Yes``...) marks the lead do-not-contact."""
    attributes = playbook.lead_attributes(attributes)
    return any(
        where.matches(attributes, playbook.missing_values)
        for where in playbook.suppression.attributes
    )
