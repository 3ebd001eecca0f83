"""Fit: points for who a lead is, from its attributes. Fit does not fade with time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyrometer.core.model import FitLine
from pyrometer.core.playbook import Playbook


def fit_lines(playbook: Playbook, attributes: Mapping[str, Any]) -> tuple[FitLine, ...]:
    """Every fit rule that matches the attributes (any spelling of their names, nested
    objects flattened, the playbook's aliases)."""
    return _fit_lines(playbook, playbook.lead_attributes(attributes))


def suppressed_by_attributes(playbook: Playbook, attributes: Mapping[str, Any]) -> bool:
    """Whether an attribute (``Do Not Email: Yes``...) marks the lead do-not-contact."""
    return _suppressed(playbook, playbook.lead_attributes(attributes))


def fit_and_suppression(
    playbook: Playbook, attributes: Mapping[str, Any]
) -> tuple[tuple[FitLine, ...], bool]:
    """:func:`fit_lines` and :func:`suppressed_by_attributes` of one record, its names
    resolved once (a lead's attributes change: both are needed)."""
    resolved = playbook.lead_attributes(attributes)
    return _fit_lines(playbook, resolved), _suppressed(playbook, resolved)


def _fit_lines(playbook: Playbook, resolved: Mapping[str, Any]) -> tuple[FitLine, ...]:
    return tuple(
        FitLine(rule=rule.name, points=rule.points)
        for rule in playbook.fit
        if rule.where.matches(resolved, playbook.missing_values)
    )


def _suppressed(playbook: Playbook, resolved: Mapping[str, Any]) -> bool:
    return any(
        where.matches(resolved, playbook.missing_values)
        for where in playbook.suppression.attributes
    )
