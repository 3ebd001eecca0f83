"""Ingest: a request's messages stored and scored in one transaction, or not at all.

Per transaction: resolve who each message is about, create and lock those leads (in id
order), apply identify calls (link the visitor, move its events, merge traits), append
the events (a known message id is a no-op), score the new ones into each lead's state in
O(1) each, then store states and transitions (the ledger is derived from the event log
when a lead is read). A lead whose events changed
owner, or that was scored under an older playbook, is replayed from its log instead.
"""

from __future__ import annotations

import time
import weakref
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from pyrometer.core.incremental import LeadState, WindowsSealed
from pyrometer.core.model import Event
from pyrometer.core.playbook import Playbook
from pyrometer.service import actions, nurture, touches
from pyrometer.service.inputs import Identify, IngestResult, Refusal, Track
from pyrometer.service.probability import bands_in_force, probability_temperatures
from pyrometer.service.runtime import Retry, Service
from pyrometer.service.scoring import (
    Change,
    LeadRecord,
    apply_events,
    blank_record,
    fold,
    replay,
    set_attributes,
)
from pyrometer.service.windows import restore_for
from pyrometer.store import identity as identity_store
from pyrometer.store import repo
from pyrometer.store.engine import is_postgres

if TYPE_CHECKING:  # the pool imports this module in its processes
    from pyrometer.service.scoring_pool import ScoringPool

# Groups at least this large are scored before their write transaction; for smaller ones
# the extra read costs more than the time it saves under the locks.
SCORE_AHEAD_MIN = 64
_COLUMN_TRAITS = {"source": ("source", "lead_source"), "owner": ("owner", "lead_owner")}
_CONSENT_TRAITS = ("consent", "marketing_consent", "opt_in")


def ingest(
    service: Service, tracks: Sequence[Track], identifies: Sequence[Identify]
) -> IngestResult:
    """Store and score messages; all of them or, on any error, none."""
    return ingest_many(service, [(tracks, identifies)])[0]


Part = tuple[Sequence[Track], Sequence[Identify]]


def ingest_many(service: Service, parts: Sequence[Part]) -> list[IngestResult]:
    """Several requests' messages in one transaction, with each request's own counts.

    A message id sent twice counts for the first request that carries it. An identify
    or alias that would merge two known leads is refused on its own: the request's other
    messages are stored, and its result lists the refusal.
    """
    tracks = [track for part_tracks, _ in parts for track in part_tracks]
    identifies = [ident for _, part_identifies in parts for ident in part_identifies]
    stored = _store(service, tracks, identifies) if tracks or identifies else Stored(set())
    results = []
    claimed: set[str] = set()
    applied: set[str] = set()
    for part_tracks, part_identifies in parts:
        mine = 0
        for track in part_tracks:
            if track.message_id in stored.events and track.message_id not in claimed:
                claimed.add(track.message_id)
                mine += 1
        refused: list[Refusal] = []
        for ident in part_identifies:
            refusal = stored.refused.get(ident.message_id)
            if refusal is not None:
                refused.append(refusal)
            elif ident.message_id in stored.identifies and ident.message_id not in applied:
                applied.add(ident.message_id)
                mine += 1
        size = len(part_tracks) + len(part_identifies)
        results.append(IngestResult(mine, size - mine - len(refused), tuple(refused)))
    return results


@dataclass(frozen=True, slots=True)
class Stored:
    """What one transaction stored: the ids of the new events and of the identify and
    alias calls applied, and the calls refused (by message id)."""

    events: set[str]
    identifies: set[str] = field(default_factory=set)
    refused: dict[str, Refusal] = field(default_factory=dict)


def _store(service: Service, tracks: Sequence[Track], identifies: Sequence[Identify]) -> Stored:
    if len(tracks) >= SCORE_AHEAD_MIN and not identifies and all(t.user_id for t in tracks):
        pool: ScoringPool | None = service.scoring_pool
        if pool is not None:  # the whole group, to a scoring process of its own
            return Stored(pool.store(tracks, service.clock()))
        return Stored(store_ahead(service, tracks, service.clock()))
    return service.write(lambda conn: _ingest(service, conn, tracks, identifies))


def store_ahead(service: Service, tracks: Sequence[Track], now: int) -> set[str]:
    """Tracks that all name their lead by ``userId``: scored ahead of their write
    transaction (:func:`_store_scored_ahead`), else by the general path. Returns the ids
    of the events that were new. This is what a scoring process runs for a group.

    While probability bands are in force (seen in the last second) the general path is
    taken at once: scoring ahead would only read that they are and fall back."""
    seen = _BANDS_SEEN.get(service)
    if seen is None or time.monotonic() - seen > BANDS_RECHECK_SECONDS:
        try:
            return _store_scored_ahead(service, tracks, now)
        except _Fallback:  # nothing of it was committed: take the general path
            pass
    return service.write(lambda conn: _ingest(service, conn, tracks, (), now)).events


# When each service last found probability bands in force on the scored-ahead path.
# Only a hint: the general path decides for itself, so a stale one costs nothing wrong.
_BANDS_SEEN: weakref.WeakKeyDictionary[Service, float] = weakref.WeakKeyDictionary()
BANDS_RECHECK_SECONDS = 1.0


class _Fallback(Exception):
    """The scored-ahead path met what only the general path handles (a lead to replay
    under another playbook version, a lead merged away meanwhile)."""


EventRow = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ScoredAhead:
    """Leads scored from their committed rows, before the write."""

    version: int  # the playbook version scored under
    seen: dict[str, repo.RawLead]  # the rows scored from (a lead not there was new)
    rows: dict[str, repo.LeadRow]  # each lead's row as scored (not all: see _score_ahead)
    transitions: dict[str, list[repo.TransitionRow]]
    records: dict[str, LeadRecord]  # the record each row was made from


def _score_ahead(service: Service, rows: Sequence[EventRow], now: int) -> ScoredAhead | None:
    """Score events (all new, as far as anyone knows yet) into their leads' committed
    rows, outside any write transaction; ``None``: only the general path can do it."""
    by_lead = _events_by_lead(rows)

    def read(conn: Connection) -> tuple[int, Playbook, dict[str, repo.RawLead] | None]:
        version, book = service.playbooks.recent(conn)
        if bands_in_force(conn, book):
            _BANDS_SEEN[service] = time.monotonic()
            return version, book, None  # temperatures from the model: the general path
        return version, book, repo.read_leads_raw(conn, by_lead, lock=False)

    version, book, seen = service.read(read)
    if seen is None:
        return None
    scored: dict[str, repo.LeadRow] = {}
    transitions: dict[str, list[repo.TransitionRow]] = {}
    records: dict[str, LeadRecord] = {}
    for lead_id, lead_events in by_lead.items():
        raw = seen.get(lead_id)
        record = repo.record_of_raw(raw) if raw else blank_record(book, version, lead_id, {}, now)
        if record.playbook_version != version:
            return None
        try:
            change = apply_events(book, record, lead_events, now)
        except WindowsSealed:  # late events in windows the state dropped: this lead is
            continue  # scored under its lock, with those windows read back from the log
        scored[lead_id] = repo.lead_row(change.record)
        transitions[lead_id] = [repo.transition_row(t) for t in change.transitions]
        records[lead_id] = change.record
    return ScoredAhead(version, seen, scored, transitions, records)


def _events_by_lead(rows: Sequence[EventRow]) -> dict[str, list[Event]]:
    by_lead: dict[str, list[Event]] = defaultdict(list)
    for row in rows:
        by_lead[row["lead_id"]].append(
            Event(row["lead_id"], row["name"], row["ts_us"], row["event_id"], row["properties"])
        )
    return by_lead


def _store_scored_ahead(service: Service, tracks: Sequence[Track], now: int) -> set[str]:
    """Events of leads named by ``userId``, scored before the write transaction.

    The scoring, most of the work, runs outside any lock, so it runs in parallel with
    other groups' writes and only the short write transaction is one at a time (on
    SQLite). The write then locks the leads as
    the general path does and compares each row with the one scored from: a lead another
    writer changed meanwhile, or whose events turn out not all new (another request
    stored one first), is scored again there, under its lock, from what is committed.
    What is stored is what the general path would store.
    """
    rows = _event_rows(tracks, lambda t: t.user_id, now)
    ahead = _score_ahead(service, rows, now)
    if ahead is None:
        raise _Fallback()
    by_lead: dict[str, list[EventRow]] = defaultdict(list)
    for row in rows:
        by_lead[row["lead_id"]].append(row)
    return service.write(lambda conn: _write_scored_ahead(service, conn, now, rows, by_lead, ahead))


def _write_scored_ahead(
    service: Service,
    conn: Connection,
    now: int,
    rows: list[EventRow],
    by_lead: Mapping[str, Sequence[EventRow]],
    ahead: ScoredAhead,
) -> set[str]:
    version, seen = ahead.version, ahead.seen
    book = service.playbooks.get(conn, version)
    if bands_in_force(conn, book):
        # Temperatures come from the model, computed in the transaction over the
        # leads it changes: the general path does that.
        raise _Fallback()
    missing = set(by_lead) - set(seen)
    created: set[str] = set()
    if is_postgres(conn):
        # As in _lock_or_create: new leads inserted first (here with their scored rows),
        # then the others locked, each in id order.
        if missing:
            created = repo.create_lead_rows(conn, [ahead.rows[lead] for lead in missing])
        wanted = set(by_lead) - created
        locked = repo.read_leads_raw(conn, wanted, lock=True)
        if set(locked) != wanted:
            raise _Fallback()  # a lead was merged away since it was read
    else:  # the write transaction already excludes every other writer
        locked = repo.read_leads_raw(conn, by_lead, lock=False)
        if set(seen) - set(locked):
            raise _Fallback()
    new_ids = repo.insert_events(conn, rows)

    updates: list[repo.LeadRow] = []
    inserts: list[repo.LeadRow] = []  # SQLite: leads still new, inserted as scored
    transitions: list[repo.TransitionRow] = []
    again: list[Change] = []  # scored again under the lock: updated
    made: list[repo.LeadRow] = []  # created above as scored
    ghosts: list[str] = []  # created for events that turned out all known: not kept
    for lead_id, lead_rows in by_lead.items():
        fresh_rows = [row for row in lead_rows if row["event_id"] in new_ids]
        as_scored = len(fresh_rows) == len(lead_rows)
        if lead_id in created or lead_id not in locked:
            if as_scored:
                if lead_id not in created:
                    inserts.append(ahead.rows[lead_id])
                else:
                    made.append(ahead.rows[lead_id])
                transitions += ahead.transitions[lead_id]
                continue
            if not fresh_rows:  # a duplicate never creates a lead
                if lead_id in created:
                    ghosts.append(lead_id)
                continue
            record = blank_record(book, version, lead_id, {}, now)
            if lead_id not in created:  # inserted as it is now, updated below
                inserts.append(repo.lead_row(record))
        else:
            raw = locked[lead_id]
            if not fresh_rows:
                continue  # every event of it was known already: nothing changes
            if as_scored and raw == seen.get(lead_id) and lead_id in ahead.rows:
                updates.append(ahead.rows[lead_id])
                transitions += ahead.transitions[lead_id]
                continue
            record = repo.record_of_raw(raw)
            if record.playbook_version > version:
                raise _Fallback()  # published since: the general path uses the new book
        fresh = _events_by_lead(fresh_rows)[lead_id] if fresh_rows else []
        again.append(_score(conn, book, version, record, None, fresh, None, now))
    repo.save_rows(conn, updates, inserts, transitions, now, stored=locked)
    repo.save_changes(conn, again, now)
    actions.act_on(conn, book, [*transitions, *actions.rows_of(again)], now)
    if book.nurture.sequences:
        # Each lead as stored: every row above is ahead's for its lead (so its record is
        # ahead's) but for the leads scored again, whose records come last and win.
        written = [
            ahead.records[row[0]] for row in (*updates, *inserts, *made) if row[0] in ahead.records
        ]
        changed = nurture.changed_leads([*written, *(c.record for c in again)])
        nurture.on_changes(conn, book, changed.values(), now)
        nurture.on_events(
            conn,
            book,
            (r for r in rows if r["event_id"] in new_ids),
            now,
            changed,
            created | {row[0] for row in inserts},
        )
    touches.record_tracked(conn, rows, new_ids, now)
    identity_store.delete_leads(conn, ghosts)
    # A userId named them (in a new message): known from now on.
    identity_store.forget_visitors(conn, {r["lead_id"] for r in rows if r["event_id"] in new_ids})
    return new_ids


def _ingest(
    service: Service,
    conn: Connection,
    tracks: Sequence[Track],
    identifies: Sequence[Identify],
    now: int | None = None,
) -> Stored:
    """One transaction; returns what it stored and the identify calls it refused."""
    if now is None:
        now = service.clock()
    version, book = service.playbooks.recent(conn)

    # Identify and alias calls applied before are duplicates: nothing of them happens.
    identifies = _unapplied(conn, identifies)
    anonymous = {t.anonymous_id for t in tracks if not t.user_id and t.anonymous_id}
    proposed = {i.anonymous_id for i in identifies if i.anonymous_id not in (None, i.user_id)}
    known = repo.resolve_subjects(conn, anonymous | proposed)
    identifies, refused = _refuse_known_merges(conn, tracks, identifies, known)
    identifies, too_many = _refuse_too_many_attributes(conn, identifies)
    refused.update(too_many)
    new_links = _links_of(identifies)
    links = {**new_links, **known}  # a link once made stays

    def lead_of(track: Track) -> str:
        if track.user_id:
            return track.user_id
        assert track.anonymous_id is not None
        return links.get(track.anonymous_id, track.anonymous_id)

    merging = {anon: lead for anon, lead in new_links.items() if anon not in known}

    def person(ident: Identify) -> str:  # an identify's lead, after this request's links
        return new_links.get(ident.user_id, ident.user_id)

    needed = {lead_of(t) for t in tracks} | {person(i) for i in identifies} | set(merging)
    records, new_leads, created = _lock_or_create(conn, needed, book, version, now)
    # Each lead's temperature as stored, for a probability band's transition.
    stored_temperatures = {
        lead_id: record.temperature
        for lead_id, record in records.items()
        if lead_id not in new_leads
    }
    # Under the locks, check nobody merged a visitor or a lead away since we looked.
    if set(records) != needed:
        raise Retry()
    newest = max((r.playbook_version for r in records.values()), default=0)
    if newest > version:  # another process published since we looked
        version, book = service.playbooks.recent(conn, at_least=newest)
    watched = anonymous | proposed
    if watched and repo.resolve_subjects(conn, watched) != known:
        raise Retry()
    if merging:  # and that each visitor to fold in is still one (a userId may have named it)
        born = new_leads | created
        still = identity_store.visitors_among(conn, set(merging) - born)
        if any(anon not in born and anon not in still for anon in merging):
            raise Retry()
    owners = {ident.message_id: person(ident) for ident in identifies}
    applied = identity_store.claim_messages(conn, owners, now)
    if applied != set(owners):  # another transaction applied one meanwhile
        raise Retry()

    replays: dict[str, str] = {}
    attributes: dict[str, dict[str, Any]] = defaultdict(dict)
    folds = _fold_bases(conn, version, records, merging)
    for anon, lead in sorted(merging.items()):
        identity_store.move_history(conn, anon, lead, now)
        visitor = records.pop(anon)
        new_leads.discard(anon)
        created.discard(anon)  # move_history deleted its row
        attributes[lead] = {**visitor.attributes, **attributes[lead]}
        known_lead = records[lead]
        records[lead] = replace(
            known_lead, created_us=min(known_lead.created_us, visitor.created_us)
        )
        if known_lead.state.event_count == 0:
            # The person was the visitor until now: its history (moved over) is theirs, so
            # only what the merge changes from the visitor's classes is a transition.
            records[lead] = replace(
                records[lead], temperature=visitor.temperature, stage=visitor.stage
            )
        replays[lead] = f"identify:{anon}"
    for ident in identifies:
        attributes[person(ident)].update(ident.traits)
        records[person(ident)] = _trait_columns(records[person(ident)], ident.traits)

    rows = _event_rows(tracks, lead_of, now)
    new_ids = repo.insert_events(conn, rows)
    fresh: dict[str, list[Event]] = defaultdict(list)
    for row in rows:
        if row["event_id"] in new_ids:
            fresh[row["lead_id"]].append(
                Event(row["lead_id"], row["name"], row["ts_us"], row["event_id"], row["properties"])
            )

    touched = set(fresh) | set(attributes) | set(replays)
    # A lead made for messages that all turned out to be duplicates is not kept.
    ghosts = (new_leads | created) - touched
    changes = [
        _score(
            conn,
            book,
            version,
            records[lead_id],
            attributes.get(lead_id),
            fresh[lead_id],
            replays.get(lead_id),
            now,
            folds.get(lead_id),
        )
        for lead_id in sorted(touched)
    ]
    identity_store.delete_leads(conn, created & ghosts)
    stored = [c for c in changes if c is not None]
    stored = probability_temperatures(
        service,
        conn,
        book,
        stored,
        now,
        added={lead: [(e.name, e.ts_us) for e in evs] for lead, evs in fresh.items()},
        before=stored_temperatures,
    )
    repo.save_changes(conn, stored, now, new=new_leads - ghosts)
    actions.act_on_changes(conn, book, stored, now)
    born = (new_leads | created) - ghosts
    if book.nurture.sequences:
        nurture.on_events(
            conn,
            book,
            (r for r in rows if r["event_id"] in new_ids),
            now,
            nurture.changed_leads(c.record for c in stored),
            born - set(merging.values()),  # a visitor's enrolments moved to these
        )
    touches.record_tracked(conn, rows, new_ids, now)
    # Leads only an anonymousId named are visitors; a userId makes a lead known.
    named = {t.user_id for t in tracks if t.user_id and t.message_id in new_ids}
    named |= {person(i) for i in identifies if not i.anonymous}
    identity_store.add_visitors(conn, born - named)
    identity_store.forget_visitors(conn, named & (touched - born))
    return Stored(new_ids, applied, refused)


def _unapplied(conn: Connection, identifies: Sequence[Identify]) -> list[Identify]:
    """The first identify of each message id, if no identify with it was applied yet."""
    if not identifies:
        return []
    done = identity_store.applied_messages(conn, {i.message_id for i in identifies})
    out: dict[str, Identify] = {}
    for ident in identifies:
        if ident.message_id not in done and ident.message_id not in out:
            out[ident.message_id] = ident
    return list(out.values())


MERGE_REFUSED = (
    "names a lead that is already identified; identify and alias only fold an anonymous "
    "visitor into a lead (an admin merges two known leads with POST /v1/leads/{id}/merge)"
)


MAX_ATTRIBUTES = 1000  # per lead: what a lead page, a search and a rescore read whole
TOO_MANY_ATTRIBUTES = (
    f"would give the lead more than {MAX_ATTRIBUTES} attributes; send fewer traits, or "
    "remove some with PATCH /v1/leads/{id} (an attribute set to null)"
)


def _refuse_too_many_attributes(
    conn: Connection, identifies: Sequence[Identify]
) -> tuple[list[Identify], dict[str, Refusal]]:
    """Identify calls that would take their lead past :data:`MAX_ATTRIBUTES` are refused.

    Traits accumulate (each call merges into the lead's attributes), so a per-message
    size limit alone lets a caller grow one lead without end, and every read, search and
    rescore of it with it. Checked before the locks, on what is stored: concurrent calls
    can overshoot by at most what they carry (each at most 32 KiB), so a lead stays bounded.
    """
    with_traits = [i for i in identifies if i.traits]
    if not with_traits:
        return list(identifies), {}
    keys = repo.attribute_keys(conn, {i.user_id for i in with_traits})
    kept: list[Identify] = []
    refused: dict[str, Refusal] = {}
    for ident in identifies:
        if ident.traits:
            have = keys.setdefault(ident.user_id, set())
            grown = have | set(ident.traits)
            if len(grown) > MAX_ATTRIBUTES and len(grown) > len(have):
                refused[ident.message_id] = Refusal(
                    ident.message_id,
                    ident.user_id,
                    None,
                    TOO_MANY_ATTRIBUTES,
                    kind="too_many_attributes",
                )
                continue
            keys[ident.user_id] = grown
        kept.append(ident)
    return kept, refused


def _refuse_known_merges(
    conn: Connection,
    tracks: Sequence[Track],
    identifies: Sequence[Identify],
    known: Mapping[str, str],
) -> tuple[list[Identify], dict[str, Refusal]]:
    """Identify and alias calls that would fold a known lead into another are refused.

    A call's ``anonymousId`` (alias: ``previousId``) may be folded into its ``userId``
    only if it is no lead yet, or a lead only anonymous ids have named (a visitor), and no
    ``userId`` of this request names it (a track's, or an earlier call's in the request).
    One already linked to a lead stays linked and folds nothing: it is never refused.
    """
    candidates = {
        i.anonymous_id
        for i in identifies
        if i.anonymous_id and i.anonymous_id != i.user_id and i.anonymous_id not in known
    }
    if not candidates:
        return list(identifies), {}
    existing = repo.existing_leads(conn, candidates)
    visiting = identity_store.visitors_among(conn, existing)
    named = {t.user_id for t in tracks if t.user_id}
    kept: list[Identify] = []
    refused: dict[str, Refusal] = {}
    for ident in identifies:
        anon = ident.anonymous_id
        if anon in candidates and (anon in named or (anon in existing and anon not in visiting)):
            refusal = Refusal(ident.message_id, ident.user_id, anon, MERGE_REFUSED)
            refused[ident.message_id] = refusal
            continue
        kept.append(ident)
        if not ident.anonymous:
            named.add(ident.user_id)
    return kept, refused


Fold = tuple[LeadState, list[Event]]


def _fold_bases(
    conn: Connection, version: int, records: Mapping[str, LeadRecord], merging: Mapping[str, str]
) -> dict[str, Fold]:
    """For each lead visitors fold into: the state the merged history starts from (the
    side with the most events) and the events of the other sides, read before they move.

    A merge then costs the events of the smaller sides, not the whole merged log. A side
    scored under another playbook version leaves the lead to a full replay (no entry).
    """
    sides: dict[str, list[LeadRecord]] = defaultdict(list)
    for anon, lead in merging.items():
        sides[lead].append(records[anon])
    out: dict[str, Fold] = {}
    for lead, visitors in sides.items():
        everyone = [records[lead], *visitors]
        if any(r.playbook_version != version for r in everyone):
            continue
        base = max(everyone, key=lambda r: (r.state.event_count, r.lead_id == lead))
        moved = [
            event
            for side in everyone
            if side is not base and side.state.event_count
            for event in repo.lead_events(conn, side.lead_id)
        ]
        out[lead] = (base.state, moved)
    return out


def _lock_or_create(
    conn: Connection, needed: set[str], book: Playbook, version: int, now: int
) -> tuple[dict[str, LeadRecord], set[str], set[str]]:
    """Lock (and read) the leads ``needed``, creating those that do not exist yet.

    Returns the records, the ids of the leads still to be inserted at the end (SQLite)
    and of those inserted already (PostgreSQL).

    SQLite: this transaction is the only writer, so a missing lead is made in memory and
    inserted once, with its final state, by :func:`repo.save_changes`.

    PostgreSQL: a row a transaction inserts stays locked by it until it commits, so new
    leads are inserted first (in id order; a lead another transaction is creating waits
    for it) and only then are all the others locked (in id order). Every transaction
    waits on inserts in id order before it holds any other lock, so none waits for one
    that waits for it. A lead that disappears meanwhile (an identify merged a visitor
    away) is missing from the locked rows: the caller starts again.
    """
    if not is_postgres(conn):
        records = repo.lock_leads(conn, needed)
        missing = needed - set(records)
        for lead in missing:
            records[lead] = blank_record(book, version, lead, {}, now)
        return records, missing, set()
    missing = needed - repo.existing_leads(conn, needed)
    blanks = {lead: blank_record(book, version, lead, {}, now) for lead in missing}
    created = repo.create_leads(conn, list(blanks.values())) if blanks else set()
    records = repo.lock_leads(conn, needed - created)
    records.update((lead, blanks[lead]) for lead in created)
    return records, set(), created


def _links_of(identifies: Sequence[Identify]) -> dict[str, str]:
    """The visitor → lead links a request's identify and alias calls make, each to the
    lead at the end of its chain (``a`` → ``b`` and ``b`` → ``c`` in one request: both are
    ``c``'s). The first link of a visitor counts, and one that would close a loop
    (``a`` → ``b``, then ``b`` → ``a``) is left out: its traits still go to the lead."""
    links: dict[str, str] = {}

    def end(lead: str) -> str:
        while lead in links:
            lead = links[lead]
        return lead

    for ident in identifies:
        anon = ident.anonymous_id
        if anon and anon != ident.user_id and anon not in links and end(ident.user_id) != anon:
            links[anon] = ident.user_id
    return {anon: end(lead) for anon, lead in links.items()}


def _event_rows(tracks: Sequence[Track], lead_of: Any, now: int) -> list[dict[str, Any]]:
    """One row per message id (the first of a repeated id in one request wins)."""
    rows: dict[str, dict[str, Any]] = {}
    for track in tracks:
        if track.message_id in rows:
            continue
        rows[track.message_id] = {
            "event_id": track.message_id,
            "lead_id": lead_of(track),
            "subject": track.user_id or track.anonymous_id,
            "name": track.name,
            "ts_us": track.ts_us,
            "properties": dict(track.properties),
            "received_us": now,
        }
    return list(rows.values())


def _score(
    conn: Connection,
    book: Playbook,
    version: int,
    record: LeadRecord,
    new_attributes: Mapping[str, Any] | None,
    fresh: Sequence[Event],
    replay_cause: str | None,
    now: int,
    base: Fold | None = None,
) -> Change | None:
    if new_attributes:
        merged = dict(record.attributes)
        for key, value in new_attributes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        if replay_cause or record.playbook_version != version:
            record = replace(record, attributes=merged)
            new_attributes = None
    if base is not None and replay_cause and record.playbook_version == version:
        state, moved = base  # a merge: the smaller sides' events folded in
        pending = [*moved, *fresh]
        state = restore_for(conn, book, record.lead_id, state, pending)
        return fold(book, record, state, pending, now, replay_cause)
    if replay_cause or record.playbook_version != version:
        cause = replay_cause or f"playbook:v{version}"
        return replay(book, version, record, repo.lead_events(conn, record.lead_id), now, cause)
    first = set_attributes(book, record, new_attributes, now) if new_attributes else Change(record)
    start = first.record
    try:
        second = apply_events(book, start, fresh, now)
    except WindowsSealed:  # late events in windows the state dropped: read them back
        restored = restore_for(conn, book, start.lead_id, start.state, fresh)
        second = apply_events(book, replace(start, state=restored), fresh, now)
    return Change(second.record, first.transitions + second.transitions)


def _trait_columns(record: LeadRecord, traits: Mapping[str, Any]) -> LeadRecord:
    """Traits that are also columns (source, owner, consent) update those columns."""
    updates: dict[str, Any] = {}
    for column, names in _COLUMN_TRAITS.items():
        for name in names:
            if traits.get(name) not in (None, ""):
                updates[column] = str(traits[name])[:200]
                break
    for name in _CONSENT_TRAITS:
        if name in traits:
            updates["consent"] = _truthy(traits[name])
            break
    return replace(record, **updates) if updates else record


def _truthy(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "yes", "y", "1"):
        return True
    if text in ("false", "f", "no", "n", "0"):
        return False
    return None
