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
from typing import TYPE_CHECKING, Any, NamedTuple

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
    from pyrometer.predictive.event_state import Chunk, EventCounter
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

    A lead's event features are carried from its last write here
    (:attr:`Service.event_cache`, :mod:`pyrometer.predictive.event_state`) with this
    write's ``added`` events counted in. A lead the cache does not hold as it is stored:
    if this write added events to it, its events are read from the store and counted,
    and kept (a lead that gets events tends to get more; a new lead's events are all in
    ``added``); if not (a rescore, a decay wake-up, new attributes), the database adds
    them up for it (:func:`pyrometer.store.models.lead_event_sums`) and nothing is kept,
    so a sweep over many leads does not fill the cache. Entries are published once the
    write commits. A model the row scorer cannot read, or a lead it cannot, goes through
    :func:`pyrometer.service.models.stored_probabilities`."""
    from pyrometer.service.models import FAST_ROWS, _row_scorer, stored_probabilities

    scorer = _row_scorer(model) if model.events is not None else None
    counter = scorer.event_counter if scorer is not None else None
    gathered = None
    if scorer is not None and counter is not None and len(changes) <= FAST_ROWS:
        gathered = _gather_events(service.event_cache, conn, scorer, changes, added, now_us)
    if gathered is not None:
        assert scorer is not None and counter is not None
        found, coded = _event_features(conn, model, scorer, counter, changes, gathered, now_us)
        probabilities = _probabilities(scorer, changes, coded, found)
        if probabilities is not None:
            # Kept: an entry that is all the lead's events as its record counts them.
            kept = {
                c.record.lead_id: coded[c.record.lead_id]
                for c in changes
                if c.record.lead_id in coded
                and coded[c.record.lead_id].count == c.record.state.event_count
            }
            kept.update(gathered.markers)
            cache = service.event_cache
            on_commit(conn, lambda: cache.put(scorer, kept))
            return list(probabilities)
    pairs = [(c.record.lead_id, dict(c.record.attributes)) for c in changes]
    return stored_probabilities(conn, model, pairs, now_us)


class _Gathered(NamedTuple):
    """Where each changed lead's event features come from (:func:`_gather_events`)."""

    carried: dict[str, tuple[Coded, Chunk]]
    """Held, with the events this write added to it (coded)."""
    begun: dict[str, Chunk]
    """All its events, coded: a new lead's (all this write's), or read from the store."""
    to_sum: list[str]
    """Counted from the database's sums: nothing added, or written elsewhere too."""
    markers: dict[str, Coded]
    """Held without events from now: written by another process too."""


def _gather_events(
    cache: LeadEventCache,
    conn: Connection,
    scorer: RowScorer,
    changes: list[Change],
    added: Mapping[str, Sequence[tuple[str, int]]],
    now_us: int,
) -> _Gathered | None:
    """Each changed lead's source of event features: held and carried, counted from all
    its events, or from the database's sums. ``None``: an event time the row scorer
    cannot read (the general path names it)."""
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
    out = _Gathered({}, {}, [], {})
    to_read: list[str] = []  # events added, not held: read its events, keep them
    for change, (start, end), entry in zip(changes, spans, held, strict=True):
        record = change.record
        lead_id, count = record.lead_id, record.state.event_count
        if isinstance(entry, str):  # STALE: another process wrote it since
            out.to_sum.append(lead_id)
            out.markers[lead_id] = Coded(record.created_us, count, None, None)
        elif entry is not None and entry.events is not None and entry.events.at_us <= now_us:
            chunk = (new_kinds[start:end], new_times[start:end])
            out.carried[lead_id] = (entry, chunk)
        elif entry is None and count == end - start:  # new: all its events are this write's
            out.begun[lead_id] = (new_kinds[start:end], new_times[start:end])
        else:
            # Not held; or a marker nobody passed since it was set (nobody else wrote the
            # lead meanwhile); or held as of a later moment than this write's clock: read
            # the lead's events again if this write added some, else the sums will do.
            (to_read if end > start else out.to_sum).append(lead_id)
    if to_read:
        events: dict[str, list[tuple[str, int]]] = {lead_id: [] for lead_id in to_read}
        for lead_id, name, ts in store.lead_event_rows(conn, to_read):
            events[lead_id].append((name, ts))
        for lead_id, lead_events in events.items():
            made = scorer.encode_events(lead_events)
            if made is None:
                return None
            out.begun[lead_id] = made
    return out


def _event_features(
    conn: Connection,
    model: PredictiveModel,
    scorer: RowScorer,
    counter: EventCounter,
    changes: list[Change],
    gathered: _Gathered,
    now_us: int,
) -> tuple[np.ndarray, dict[str, Coded]]:
    """The event features of each changed lead, a row each in the changes' order, and
    the entries of the leads counted here (carried, or from all their events) as of
    this write; the leads in ``to_sum`` from the database's sums."""
    import numpy as np

    from pyrometer.service.models import event_sums_by_lead

    row_of = {c.record.lead_id: i for i, c in enumerate(changes)}
    record_of = {c.record.lead_id: c.record for c in changes}
    parts: list[tuple[list[int], np.ndarray]] = []
    coded: dict[str, Coded] = {}
    if gathered.carried:
        ids = list(gathered.carried)
        pairs = [gathered.carried[i] for i in ids]
        found, states = counter.advance([e.events for e, _ in pairs], [c for _, c in pairs], now_us)  # type: ignore[misc]
        for lead_id, (entry, _), state in zip(ids, pairs, states, strict=True):
            coded[lead_id] = entry._replace(
                count=record_of[lead_id].state.event_count, events=state
            )
        parts.append(([row_of[i] for i in ids], found))
    if gathered.begun:
        ids = list(gathered.begun)
        chunks = [gathered.begun[i] for i in ids]
        found, states = counter.start(
            [len(t) for _, t in chunks],
            np.concatenate([k for k, _ in chunks]),
            np.concatenate([t for _, t in chunks]),
            now_us,
        )
        for lead_id, (_, times), state in zip(ids, chunks, states, strict=True):
            coded[lead_id] = Coded(record_of[lead_id].created_us, len(times), state)
        parts.append(([row_of[i] for i in ids], found))
    if gathered.to_sum:
        sums = event_sums_by_lead(conn, model, scorer, gathered.to_sum, now_us)
        summed = [i for i, c in enumerate(changes) if c.record.lead_id in sums]
        of_each = [sums[changes[i].record.lead_id] for i in summed]
        parts.append((summed, scorer.event_matrix_of_sums(of_each, now_us)))
    if len(parts) == 1 and parts[0][0] == list(range(len(changes))):
        return parts[0][1], coded  # all from one source, already in order
    found = np.empty((len(changes), counter.width))
    for at, rows in parts:
        found[at] = rows
    return found, coded


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
