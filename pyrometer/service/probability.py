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
from pyrometer.service.event_cache import (
    BEHIND,
    HELD,
    NOT_HELD,
    STALE,
    Found,
    LeadEventCache,
)
from pyrometer.service.runtime import Service, on_commit
from pyrometer.service.scoring import probability_temperature
from pyrometer.store import models as store
from pyrometer.store import repo
from pyrometer.store.records import Change, LeadRecord
from pyrometer.store.tables import leads

if TYPE_CHECKING:
    import numpy as np

    from pyrometer.predictive.artifact import PredictiveModel
    from pyrometer.predictive.event_state import Chunk, EventCounter, States
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
        found, counted = _event_features(conn, model, scorer, counter, changes, gathered, now_us)
        made = _probabilities(scorer, changes, gathered, found)
        if made is not None:
            probabilities, rows = made
            _keep(service.event_cache, conn, scorer, changes, gathered, counted, rows)
            return list(probabilities)
    pairs = [(c.record.lead_id, dict(c.record.attributes)) for c in changes]
    return stored_probabilities(conn, model, pairs, now_us)


class _Gathered(NamedTuple):
    """Where each changed lead's event features come from (:func:`_gather_events`), by
    its position among the changes."""

    carried: list[int]
    """Held: carried forward with this write's events."""
    held: Found
    """What the cache holds of the changed leads (the carried ones among them)."""
    held_index: list[int]
    """Each carried lead's place among the held ones."""
    added: list[Chunk]
    """This write's events of each carried lead, coded."""
    begun: list[int]
    """Counted from all its events: a new lead's (all this write's), or read back."""
    events: list[Chunk]
    """All the events of each begun lead, coded."""
    to_sum: list[int]
    """Counted from the database's sums: nothing added, or written elsewhere too."""
    markers: list[int]
    """Held as a marker from now: written by another process too."""
    seq: int
    """The highest event ``seq`` this write sees: every event of the leads it keeps is at
    or below it."""


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
    cannot read (the general path names it).

    A lead this write added events to is not counted from the sums, which would leave it
    unheld (a marker) and send its next write to the sums again, for as long as another
    process kept writing it between this one's writes: it is carried if held, caught up
    if held behind, else its events are read and it is held from now."""
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
    records = [c.record for c in changes]
    spans = [slices.get(r.lead_id, (0, 0)) for r in records]
    held = cache.get_many(
        scorer,
        [r.lead_id for r in records],
        [r.created_us for r in records],
        [
            r.state.event_count - (end - start)
            for r, (start, end) in zip(records, spans, strict=True)
        ],
    )
    # A lead held as of a later moment than this write's clock is counted afresh.
    later = iter((held.states.at > now_us).tolist() if held.states is not None else ())
    out = _Gathered([], held, [], [], [], [], [], [], store.last_event_seq(conn))
    to_read: list[int] = []  # events added, not held: read its events, keep them
    behind: list[tuple[int, int]] = []  # held with fewer events: read the rest
    k = -1  # the place among the held leads
    for i, (record, (start, end), status) in enumerate(
        zip(records, spans, held.status, strict=True)
    ):
        if status in (HELD, BEHIND):
            k += 1
            if next(later):  # held as of a later moment than this write's clock
                (to_read if end > start else out.to_sum).append(i)
                continue
        if status == BEHIND:  # another process added events since: read those
            behind.append((i, k))
        elif status == HELD:
            out.carried.append(i)
            out.held_index.append(k)
            out.added.append((new_kinds[start:end], new_times[start:end]))
        elif status == STALE and end == start:  # nothing to hold it with: the sums
            out.to_sum.append(i)
            out.markers.append(i)  # (the entry held is not as stored any more)
        elif status == NOT_HELD and record.state.event_count == end - start:
            out.begun.append(i)  # new: all its events are this write's
            out.events.append((new_kinds[start:end], new_times[start:end]))
        else:
            # Not held; a marker; an entry another process passed since it was made (a
            # marker then): read the lead's events if this write added some, else the
            # sums will do.
            (to_read if end > start else out.to_sum).append(i)
    # Too far behind to read the log since (it would cost more than the lead's events).
    far = [i for i, k in behind if out.seq - held.seqs[k] > MAX_BEHIND]
    behind = [(i, k) for i, k in behind if out.seq - held.seqs[k] <= MAX_BEHIND]
    for i in far:
        start, end = spans[i]
        (to_read if end > start else out.to_sum).append(i)
    if behind and not _read_behind(conn, scorer, records, behind, out):
        return None
    if to_read:
        events: dict[str, list[tuple[str, int]]] = {records[i].lead_id: [] for i in to_read}
        for lead_id, name, ts in store.lead_event_rows(conn, list(events)):
            events[lead_id].append((name, ts))
        for i in to_read:
            made = scorer.encode_events(events[records[i].lead_id])
            if made is None:
                return None
            out.begun.append(i)
            out.events.append(made)
    return out


MAX_BEHIND = 4_000
"""Events stored since a lead's entry was made beyond which its events are read again
instead of caught up: the catch-up reads every event stored since the oldest entry it
catches up (a range of the events' primary key, about 0.7 ms a thousand on SQLite);
``serve``'s scoring processes leave a lead they both write a batch or two behind (more
for the second, which takes groups only while the first is busy)."""


def _read_behind(
    conn: Connection,
    scorer: RowScorer,
    records: list[LeadRecord],
    behind: list[tuple[int, int]],
    out: _Gathered,
) -> bool:
    """Leads held with fewer events than they have (another process, ``serve``'s other
    scoring process most often, wrote them since): the events stored after the ``seq``
    their entry was made at, this write's own among them. If they are exactly as many
    as are missing they are the missing ones (every event held is at or below that
    ``seq``), and the lead is carried with them; if not (a write that took its ``seq``
    earlier committed later), it is counted from the database's sums and held as a
    marker. ``False``: an event time the row scorer cannot read."""
    held = out.held
    floor = min(held.seqs[k] for _, k in behind)
    rows = store.lead_events_after(conn, [records[i].lead_id for i, _ in behind], floor)
    by_lead: dict[str, list[tuple[str, int, int]]] = {}
    for lead_id, name, ts, seq in rows:
        by_lead.setdefault(lead_id, []).append((name, ts, seq))
    for i, k in behind:
        mark = held.seqs[k]
        after = [(name, ts) for name, ts, seq in by_lead.get(records[i].lead_id, ()) if seq > mark]
        if held.counts[k] + len(after) != records[i].state.event_count:
            out.to_sum.append(i)
            out.markers.append(i)
            continue
        made = scorer.encode_events(after)
        if made is None:
            return False
        out.carried.append(i)
        out.held_index.append(k)
        out.added.append(made)
    return True


class _Counted(NamedTuple):
    """The leads whose features were counted here (carried or begun), by position among
    the changes, with their new states and their stamps' counts."""

    positions: list[int]
    states: States
    counts: list[int]


def _event_features(
    conn: Connection,
    model: PredictiveModel,
    scorer: RowScorer,
    counter: EventCounter,
    changes: list[Change],
    gathered: _Gathered,
    now_us: int,
) -> tuple[np.ndarray, _Counted]:
    """The event features of each changed lead, a row each in the changes' order, and
    the new states of the leads counted here (carried, or from all their events); the
    leads in ``to_sum`` from the database's sums."""
    import numpy as np

    from pyrometer.predictive.event_state import States
    from pyrometer.service.models import event_sums_by_lead

    parts: list[tuple[list[int], np.ndarray]] = []
    states: list[States] = []
    counts: list[int] = []
    if gathered.carried:
        held = gathered.held.states
        assert held is not None
        if gathered.held_index != list(range(held.leads)):
            held = held.take(gathered.held_index)
        found, carried = counter.advance(held, gathered.added, now_us)
        parts.append((gathered.carried, found))
        states.append(carried)
        counts.extend(changes[i].record.state.event_count for i in gathered.carried)
    if gathered.begun:
        events = gathered.events
        found, begun = counter.start(
            [len(t) for _, t in events],
            np.concatenate([k for k, _ in events]),
            np.concatenate([t for _, t in events]),
            now_us,
        )
        parts.append((gathered.begun, found))
        states.append(begun)
        counts.extend(len(t) for _, t in events)
    if gathered.to_sum:
        ids = [changes[i].record.lead_id for i in gathered.to_sum]
        sums = event_sums_by_lead(conn, model, scorer, ids, now_us)
        parts.append((gathered.to_sum, scorer.event_matrix_of_sums([sums[i] for i in ids], now_us)))
    counted = _Counted(
        gathered.carried + gathered.begun,
        States.join(states) if states else States.empty(counter.width),
        counts,
    )
    if len(parts) == 1 and parts[0][0] == list(range(len(changes))):
        return parts[0][1], counted  # all from one source, already in order
    found = np.empty((len(changes), counter.width))
    for at, rows in parts:
        found[at] = rows
    return found, counted


class _Rows(NamedTuple):
    """Each changed lead's attribute row, and the attributes it was made from."""

    rows: np.ndarray
    made_from: list[Mapping[str, Any]]


def _probabilities(
    scorer: RowScorer, changes: list[Change], gathered: _Gathered, found: np.ndarray
) -> tuple[list[float], _Rows | None] | None:
    """The probabilities from the leads' attributes and event features, and (when the
    model's attribute rows may be kept, :attr:`RowScorer.keeps_attribute_rows`) each
    lead's attribute row. A carried lead's row is the cache's while its attributes are
    the ones the row was made from; the others are made here (from a copy of the
    attributes, which the cache keeps with the row)."""
    import numpy as np

    if not scorer.keeps_attribute_rows:
        made = scorer.probabilities_of_features([c.record.attributes for c in changes], found)
        return None if made is None else (made, None)
    X = np.empty((len(changes), scorer.width))
    held = gathered.held
    reused: list[int] = []
    from_cache: list[int] = []
    made_from: list[Any] = [None] * len(changes)
    if held.rows is not None:
        for i, k in zip(gathered.carried, gathered.held_index, strict=True):
            if held.attributes[k] == changes[i].record.attributes:
                reused.append(i)
                from_cache.append(k)
                made_from[i] = held.attributes[k]
    if reused:
        assert held.rows is not None
        X[reused] = held.rows[from_cache]
    if len(reused) < len(changes):
        again = set(reused)
        stale = [i for i in range(len(changes)) if i not in again]
        made_rows = scorer.attribute_rows([changes[i].record.attributes for i in stale])
        if made_rows is None:
            return None
        X[stale] = made_rows
        for i in stale:
            made_from[i] = dict(changes[i].record.attributes)
    probabilities = scorer.probabilities_of_features(X, found)
    return None if probabilities is None else (probabilities, _Rows(X, made_from))


def _keep(
    cache: LeadEventCache,
    conn: Connection,
    scorer: RowScorer,
    changes: list[Change],
    gathered: _Gathered,
    counted: _Counted,
    rows: _Rows | None,
) -> None:
    """Once the write commits, hold the leads counted here that are all their events as
    their records count them, with their attribute rows; and the markers."""
    records = [c.record for c in changes]
    whole = [
        k
        for k, (i, count) in enumerate(zip(counted.positions, counted.counts, strict=True))
        if count == records[i].state.event_count
    ]
    at = [counted.positions[k] for k in whole]
    ids = [records[i].lead_id for i in at]
    created = [records[i].created_us for i in at]
    counts = [counted.counts[k] for k in whole]
    states = counted.states.take(whole) if len(whole) < counted.states.leads else counted.states
    kept_rows = rows.rows[at] if rows is not None else None
    attributes = [rows.made_from[i] for i in at] if rows is not None else None
    marked = gathered.markers
    marker_ids = [records[i].lead_id for i in marked]
    marker_created = [records[i].created_us for i in marked]
    marker_counts = [records[i].state.event_count for i in marked]
    seq = gathered.seq

    def publish() -> None:
        cache.put(scorer, ids, created, counts, states, attributes, kept_rows, seq)
        cache.put(scorer, marker_ids, marker_created, marker_counts, None)

    on_commit(conn, publish)
