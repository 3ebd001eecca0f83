"""One event per id: what every engine scores when an event id is seen more than once.

The service stores a message once per ``messageId`` (the events table's key), whatever
lead it names: a resent message changes nothing, and the first one stored wins. Files go
through the same rule, the first row in file order winning, so that ``pyrometer score``
counts what ``pyrometer import`` keeps. This module is that rule for events already in
memory (:mod:`pyrometer.core.reference`, tests); the batch engine applies it in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyrometer.core.model import Event


def distinct_events(events: Iterable[Event]) -> list[Event]:
    """``events`` in their order, without those whose id was seen before.

    The id alone decides, not the lead or the contents: two rows with one id are one
    event, the first, even when the later one differs (a resent message is not new).
    """
    seen: set[str] = set()
    out: list[Event] = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            out.append(event)
    return out
