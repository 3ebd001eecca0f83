"""A lead's temperature from its probability: ``temperature.probability`` in the service.

With probability bands in the playbook and a model active, a lead's temperature is the
band of its ``p_convert`` (as in ``pyrometer score --model``), not its points': every
write path that stores changed leads (ingest, attribute changes, the decay scheduler,
merges, rescoring after a publish) passes them through :func:`probability_temperatures`
in its transaction, so the stored temperature, routing and webhooks follow the
probability. Without bands or without an active model nothing changes and nothing of the
predictive stack is loaded. The decision itself is
:func:`pyrometer.service.scoring.probability_temperature`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.classify import temperature_of_probability
from pyrometer.core.playbook import Playbook
from pyrometer.service.runtime import Service
from pyrometer.service.scoring import probability_temperature
from pyrometer.store import models as store
from pyrometer.store import repo
from pyrometer.store.records import Change
from pyrometer.store.tables import leads


def bands_in_force(conn: Connection, book: Playbook) -> bool:
    """Whether leads take their temperature from ``p_convert``: the playbook has
    ``temperature.probability`` bands and a model is active."""
    return book.temperature.probability is not None and store.active_version(conn) is not None


def each_probability(
    model: Any,
    items: list[tuple[str, dict[str, Any]]],
    log: list[tuple[str, str, int]],
    now_us: int,
) -> list[float | None]:
    """The probabilities of all at once; if one cannot be read (a mistyped feature
    column), each alone, ``None`` for those that fail."""
    from pyrometer.service.models import probabilities

    try:
        return list(probabilities(model, items, log, now_us))
    except ValueError:
        out: list[float | None] = []
        for item in items:
            try:
                out.append(probabilities(model, [item], log, now_us)[0])
            except ValueError:
                out.append(None)
        return out


def probability_temperatures(
    service: Service, conn: Connection, book: Playbook, changes: list[Change], now_us: int
) -> list[Change]:
    """The changes a write path is about to store, with each lead's temperature from the
    band of its ``p_convert`` when :func:`bands_in_force` (else as they are).

    In the write's own transaction: the leads' events (the new ones included) are read,
    all leads' probabilities computed in one vectorised call (no reasons: those cost
    most and only a read needs them) and cached with the rows' new ``updated_us``, so the
    sweep and the list's sort and filter find them current; a read adds the reasons. A
    lead the model cannot read keeps its points' temperature, as in ``pyrometer score
    --model``.
    """
    bands = book.temperature.probability
    if bands is None or not changes:
        return changes
    from pyrometer.service.models import _active_model, stored_probabilities

    held = _active_model(service, conn)
    if held is None:
        return changes
    version, model = held
    ids = [c.record.lead_id for c in changes]
    stored: dict[str, str] = {}
    for chunk in repo.chunks(sorted(set(ids))):
        query = sa.select(leads.c.lead_id, leads.c.temperature).where(leads.c.lead_id.in_(chunk))
        stored.update((row.lead_id, row.temperature) for row in conn.execute(query))
    scored = stored_probabilities(
        conn, model, [(c.record.lead_id, dict(c.record.attributes)) for c in changes], now_us
    )
    out: list[Change] = []
    saved: list[tuple[str, int, float, list[dict[str, Any]] | None]] = []
    for change, p in zip(changes, scored, strict=True):
        if p is None:
            out.append(change)
            continue
        record = change.record
        # A lead not stored yet starts from its points' first class.
        first = next((t.old for t in change.transitions if t.kind == "temperature"), None)
        before = stored.get(record.lead_id) or first or record.temperature
        banded = str(temperature_of_probability(bands, p))
        out.append(probability_temperature(change, before, banded, now_us))
        # Cached without reasons (a read computes those): the sweep and the list's
        # sort and filter by p_convert see the lead as it now is.
        saved.append((record.lead_id, int(record.updated_us), p, None))
    store.save_predictions(conn, version, now_us, saved)
    return out
