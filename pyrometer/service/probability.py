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

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.classify import temperature_of_probability
from pyrometer.core.playbook import Playbook
from pyrometer.service.event_cache import Coded, LeadEventCache
from pyrometer.service.runtime import Service, on_commit
from pyrometer.service.scoring import probability_temperature
from pyrometer.store import models as store
from pyrometer.store import repo
from pyrometer.store.records import Change
from pyrometer.store.tables import leads

if TYPE_CHECKING:
    import numpy as np

    from pyrometer.predictive.artifact import PredictiveModel
    from pyrometer.predictive.fast_score import RowScorer


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
    service: Service,
    conn: Connection,
    book: Playbook,
    changes: list[Change],
    now_us: int,
    *,
    added: Mapping[str, Sequence[tuple[str, int]]] | None = None,
    before: Mapping[str, str] | None = None,
) -> list[Change]:
    """The changes a write path is about to store, with each lead's temperature from the
    band of its ``p_convert`` when :func:`bands_in_force` (else as they are).

    In the write's own transaction: all leads' probabilities computed in one vectorised
    call (no reasons: those cost most and only a read needs them) from their attributes
    and events (:func:`_write_probabilities`), and cached with the rows' new
    ``updated_us``, so the sweep and the list's sort and filter find them current; a read
    adds the reasons. A lead the model cannot read keeps its points' temperature, as in
    ``pyrometer score --model``.

    ``added``: the ``(name, ts_us)`` of the events this write stored, by lead (it saves
    reading the leads' histories again); ``before``: the temperature of each lead as
    the store had it before this write (absent: not stored yet), else read here.
    """
    bands = book.temperature.probability
    if bands is None or not changes:
        return changes
    from pyrometer.service.models import _active_model

    held = _active_model(service, conn)
    if held is None:
        return changes
    version, model = held
    if before is None:
        ids = sorted({c.record.lead_id for c in changes})
        stored: dict[str, str] = {}
        for chunk in repo.chunks(ids):
            query = sa.select(leads.c.lead_id, leads.c.temperature).where(
                leads.c.lead_id.in_(chunk)
            )
            stored.update((row.lead_id, row.temperature) for row in conn.execute(query))
        before = stored
    scored = _write_probabilities(service, conn, model, changes, added or {}, now_us)
    out: list[Change] = []
    saved: list[tuple[str, int, float, list[dict[str, Any]] | None]] = []
    for change, p in zip(changes, scored, strict=True):
        if p is None:
            out.append(change)
            continue
        record = change.record
        was = before.get(record.lead_id)
        if not was:  # a lead not stored yet starts from its points' first class
            first = (t.old for t in change.transitions if t.kind == "temperature")
            was = next(first, None) or record.temperature
        banded = str(temperature_of_probability(bands, p))
        out.append(probability_temperature(change, was, banded, now_us))
        # Cached without reasons (a read computes those): the sweep and the list's
        # sort and filter by p_convert see the lead as it now is.
        saved.append((record.lead_id, int(record.updated_us), p, None))
    store.save_predictions(conn, version, now_us, saved)
    return out


def _write_probabilities(
    service: Service,
    conn: Connection,
    model: PredictiveModel,
    changes: list[Change],
    added: Mapping[str, Sequence[tuple[str, int]]],
    now_us: int,
) -> list[float | None]:
    """The probabilities of the changed leads from their attributes and events.

    A lead's events come from :attr:`Service.event_cache` with this write's ``added``
    appended. A lead the cache does not hold as it is stored: if this write added events
    to it, its events are read from the store and kept (a lead that gets events tends to
    get more; a new lead's events are all in ``added``); if not (a rescore, a decay
    wake-up, new attributes), the database adds them up for it
    (:func:`pyrometer.store.models.lead_event_sums`) and nothing is kept, so a sweep
    over many leads does not fill the cache. Entries are published once the write
    commits. A model the row scorer cannot read, or a lead it cannot, goes through
    :func:`pyrometer.service.models.stored_probabilities`."""
    from pyrometer.service.models import FAST_ROWS, _row_scorer, stored_probabilities

    scorer = _row_scorer(model) if model.events is not None else None
    gathered = None
    if scorer is not None and len(changes) <= FAST_ROWS:
        gathered = _gather_events(service.event_cache, conn, scorer, changes, added)
    if gathered is not None:
        assert scorer is not None
        coded, to_sum, markers = gathered
        found = _event_features(conn, model, scorer, changes, coded, to_sum, now_us)
        probabilities = _probabilities(scorer, changes, coded, found)
        if probabilities is not None:
            # Kept: an entry that is all the lead's events as its record counts them.
            kept = {
                c.record.lead_id: coded[c.record.lead_id]
                for c in changes
                if c.record.lead_id in coded
                and coded[c.record.lead_id].count == c.record.state.event_count
            }
            kept.update(markers)
            cache = service.event_cache
            on_commit(conn, lambda: cache.put(scorer, kept))
            return list(probabilities)
    pairs = [(c.record.lead_id, dict(c.record.attributes)) for c in changes]
    return stored_probabilities(conn, model, pairs, now_us)


def _gather_events(
    cache: LeadEventCache,
    conn: Connection,
    scorer: RowScorer,
    changes: list[Change],
    added: Mapping[str, Sequence[tuple[str, int]]],
) -> tuple[dict[str, Coded], list[str], dict[str, Coded]] | None:
    """Each changed lead's coded events: held, with this write's appended, or read from
    the store; the leads to count from the database's sums instead; and the markers to
    hold for leads another process writes too. ``None``: an event time the row scorer
    cannot read (the general path names it)."""
    import numpy as np

    # This write's events, coded at once; each lead's slice of them by its position.
    new_codes = scorer.encode_events(
        [(name, ts) for lead_events in added.values() for name, ts in lead_events]
    )
    if new_codes is None:
        return None
    new_kinds, new_times = new_codes
    slices: dict[str, tuple[int, int]] = {}
    at = 0
    for lead_id, lead_events in added.items():
        slices[lead_id] = (at, at + len(lead_events))
        at += len(lead_events)
    spans = [slices.get(c.record.lead_id, (0, 0)) for c in changes]
    held = cache.get_many(
        scorer,
        (
            (c.record.lead_id, c.record.created_us, c.record.state.event_count - (end - start))
            for c, (start, end) in zip(changes, spans, strict=True)
        ),
    )
    coded: dict[str, Coded] = {}
    to_read: list[str] = []  # events added, not held: read its events, keep them
    to_sum: list[str] = []  # nothing added, or written elsewhere too: the sums
    markers: dict[str, Coded] = {}  # written elsewhere too: held without events
    for change, (start, end), entry in zip(changes, spans, held, strict=True):
        record = change.record
        lead_id, count = record.lead_id, record.state.event_count
        if isinstance(entry, str):  # STALE: another process wrote it since
            to_sum.append(lead_id)
            markers[lead_id] = Coded(record.created_us, count, None, None)
        elif entry is not None and entry.is_marker:
            # Nobody passed the marker since it was set: read the lead's events again
            # (with events to add; else the sums will do, and the marker stays).
            (to_read if end > start else to_sum).append(lead_id)
        elif entry is not None and end == start:
            coded[lead_id] = entry
        elif entry is not None:  # held: append this write's events
            coded[lead_id] = Coded(
                record.created_us,
                count,
                np.concatenate((entry.kinds, new_kinds[start:end])),
                np.concatenate((entry.times, new_times[start:end])),
                entry.attributes,
                entry.row,
            )
        elif count == end - start:  # a new lead: all its events are this write's
            kinds, times = new_kinds[start:end].copy(), new_times[start:end].copy()
            coded[lead_id] = Coded(record.created_us, count, kinds, times)
        else:
            (to_read if end > start else to_sum).append(lead_id)
    if to_read:
        events: dict[str, list[tuple[str, int]]] = {lead_id: [] for lead_id in to_read}
        for lead_id, name, ts in store.lead_event_rows(conn, to_read):
            events[lead_id].append((name, ts))
        created = {c.record.lead_id: c.record.created_us for c in changes}
        for lead_id, lead_events in events.items():
            made = scorer.encode_events(lead_events)
            if made is None:
                return None
            coded[lead_id] = Coded(created[lead_id], len(lead_events), *made)
    return coded, to_sum, markers


def _event_features(
    conn: Connection,
    model: PredictiveModel,
    scorer: RowScorer,
    changes: list[Change],
    coded: Mapping[str, Coded],
    to_sum: list[str],
    now_us: int,
) -> np.ndarray:
    """The event features of each changed lead, a row each in the changes' order: from
    its coded events, or from the database's sums for the leads in ``to_sum``."""
    import numpy as np

    from pyrometer.service.models import event_sums_by_lead

    parts: list[tuple[list[int], np.ndarray]] = []
    with_codes = [i for i, c in enumerate(changes) if c.record.lead_id in coded]
    if with_codes:
        entries = [coded[changes[i].record.lead_id] for i in with_codes]
        lengths = [len(e.times) for e in entries]
        kinds = np.concatenate([e.kinds for e in entries])
        times = np.concatenate([e.times for e in entries])
        parts.append((with_codes, scorer.event_matrix_of_codes(lengths, kinds, times, now_us)))
    if to_sum:
        sums = event_sums_by_lead(conn, model, scorer, to_sum, now_us)
        summed = [i for i, c in enumerate(changes) if c.record.lead_id in sums]
        of_each = [sums[changes[i].record.lead_id] for i in summed]
        parts.append((summed, scorer.event_matrix_of_sums(of_each, now_us)))
    if len(parts) == 1 and len(parts[0][0]) == len(changes):
        return parts[0][1]  # all from one source, already in order
    found = np.empty((len(changes), parts[0][1].shape[1]))
    for at, rows in parts:
        found[at] = rows
    return found


def _probabilities(
    scorer: RowScorer, changes: list[Change], coded: dict[str, Coded], found: np.ndarray
) -> list[float] | None:
    """The probabilities from the leads' attributes and event features. A lead's
    attribute columns are kept in its entry of ``coded`` and made again only when its
    attributes changed (unless the model reads event columns as values)."""
    import numpy as np

    if not scorer.keeps_attribute_rows:
        return scorer.probabilities_of_features([c.record.attributes for c in changes], found)
    rows: list[Any] = [None] * len(changes)
    stale: list[int] = []
    for i, change in enumerate(changes):
        entry = coded.get(change.record.lead_id)
        if entry is None or entry.row is None or entry.attributes != change.record.attributes:
            stale.append(i)
        else:
            rows[i] = entry.row
    made = scorer.attribute_rows([changes[i].record.attributes for i in stale])
    if made is None:
        return None
    for i, row in zip(stale, made, strict=True):
        rows[i] = row
        record = changes[i].record
        entry = coded.get(record.lead_id)
        if entry is not None:
            renewed = entry._replace(attributes=dict(record.attributes), row=row.copy())
            coded[record.lead_id] = renewed
    return scorer.probabilities_of_features(np.vstack(rows), found)
