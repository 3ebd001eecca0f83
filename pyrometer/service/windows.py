"""Cap windows a late event needs, restored from the event log before it is scored.

The stored state keeps only the recent cap windows (:func:`pyrometer.core.incremental.seal`);
an event (or a merge's folded events) landing in an older one needs that window rebuilt
from the events already scored into the state. This reads only the events inside those
windows' spans, so it costs what the late events touch, never the whole history.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from pyrometer.core.incremental import LeadState, restore_windows, sealed_windows
from pyrometer.core.model import Event
from pyrometer.core.playbook import Playbook
from pyrometer.store.history import lead_events_in


def restore_for(
    conn: Connection, book: Playbook, lead_id: str, state: LeadState, pending: Sequence[Event]
) -> LeadState:
    """``state`` with every dropped window ``pending`` needs rebuilt.

    ``lead_id``'s log must hold the events of ``state`` (and may already hold
    ``pending``: those are left out, since they are not in the state yet).
    """
    needed = sealed_windows(book, state, pending)
    if not needed:
        return state
    waiting = {event.event_id for event in pending}
    history = [
        event
        for event in lead_events_in(conn, lead_id, [(start, end) for _, start, end in needed])
        if event.event_id not in waiting
    ]
    return restore_windows(book, state, [key for key, _, _ in needed], history)
