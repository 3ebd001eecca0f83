"""Which rows are wins and losses: outcome words, and lifecycle events in the history.

An outcomes file says ``won`` (or ``converted``, ``purchase``, ``1``, ``true``...) or
``lost`` for a lead at a time. Without one, the events themselves tell: a ``purchase`` or
``won`` event, or any event the playbook's lifecycle maps to ``customer``, is a win; a
``lost`` event, or one mapped to ``disqualified``, closes the lead without one.
"""

from __future__ import annotations

from pyrometer.core.conditions import normalize_name
from pyrometer.core.playbook import Playbook, Stage

WON_WORDS = frozenset({"won", "win", "converted", "convert", "purchase", "customer", "1", "true"})
LOST_WORDS = frozenset({"lost", "lose", "disqualified", "churned", "0", "false"})
WON_EVENTS = frozenset({"purchase", "won"})
LOST_EVENTS = frozenset({"lost"})


def outcome_word(text: str | None) -> str | None:
    """``"won"``, ``"lost"``, or ``None`` for a word that is neither."""
    word = normalize_name(str(text or ""))
    if word in WON_WORDS:
        return "won"
    if word in LOST_WORDS:
        return "lost"
    return None


def outcome_of_event(playbook: Playbook, name: str) -> str | None:
    """What an event (normalised name) says about the lead's outcome, if anything."""
    meaning = playbook.event_name(name)
    stage = playbook.stage_event(name)
    if meaning in WON_EVENTS or stage is Stage.CUSTOMER:
        return "won"
    if meaning in LOST_EVENTS or stage is Stage.DISQUALIFIED:
        return "lost"
    return None
