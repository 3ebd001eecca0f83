"""Who did what: Segment ``identify`` and ``alias`` calls of a file, read in file order.

The service links an anonymous visitor to a known lead when an ``identify`` names both
(``userId`` and ``anonymousId``) or an ``alias`` names both (``userId`` and
``previousId``): the visitor's events, before and after, are the lead's. A file of
Segment messages holds the same calls, so scoring it must link the visitors the service
would link were the messages sent one by one in file order; this module is that rule,
pure, for the file readers (:mod:`pyrometer.io.segment`):

* An id is *known* once a message has named it as its ``userId`` (a ``track``, ``page``,
  ``identify`` or ``alias``). Only an id not known yet, a visitor, is folded into a lead:
  two known leads are never merged (the service refuses such a call).
* A visitor is linked once, by the first call that links it; later ones only give traits.
* A ``userId`` always names the lead itself; only events that carry no ``userId`` are
  moved, by their ``anonymousId``, to the lead their visitor was linked to (before or
  after the call, as in the service, where a link holds for all of the visitor's events).
* Traits are merged key by key, later calls winning; a visitor folded into a lead brings
  its own traits, which the linking call's traits override. An ``identify`` with only an
  ``anonymousId`` gives its traits to that visitor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class IdentityCall:
    """An ``identify`` or ``alias`` of a file, at its 1-based ``row``.

    ``lead_id`` is the ``userId`` (an identify without one: its ``anonymousId``, with
    ``named`` false); ``visitor`` the ``anonymousId`` or ``previousId`` it links, if any.
    ``message_id`` and ``ts_us`` are the message's, for the importer.
    """

    row: int
    lead_id: str
    visitor: str | None = None
    named: bool = True
    traits: Mapping[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    ts_us: int | None = None


@dataclass(frozen=True, slots=True)
class Stitching:
    """What a file's calls amount to."""

    calls: tuple[IdentityCall, ...]
    """The calls, in file order."""
    links: dict[str, str]
    """Visitor → the lead its events belong to."""
    traits: dict[str, dict[str, Any]]
    """Lead → its merged traits (keys as given), for the leads that have any."""
    linked: tuple[bool, ...]
    """Per call, whether it linked its visitor (the importer sends only those links)."""


def stitch(calls: Iterable[IdentityCall], first_named: Mapping[str, int]) -> Stitching:
    """Links and traits from ``calls`` in file order.

    ``first_named`` gives, for ids a call might link, the first row where a message names
    the id as its ``userId`` (ids never named that way may be left out).
    """
    links: dict[str, str] = {}
    traits: dict[str, dict[str, Any]] = {}
    linked: list[bool] = []
    ordered = tuple(sorted(calls, key=lambda c: c.row))
    for call in ordered:
        visitor = call.visitor
        link = (
            call.named
            and visitor is not None
            and visitor != call.lead_id
            and visitor not in links
            and first_named.get(visitor, math.inf) > call.row
        )
        merged = traits.setdefault(call.lead_id, {})
        if link:
            assert visitor is not None
            links[visitor] = call.lead_id
            merged.update(traits.pop(visitor, {}))
        for key, value in call.traits.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        linked.append(bool(link))
    return Stitching(ordered, links, {lead: t for lead, t in traits.items() if t}, tuple(linked))
