"""Nurture in the service: enrol and exit leads as things happen, and run due steps.

* :func:`on_moves` (from :func:`pyrometer.service.actions.act_on`) and :func:`on_events`
  (from ingest) run in the write transaction that recorded the transitions or events: a
  lead enters a sequence, or leaves it, if and only if what caused it is committed.
  :func:`on_changes` (from :func:`pyrometer.service.actions.act_on_changes` and ingest)
  enrols changed leads that now satisfy a sequence's standing condition, in the same
  way; :meth:`Runner.sweep` looks at every lead after a publish.
* :class:`NurtureRunner` (in ``pyrometer worker`` and ``serve``) runs due steps in
  batches. A batch of enrolments is claimed past a lease and its steps planned in one
  transaction that checks consent, the exits, the frequency caps and quiet hours *now*,
  and writes each step's record under a unique key (``enrolment:step``); the e-mails are
  sent outside any transaction over one connection; each send the server took is marked
  sent at once (one small commit), and the enrolments are moved on every
  ``record_every`` sends, one transaction each. A runner killed before it sends leaves
  the planned records and the claimed enrolments, which come due again when the lease
  ends and are sent then, once: the record carries the subject variant chosen, and the
  message the same Message-ID. A runner killed after sends were marked but before their
  enrolments moved on finds them marked when the lease ends, and only moves them on. The
  one window left is a kill between the server's answer and that mark: that one message
  goes again (the Message-ID lets a mailbox drop the repeat).
* Opens, clicks and unsubscribes come back through :func:`record_open`,
  :func:`record_click` and :func:`unsubscribe` (the links in the e-mails), bounces and
  complaints through :func:`report_bounce`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import smtplib
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.conditions import normalize_name
from pyrometer.core.incremental import LeadState
from pyrometer.core.nurture_spec import Sequence as NurtureSequence
from pyrometer.core.playbook import Playbook
from pyrometer.core.timeutil import iso
from pyrometer.nurture import consent, mail, plan, pressure, variants
from pyrometer.nurture.links import CLICK, OPEN, UNSUBSCRIBE, BadLink, Links
from pyrometer.service import actions
from pyrometer.service.decay import SchedulerLock
from pyrometer.service.inputs import Track
from pyrometer.service.runtime import Service
from pyrometer.store import identity as identity_store
from pyrometer.store import nurture as store
from pyrometer.store import outbox
from pyrometer.store.outbox import AFTER_COMMIT, Notification
from pyrometer.store.records import LeadRecord
from pyrometer.store.secrets import get_or_create
from pyrometer.store.tables import jobs, leads

log = logging.getLogger("pyrometer.nurture")

SMTP_URL = "PYROMETER_SMTP_URL"
SMTP_USER = "PYROMETER_SMTP_USER"
SMTP_PASSWORD = "PYROMETER_SMTP_PASSWORD"
PUBLIC_URL = "PYROMETER_PUBLIC_URL"
POSTAL_ADDRESS = "PYROMETER_POSTAL_ADDRESS"
MAIL_FROM = "PYROMETER_MAIL_FROM"
DRY_RUN = "PYROMETER_NURTURE_DRY_RUN"
SHARE = "PYROMETER_NURTURE_SHARE"
SIGNAL = "nurture"
_LOCK_ID = 0x5059524E  # "PYRN": the nurture runner's leader lock
_SECRET = "nurture-links"


# ---------------------------------------------------------------- enrolment and exits


def _relevant(book: Playbook, trigger: plan.Trigger) -> bool:
    for seq in book.nurture.sequences:
        if plan.triggers(seq, trigger, book.event_name):
            return True
        rules = seq.exit
        if trigger.event is not None and trigger.event in rules.events:
            return True
        if trigger.kind == "temperature" and trigger.new in rules.temperatures:
            return True
        if trigger.kind == "stage" and trigger.new in rules.stages:
            return True
        if trigger.event is not None and trigger.event in _awaited(book, seq):
            return True
    return False


def _awaited(book: Playbook, seq: NurtureSequence) -> set[str]:
    """The events the sequence's ``until`` steps wait for, as ingest names them."""
    return {book.event_name(s.until.event) for s in seq.steps if s.until is not None}


def on_moves(conn: Connection, book: Playbook, moves: Sequence[actions.Move], now_us: int) -> None:
    """Enrol and exit on just-written transitions (cheap when no sequence cares)."""
    if not book.nurture.sequences:
        return
    found: dict[str, list[plan.Trigger]] = defaultdict(list)
    for move in sorted(moves, key=lambda m: m.at_us):
        trigger = plan.Trigger(kind=move.kind, old=move.old, new=move.new)
        if _relevant(book, trigger):
            found[move.lead_id].append(trigger)
    if found:
        _react(conn, book, found, now_us, "transition")


def on_events(
    conn: Connection,
    book: Playbook,
    rows: Iterable[Mapping[str, Any]],
    now_us: int,
    known: Mapping[str, Changed] | None = None,
    new: AbstractSet[str] = frozenset(),
) -> None:
    """Enrol and exit on just-stored events (``lead_id`` and ``name`` of each row).
    ``known``: the leads as this transaction left them (else they are read); ``new``:
    leads this transaction created, which can have no enrolments or blocks yet."""
    if not book.nurture.sequences:
        return
    found: dict[str, list[plan.Trigger]] = defaultdict(list)
    aliases = book.aliases.event_map  # "Email Link Clicked" means email_click
    relevant: dict[str, plan.Trigger | None] = {}  # by the name as sent
    for row in rows:
        sent = row["name"]
        if sent not in relevant:
            name = normalize_name(sent)  # stored as sent: "Email Opened"
            trigger = plan.Trigger(event=aliases.get(name, name))
            relevant[sent] = trigger if _relevant(book, trigger) else None
        trigger = relevant[sent]
        if trigger is not None:
            found[row["lead_id"]].append(trigger)
    if found:
        _react(conn, book, found, now_us, "event", known, new)


def _go_on(
    conn: Connection,
    book: Playbook,
    active: dict[str, store.Enrolment | int],
    event: str,
    now_us: int,
) -> None:
    """Enrolments waiting (an ``until`` step) for ``event`` go on to their next step now."""
    for name, enrolment in list(active.items()):
        if isinstance(enrolment, int):
            continue  # an enrolment of this same batch is not waiting yet
        seq = book.nurture.sequence(name)
        if seq is None or enrolment.step is None:
            continue
        awaited = plan.waiting_for(seq, enrolment.step)
        if awaited is None or book.event_name(awaited) != event:
            continue
        position = plan.after(seq, enrolment.step, now_us)
        store.plan_step(conn, enrolment, enrolment.step, "until", "done", now_us)
        if position.step is None:
            store.end(conn, enrolment.id, plan.COMPLETED, None, now_us)
            del active[name]
        else:
            store.move_to(conn, enrolment.id, position.step, position.due_us)
            active[name] = replace(enrolment, step=position.step, next_due_us=position.due_us)
            tags = conn.info.get(AFTER_COMMIT)
            if tags is not None and SIGNAL not in tags:
                tags.append(SIGNAL)


def _cause(trigger: plan.Trigger) -> str:
    if trigger.event is not None:
        return f"event:{trigger.event}"
    return f"{trigger.kind}:{trigger.old}->{trigger.new}"


def _suppressed(state: Mapping[str, Any] | None) -> bool:
    """``LeadState.suppressed`` from the stored document, without parsing all of it."""
    state = state or {}
    return bool(state.get("suppressed_by_attributes")) or state.get("suppressed_at_us") is not None


def _react(
    conn: Connection,
    book: Playbook,
    found: Mapping[str, list[plan.Trigger]],
    now_us: int,
    _why: str,
    known: Mapping[str, Changed] | None = None,
    new_leads: AbstractSet[str] = frozenset(),
) -> None:
    """Exits, waits that end and enrolments for these leads' triggers, in order. Ingest
    calls this for every batch: a lead with no history (created by this transaction)
    costs no read, leads created alike are enrolled together (:func:`_gather_fresh`), and
    what the others make is one row (a tuple) per enrolment, all written at the end in a
    few statements."""
    wants_attributes = any(seq.enrol.where is not None for seq in book.nurture.sequences)
    # What each trigger enrols in, and the cause its enrolments record.
    firing: dict[plan.Trigger, tuple[tuple[NurtureSequence, ...], str]] = {}
    starts: dict[str, plan.Position] = {}
    # Leads this transaction created, gathered by the enrolments they make alike.
    alike: dict[tuple[Any, ...], list[str]] = {}
    ids = sorted(found)
    if not wants_attributes and new_leads and isinstance(known, ChangedLeads):
        ids = _gather_fresh(
            book, ids, found, known.records, new_leads, firing, starts, alike, now_us
        )
    leads_now: Mapping[str, Changed] = known or {}
    unread = [lead_id for lead_id in ids if lead_id not in leads_now]
    read = {c.lead_id: c for c in _read_changed(conn, unread)} if unread else {}
    old = [lead_id for lead_id in ids if lead_id not in new_leads]
    history = store.enrolments_of(conn, old)
    blocked = store.blocked_leads(conn, old)  # do-not-contact on a channel: never enrolled
    # A lead never in any sequence, under filters that read no attributes: which
    # sequences a trigger enrols it in depends on the trigger, its temperature and its
    # stage alone (plan.should_enrol), so it is decided once per batch for each.
    decided: dict[tuple[plan.Trigger, str, str], tuple[NurtureSequence, ...]] = {}
    new: list[store.EnrolmentRow] = []
    for lead_id in ids:
        lead = leads_now.get(lead_id) or read.get(lead_id)
        if lead is None:
            continue
        triggers = found[lead_id]
        mine = history.get(lead_id)
        # The lead's active enrolments by sequence: stored ones, or (an int) the index in
        # ``new`` of one this batch made.
        active: dict[str, store.Enrolment | int] = {}
        seen: set[str] = set()
        if mine:
            active.update((e.sequence, e) for e in mine if e.status == store.ACTIVE)
            seen.update(e.sequence for e in mine)
        view: plan.LeadView | None = None
        suppressed: bool | None = None
        for trigger in triggers:  # in order: an event may end what an earlier began
            if active:
                _exit(conn, book, lead, trigger, active, new, now_us)
                if trigger.event is not None and active:
                    _go_on(conn, book, active, trigger.event, now_us)
            sequences, cause = _fires(book, firing, trigger)
            if not sequences:
                continue
            if suppressed is None:
                suppressed = lead_id in blocked or lead.suppressed()  # never enrolled
            if suppressed:
                continue
            if not seen and not wants_attributes:
                key = (trigger, lead.temperature, lead.stage)
                entering = decided.get(key)
                if entering is None:
                    first = plan.LeadView(lead_id, lead.temperature, lead.stage, {}, lead.fit)
                    entering = decided[key] = _entering(book, sequences, trigger, first, set())
            else:
                if view is None:
                    attributes = book.lead_attributes(lead.attributes()) if wants_attributes else {}
                    view = plan.LeadView(
                        lead_id, lead.temperature, lead.stage, attributes, lead.fit
                    )
                entering = _entering(book, sequences, trigger, view, seen, active)
            for seq in entering:
                position = starts.get(seq.name)
                if position is None:
                    position = starts[seq.name] = plan.start(seq, now_us)
                active[seq.name] = len(new)
                new.append(
                    store.enrolment_row(
                        lead_id, seq.name, position.step, position.due_us, cause, now_us
                    )
                )
                seen.add(seq.name)
    # Leads this transaction created: no other writer can have enrolled them (one that
    # tries waits on the lead's row until this commits).
    for rest, lead_ids in alike.items():
        store.enrol_fresh(conn, lead_ids, rest)
    if new:
        fresh = [row for row in new if row[0] in new_leads]
        store.enrol_many(conn, fresh, fresh=True)
        store.enrol_many(conn, [row for row in new if row[0] not in new_leads])
    if new or alike:
        tags = conn.info.get(AFTER_COMMIT)
        if tags is not None:
            tags.append(SIGNAL)


def _gather_fresh(
    book: Playbook,
    ids: list[str],
    found: Mapping[str, list[plan.Trigger]],
    records: Mapping[str, LeadRecord],
    new_leads: AbstractSet[str],
    firing: dict[plan.Trigger, tuple[tuple[NurtureSequence, ...], str]],
    starts: dict[str, plan.Position],
    alike: dict[tuple[Any, ...], list[str]],
    now_us: int,
) -> list[str]:
    """The enrolments of the leads this transaction created with one trigger each, into
    ``alike`` (every column but the lead id → the leads); returns the other leads.

    Such a lead has nothing in any sequence, nothing to end or go on, and no filter reads
    its attributes: what it enters is decided once per batch for its trigger (one object
    for every row of an event name), temperature, stage and suppression, and the leads
    that enter alike are written in one statement that sends the shared columns once."""
    made: dict[tuple[int, str, str, bool], tuple[list[str], ...]] = {}
    others: list[str] = []
    for lead_id in ids:
        triggers = found[lead_id]
        record = records.get(lead_id) if len(triggers) == 1 and lead_id in new_leads else None
        if record is None:
            others.append(lead_id)
            continue
        trigger = triggers[0]
        key = (id(trigger), record.temperature, record.stage, record.state.suppressed)
        into = made.get(key)
        if into is None:
            rests = _fresh_rows(book, trigger, key[1:], firing, starts, now_us)
            into = made[key] = tuple(alike.setdefault(rest, []) for rest in rests)
        for gathered in into:
            gathered.append(lead_id)
    return others


def _fires(
    book: Playbook,
    firing: dict[plan.Trigger, tuple[tuple[NurtureSequence, ...], str]],
    trigger: plan.Trigger,
) -> tuple[tuple[NurtureSequence, ...], str]:
    """The sequences ``trigger`` enrols in (its filters aside) and the cause their
    enrolments record, once per batch for each trigger."""
    fires = firing.get(trigger)
    if fires is None:
        sequences = tuple(
            seq for seq in book.nurture.sequences if plan.triggers(seq, trigger, book.event_name)
        )
        fires = firing[trigger] = (sequences, _cause(trigger))
    return fires


def _fresh_rows(
    book: Playbook,
    trigger: plan.Trigger,
    lead: tuple[str, str, bool],
    firing: dict[plan.Trigger, tuple[tuple[NurtureSequence, ...], str]],
    starts: dict[str, plan.Position],
    now_us: int,
) -> tuple[tuple[Any, ...], ...]:
    """The enrolment rows (without their lead id) that ``trigger`` makes for a lead never
    in any sequence, with this temperature, stage and suppression (``lead``) and no
    attribute read by a filter."""
    temperature, stage, suppressed = lead
    sequences, cause = _fires(book, firing, trigger)
    if not sequences or suppressed:
        return ()
    first = plan.LeadView("", temperature, stage, {}, 0.0)
    rows = []
    for seq in _entering(book, sequences, trigger, first, set()):
        position = starts.get(seq.name)
        if position is None:
            position = starts[seq.name] = plan.start(seq, now_us)
        row = store.enrolment_row("", seq.name, position.step, position.due_us, cause, now_us)
        rows.append(row[1:])
    return tuple(rows)


def _entering(
    book: Playbook,
    sequences: Sequence[NurtureSequence],
    trigger: plan.Trigger,
    lead: plan.LeadView,
    seen: AbstractSet[str],
    active: Mapping[str, object] | None = None,
) -> tuple[NurtureSequence, ...]:
    """Of the sequences ``trigger`` fires, those the lead enters now (``seen``: the ones
    it was ever in, ``active``: those it is in now)."""
    return tuple(
        seq
        for seq in sequences
        if plan.should_enrol(
            seq,
            trigger,
            lead,
            seq.name in seen,
            active is not None and seq.name in active,
            book.missing_values,
            book.event_name,
        )
    )


def _exit(
    conn: Connection,
    book: Playbook,
    lead: Changed,
    trigger: plan.Trigger,
    active: dict[str, store.Enrolment | int],
    new: list[store.EnrolmentRow],
    now_us: int,
) -> None:
    """The lead's active enrolments that ``trigger`` (or where the lead is now) ends."""
    for name, enrolment in list(active.items()):
        seq = book.nurture.sequence(name)
        if seq is None:
            continue
        reason = plan.exit_reason(seq, lead.temperature, lead.stage, trigger.event)
        if reason is None:
            continue
        if isinstance(enrolment, int):  # made by an earlier message of this same batch
            new[enrolment] = store.ended_row(new[enrolment], plan.EXITED, reason, now_us)
        else:
            store.end(conn, enrolment.id, plan.EXITED, reason, now_us)
        del active[name]


# ---------------------------------------------------------------- standing conditions


class Changed(Protocol):
    """A lead as a write left it, for the standing conditions and enrolment: the cheap
    columns, and its attributes and suppression, which a caller asks for only for a lead
    the cheap part lets through."""

    @property
    def lead_id(self) -> str: ...

    @property
    def temperature(self) -> str: ...

    @property
    def stage(self) -> str: ...

    @property
    def fit(self) -> float: ...

    @property
    def consent(self) -> bool | None: ...

    def attributes(self) -> Mapping[str, Any]: ...

    def suppressed(self) -> bool: ...


class _RecordChanged:
    """From a record in hand: one object per lead, every column read through it."""

    __slots__ = ("_record",)

    def __init__(self, record: LeadRecord) -> None:
        self._record = record

    @property
    def lead_id(self) -> str:
        return self._record.lead_id

    @property
    def temperature(self) -> str:
        return self._record.temperature

    @property
    def stage(self) -> str:
        return self._record.stage

    @property
    def fit(self) -> float:
        return float(self._record.state.fit)

    @property
    def consent(self) -> bool | None:
        return self._record.consent

    def attributes(self) -> Mapping[str, Any]:
        return self._record.attributes

    def suppressed(self) -> bool:
        return self._record.state.suppressed


class _StoredChanged:
    """From the lead's stored row (:func:`store.lead_rows`)."""

    __slots__ = ("_row", "consent", "fit", "lead_id", "stage", "temperature")

    def __init__(self, row: Any) -> None:
        self.lead_id = row.lead_id
        self.temperature = row.temperature
        self.stage = row.stage
        self.fit = float(row.fit)
        self.consent = row.consent
        self._row = row

    def attributes(self) -> Mapping[str, Any]:
        return self._row.attributes or {}

    def suppressed(self) -> bool:
        return _suppressed(self._row.state)


class ChangedLeads(Mapping[str, Changed]):
    """The leads a write left, by id, each made a :class:`Changed` only when asked for:
    a batch whose events no sequence cares about (and no standing condition) builds none.
    """

    def __init__(self, records: Mapping[str, LeadRecord]) -> None:
        self.records = records
        """The records themselves, by lead id (for loops that want no object per lead)."""

    def __getitem__(self, lead_id: str) -> Changed:
        return _RecordChanged(self.records[lead_id])

    def get(self, lead_id: str, default: Any = None) -> Any:  # one lookup, as ingest asks
        record = self.records.get(lead_id)
        return default if record is None else _RecordChanged(record)

    def __contains__(self, lead_id: object) -> bool:
        return lead_id in self.records

    def __iter__(self) -> Iterator[str]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


def changed_leads(records: Iterable[LeadRecord]) -> ChangedLeads:
    """From records (:class:`pyrometer.store.records.LeadRecord`) as a write stored them,
    by lead id; of a lead given twice, the later."""
    return ChangedLeads({record.lead_id: record for record in records})


def changed_of_records(changes: Iterable[Any]) -> list[Changed]:
    """From stored changes (:class:`pyrometer.store.records.Change`)."""
    return [_RecordChanged(change.record) for change in changes]


def _read_changed(conn: Connection, lead_ids: Sequence[str]) -> list[Changed]:
    """The leads as stored (for callers that did not pass them)."""
    return [_StoredChanged(row) for row in store.lead_rows(conn, lead_ids).values()]


def on_changes(conn: Connection, book: Playbook, changed: Iterable[Changed], now_us: int) -> None:
    """Enrol changed leads that now satisfy a sequence's standing condition (in the
    transaction that changed them). No statement unless some lead passes the cheap part
    of a condition; nothing looked at without a standing condition."""
    standing = plan.standing(book.nurture.sequences)
    if not standing:
        return
    views: list[tuple[plan.LeadView, Changed]] = []
    for lead in changed:
        maybe = [s for s in standing if plan.may_hold(s, lead.temperature, lead.stage, lead.fit)]
        if not maybe:
            continue
        attributes = (
            book.lead_attributes(lead.attributes())
            if any(plan.needs_attributes(s) for s in maybe)
            else {}
        )
        view = plan.LeadView(lead.lead_id, lead.temperature, lead.stage, attributes, lead.fit)
        if any(plan.holds(s, view, book.missing_values) for s in maybe):
            views.append((view, lead))
    if views:
        _enrol_standing(
            conn,
            book,
            [(v, lead.consent, lead.suppressed) for v, lead in views],
            now_us,
        )


def _enrol_standing(
    conn: Connection,
    book: Playbook,
    found: Sequence[tuple[plan.LeadView, bool | None, Callable[[], bool]]],
    now_us: int,
) -> int:
    """Enrol these leads (whose conditions hold) in the standing sequences they may
    enter: never a suppressed, blocked or ``consent: false`` lead; once at a time, and
    once ever unless the sequence allows re-entry. How many enrolments were made."""
    standing = plan.standing(book.nurture.sequences)
    ids = [view.lead_id for view, _, _ in found]
    history = store.enrolments_of(conn, ids)
    blocked = store.blocked_leads(conn, ids)
    new: list[store.EnrolmentRow] = []
    for view, agreed, suppressed in found:
        if agreed is False or view.lead_id in blocked or suppressed():
            continue
        mine = history.get(view.lead_id, [])
        active = {e.sequence for e in mine if e.status == store.ACTIVE}
        seen = {e.sequence for e in mine}
        for seq in standing:
            if not plan.should_enrol_standing(
                seq, view, seq.name in seen, seq.name in active, book.missing_values
            ):
                continue
            position = plan.start(seq, now_us)
            new.append(
                store.enrolment_row(
                    view.lead_id, seq.name, position.step, position.due_us, "condition", now_us
                )
            )
    if new:
        store.enrol_many(conn, new)
        tags = conn.info.get(AFTER_COMMIT)
        if tags is not None and SIGNAL not in tags:
            tags.append(SIGNAL)
    return len(new)


SWEEP = "nurture_sweep"


def sweep_page(
    conn: Connection, book: Playbook, version: int, after: str, limit: int, now_us: int
) -> tuple[int, str | None, int]:
    """One page of the sweep of every lead for the standing conditions (after a publish):
    the leads after ``after`` in id order, ``limit`` of them. Leads not yet rescored under
    ``version`` are left to the rescoring job, which looks at them when it replays them.
    (leads looked at, the last id or ``None`` at the end, enrolments made)."""
    rows = store.standing_page(conn, after, limit)
    if not rows:
        return 0, None, 0
    standing = plan.standing(book.nurture.sequences)
    views: list[plan.LeadView] = []
    consents: dict[str, bool | None] = {}
    for row in rows:
        if row.playbook_version != version:
            continue
        fit = float(row.fit)
        maybe = [s for s in standing if plan.may_hold(s, row.temperature, row.stage, fit)]
        if not maybe:
            continue
        attributes = book.lead_attributes(row.attributes or {})
        view = plan.LeadView(row.lead_id, row.temperature, row.stage, attributes, fit)
        if any(plan.holds(s, view, book.missing_values) for s in maybe):
            views.append(view)
            consents[row.lead_id] = row.consent
    made = 0
    if views:
        gone = store.suppressed_leads(conn, [v.lead_id for v in views])
        made = _enrol_standing(
            conn,
            book,
            [(v, consents[v.lead_id], lambda v=v: v.lead_id in gone) for v in views],
            now_us,
        )
    last = rows[-1].lead_id
    return len(rows), (last if len(rows) == limit else None), made


# ---------------------------------------------------------------- sending


class Mailer(Protocol):
    def send(self, message: mail.Outgoing, to: str) -> str:
        """Send ``message``; the status to record (``sent``, ``written``); raise on failure."""
        ...


class SmtpMailer:
    """``smtp://host:port`` (``?starttls=true`` to upgrade), ``smtps://host:port``; user
    and password in the URL or ``PYROMETER_SMTP_USER`` / ``PYROMETER_SMTP_PASSWORD``."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(
                f"{SMTP_URL}: expected smtp://host:port or smtps://host:port, got {url!r}"
            )
        self.tls = parts.scheme == "smtps"
        query = parse_qs(parts.query)
        self.starttls = query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
        self.host = parts.hostname
        self.port = parts.port or (465 if self.tls else 25)
        self.user = unquote(parts.username) if parts.username else user
        self.password = unquote(parts.password) if parts.password else password
        self.timeout = 30.0
        # The EHLO name; smtplib's default asks DNS (socket.getfqdn) on every connection.
        self.local_name = os.environ.get("PYROMETER_SMTP_HELO") or "localhost"
        self._client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if self.tls:
            client = smtplib.SMTP_SSL(
                self.host, self.port, self.local_name, timeout=self.timeout, context=context
            )
        else:
            client = smtplib.SMTP(self.host, self.port, self.local_name, timeout=self.timeout)
        try:
            if self.starttls:
                client.starttls(context=context)
            if self.user:
                client.login(self.user, self.password or "")
        except BaseException:
            client.close()
            raise
        return client

    def send(self, message: mail.Outgoing, to: str) -> str:
        """Over one connection kept open between sends (a server that closed it meanwhile
        gets a new one); any other failure closes it and is raised."""
        for attempt in (1, 2):
            if self._client is None:
                self._client = self._connect()
            try:
                self._client.sendmail(message.sender, [to], message.data)
                return "sent"
            except smtplib.SMTPServerDisconnected:
                self.close()
                if attempt == 2:
                    raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.quit()
            client.close()


class FolderMailer:
    """The dry run: each e-mail written to ``folder`` as an ``.eml`` file, not sent."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def send(self, message: mail.Outgoing, to: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = message.message_id.strip("<>").replace("@", "_").replace("/", "_")
        (self.folder / f"{name}.eml").write_bytes(message.data)
        return "written"


@dataclass(frozen=True, slots=True)
class NurtureSettings:
    mailer: Mailer | None  # None: no SMTP configured, e-mail steps are recorded as skipped
    public_url: str = "http://127.0.0.1:8000"
    postal_address: str = "(set PYROMETER_POSTAL_ADDRESS)"
    sender: str = "Pyrometer <nurture@localhost>"
    lease: float = 120.0  # seconds an enrolment stays claimed while its step runs
    batch: int = 200  # claimed and planned in one transaction, then sent
    record_every: int = 100  # sends whose outcomes are recorded in one transaction
    sweep_page: int = 1000  # leads looked at per transaction by the standing-condition sweep
    backoff: float = 60.0  # seconds after a failed send; doubling, at most an hour
    max_attempts: int = 8
    poll: float = 1.0
    # While ingest is busy the background runner works at most this share of the time and
    # rests the rest: a drip e-mail can wait seconds, ingest (a hot lead's 5-minute clock)
    # cannot, and on SQLite both need the one writer. 0.1 keeps ingest within 10% of its
    # rate. While no events arrive, it runs at full speed.
    share: float = 0.1

    @classmethod
    def from_env(cls, default_public_url: str | None = None, **overrides: Any) -> NurtureSettings:
        """``PYROMETER_SMTP_URL`` (or ``PYROMETER_NURTURE_DRY_RUN``: a folder), the public
        URL, the postal address and the sender; a bad value is a ``ValueError``."""
        env = os.environ
        mailer: Mailer | None = None
        if env.get(DRY_RUN):
            mailer = FolderMailer(env[DRY_RUN])
        elif env.get(SMTP_URL):
            mailer = SmtpMailer(env[SMTP_URL], env.get(SMTP_USER), env.get(SMTP_PASSWORD))
        values: dict[str, Any] = {"mailer": mailer}
        public = env.get(PUBLIC_URL) or default_public_url
        if public:
            values["public_url"] = public
        if env.get(POSTAL_ADDRESS):
            values["postal_address"] = env[POSTAL_ADDRESS]
        if env.get(MAIL_FROM):
            values["sender"] = env[MAIL_FROM]
        if env.get(SHARE):
            try:
                share = float(env[SHARE])
            except ValueError:
                share = -1.0
            if not 0 < share <= 1:
                raise ValueError(f"{SHARE} must be a number in (0, 1], not {env[SHARE]!r}")
            values["share"] = share
        values.update(overrides)
        return cls(**values)


def links_of(service: Service, public_url: str) -> Links:
    secret = service.write(lambda conn: get_or_create(conn, _SECRET, service.clock()))
    return Links(secret, public_url)


@dataclass(frozen=True, slots=True)
class Job:
    """An e-mail planned and not yet sent."""

    enrolment_id: int
    step: int
    key: str
    to: str
    rendered: mail.Rendered
    planned_us: int

    @property
    def subject(self) -> str:
        return self.rendered.subject


@dataclass(frozen=True, slots=True)
class EventJob:
    """A ``points`` or ``stage`` step planned: the event it records for the lead."""

    enrolment_id: int
    step: int
    key: str
    lead_id: str
    event: str
    sequence: str
    visitor: bool = False  # recorded under its anonymousId: a step does not name a visitor


def top_interests(book: Playbook, state: LeadState, n: int = 3) -> list[str]:
    """The rules that gave the lead most points (points × events counted; caps and decay
    aside), as words: ``pricing page visit``."""
    points = {rule.name: rule.points for rule in book.engagement}
    totals: dict[str, float] = defaultdict(float)
    for (rule, _), members in state.windows.items():
        totals[rule] += points.get(rule, 0.0) * len(members)
    ranked = sorted((t for t in totals.items() if t[1] > 0), key=lambda t: (-t[1], t[0]))
    return [name.replace("_", " ") for name, _ in ranked[:n]]


def _variant_winner(
    conn: Connection, seq: str, step: int, count: int, min_sends: int
) -> int | None:
    S = store.S
    rows = conn.execute(
        sa.select(S.variant, sa.func.count(), sa.func.count(S.opened_us))
        .where(S.sequence == seq, S.step == step, S.status.in_(store.SENT_STATUSES))
        .group_by(S.variant)
    ).all()
    tallies = {int(r[0]): variants.Tally(int(r[1]), int(r[2])) for r in rows if r[0] is not None}
    return variants.winner([tallies.get(i, variants.Tally(0, 0)) for i in range(count)], min_sends)


class _Moves:
    """Enrolments moved on, ended or postponed by a batch, written at once by :meth:`flush`."""

    def __init__(self) -> None:
        self.moves: list[tuple[int, int | None, int | None]] = []
        self.ends: list[tuple[int, str, str | None]] = []
        self.later: list[tuple[int, int]] = []

    def advance(self, seq: NurtureSequence, enrolment: store.Enrolment, now: int) -> None:
        assert enrolment.step is not None
        position = plan.after(seq, enrolment.step, now)
        if position.step is None:
            self.moves.append((enrolment.id, enrolment.step, None))
            self.end(enrolment.id, plan.COMPLETED, None)
        else:
            self.moves.append((enrolment.id, position.step, position.due_us))

    def end(self, enrolment_id: int, status: str, reason: str | None) -> None:
        self.ends.append((enrolment_id, status, reason))

    def postpone(self, enrolment_id: int, due_us: int) -> None:
        self.later.append((enrolment_id, due_us))

    def flush(self, conn: Connection, now: int) -> None:
        store.postpone_many(conn, self.later)
        store.move_many(conn, self.moves)
        store.end_many(conn, self.ends, now)
        self.moves, self.ends, self.later = [], [], []


class Runner:
    """Runs due steps: :meth:`run_due` in a loop (:class:`NurtureRunner`) or by hand."""

    def __init__(
        self,
        service: Service,
        settings: NurtureSettings,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.service = service
        self.settings = settings
        self.rand = rand
        self.timer: Callable[[], float] = time.perf_counter  # how long a batch took
        self._mark: int | None = None  # the newest event when the runner last looked
        self._links: Links | None = None

    @property
    def links(self) -> Links:
        if self._links is None:
            self._links = links_of(self.service, self.settings.public_url)
        return self._links

    def _links_in(self, conn: Connection, now: int) -> Links:
        if self._links is None:
            self._links = Links(get_or_create(conn, _SECRET, now), self.settings.public_url)
        return self._links

    def run_due(
        self,
        now_us: int | None = None,
        rest: Callable[[float], bool] | None = None,
        limit: int | None = None,
    ) -> int:
        """Run every step due at ``now_us`` (default: the clock), or at most ``limit``;
        how many ran.

        With ``rest``, between two full batches while ingest is busy it is called with the
        seconds to rest so the work takes at most ``settings.share`` of the time
        (:meth:`_pace`); a true answer stops the run (``threading.Event.wait`` fits)."""
        service, s = self.service, self.settings
        ran = 0
        if rest is not None:
            self._mark = service.read(store.ingest_mark)
        while True:
            began = self.timer()
            now = service.clock() if now_us is None else now_us
            size = s.batch if limit is None else min(s.batch, limit - ran)
            if size <= 0:
                return ran
            # One transaction claims a batch and plans every step of it: consent, exits,
            # caps and quiet hours are checked now, and tasks, webhooks, postponements and
            # exits are done; the e-mails are then sent over one connection, and their
            # outcomes recorded every ``record_every`` sends, in one transaction each.
            claimed, jobs = service.write(
                lambda conn, now=now, size=size: self._claim_and_plan(conn, now, size)
            )
            self._send_all(jobs, now)
            ran += claimed
            if claimed < size or (limit is not None and ran >= limit):
                return ran
            if self._pace(rest, began):
                return ran

    def sweep(self, rest: Callable[[float], bool] | None = None, pages: int | None = None) -> bool:
        """Enrol existing leads that satisfy a standing condition of the playbook in force:
        a sweep over every lead in pages of ``settings.sweep_page``, one transaction each,
        its progress a ``nurture_sweep`` job of that playbook version (made on the first
        call after a publish). At most ``pages`` pages, paced as :meth:`run_due`; whether
        there is more to do."""
        if not self.service.read(self._sweep_pending):  # the usual case: no write
            return False
        if rest is not None:
            self._mark = self.service.read(store.ingest_mark)
        while True:
            began = self.timer()
            more = self.service.write(lambda conn: self._sweep_page(conn, self.service.clock()))
            if not more:
                return False
            if pages is not None:
                pages -= 1
                if pages <= 0:
                    return True
            if self._pace(rest, began):
                return True

    def _pace(self, rest: Callable[[float], bool] | None, began: float) -> bool:
        """After a full batch or page: while ingest is busy (events arrived since the last
        look, from any process), rest so that the work takes at most ``settings.share``
        of the time; while it is quiet, go on at once. Whether ``rest`` said stop."""
        s = self.settings
        if rest is None or s.share >= 1:
            return False
        mark = self.service.read(store.ingest_mark)
        busy, self._mark = mark != self._mark, mark
        if not busy:
            return False
        return rest((self.timer() - began) * (1 - s.share) / s.share)

    def _sweep_pending(self, conn: Connection) -> bool:
        """Whether the playbook in force has standing conditions whose sweep is not done."""
        version, book = self.service.playbooks.active(conn)
        if not plan.standing(book.nurture.sequences):
            return False
        query = sa.select(jobs.c.status).where(
            jobs.c.kind == SWEEP, jobs.c.playbook_version == version
        )
        status = conn.execute(query.order_by(jobs.c.id.desc()).limit(1)).scalar()
        return status is None or status == "running"

    def _sweep_page(self, conn: Connection, now: int) -> bool:
        version, book = self.service.playbooks.active(conn)
        query = sa.select(jobs).where(jobs.c.kind == SWEEP, jobs.c.playbook_version == version)
        job = conn.execute(query.order_by(jobs.c.id.desc()).limit(1)).first()
        if job is None:
            if not plan.standing(book.nurture.sequences):
                return False
            conn.execute(
                jobs.update()
                .where(jobs.c.kind == SWEEP, jobs.c.status == "running")
                .values(status="superseded", finished_us=now)
            )
            total = conn.execute(sa.select(sa.func.count()).select_from(leads)).scalar_one()
            conn.execute(
                jobs.insert().values(
                    kind=SWEEP,
                    status="running",
                    playbook_version=version,
                    done=0,
                    total=total,
                    created_us=now,
                    result={"after": "", "enrolled": 0},
                )
            )
            job = conn.execute(query.order_by(jobs.c.id.desc()).limit(1)).one()
        if job.status != "running":
            return False
        state = dict(job.result or {})
        looked, last, made = sweep_page(
            conn, book, version, str(state.get("after", "")), self.settings.sweep_page, now
        )
        values: dict[str, Any] = {
            "done": min(job.total, job.done + looked) if last is not None else job.total,
            "result": {"after": last or "", "enrolled": int(state.get("enrolled", 0)) + made},
        }
        if last is None:
            values.update(status="done", finished_us=now)
        conn.execute(jobs.update().where(jobs.c.id == job.id).values(**values))
        return last is not None

    def _claim_and_plan(
        self, conn: Connection, now: int, size: int | None = None
    ) -> tuple[int, list[Job | EventJob]]:
        size = self.settings.batch if size is None else size
        claimed = store.claim_due(conn, now, int(self.settings.lease * 1e6), size)
        if not claimed:
            return 0, []
        return len(claimed), self._plan_batch(conn, claimed, now)

    def _send_all(self, jobs: Sequence[Job | EventJob], now: int) -> None:
        for job in jobs:
            if isinstance(job, EventJob):
                self._record_event(job, now)
        mails = [job for job in jobs if isinstance(job, Job)]
        if not mails:
            return
        pending: list[tuple[Job, str, str | None]] = []
        with self.service.small_writes() as mark:
            for job in mails:
                try:
                    # Built outside the transaction: the messages are bytes made here, and
                    # nothing of them needs the store.
                    assert self._links is not None
                    message = mail.build(
                        job.rendered,
                        key=job.key,
                        sender=self.settings.sender,
                        to=job.to,
                        links=self._links,
                        postal_address=self.settings.postal_address,
                        now_us=job.planned_us,
                    )
                    mailer = self.settings.mailer
                    status = (mailer.send(message, job.to) if mailer else "") or "sent"
                except Exception as exc:  # recorded, retried after a backoff
                    pending.append((job, "failed", f"{type(exc).__name__}: {exc}"[:300]))
                else:
                    # Marked before the next send: a kill from here on never sends it again.
                    mark(
                        lambda conn, job=job, status=status: store.mark_sent(
                            conn, job.key, status, job.subject, now
                        )
                    )
                    pending.append((job, status, None))
                if len(pending) >= self.settings.record_every:
                    done, pending = pending, []
                    self.service.write(lambda conn, done=done: self._record(conn, done, now))
            if pending:
                self.service.write(lambda conn: self._record(conn, pending, now))

    def _record(
        self, conn: Connection, outcomes: Sequence[tuple[Job, str, str | None]], now: int
    ) -> None:
        """The outcomes of sends, in one transaction: each sent step's enrolment moved on
        (unless it ended meanwhile: unsubscribed while being sent; the step's own record
        was marked sent as it went, :func:`store.mark_sent`), each failure recorded."""
        sent = [(job, status) for job, status, error in outcomes if error is None]
        current = store.enrolments_by_id(conn, [job.enrolment_id for job, _ in sent])
        _, book = self.service.playbooks.active(conn)
        moves = _Moves()
        for job, _ in sent:
            enrolment = current.get(job.enrolment_id)
            if enrolment is None or enrolment.status != store.ACTIVE or enrolment.step != job.step:
                continue
            seq = book.nurture.sequence(enrolment.sequence)
            if seq is not None:
                moves.advance(seq, enrolment, now)
        moves.flush(conn, now)
        for job, _, error in outcomes:
            if error is not None:
                self._failed(conn, job, error, now)

    def _plan_batch(
        self, conn: Connection, claimed: Sequence[store.Enrolment], now: int
    ) -> list[Job | EventJob]:
        """Plan the claimed enrolments' steps with a few statements for the whole batch:
        the leads, their blocks and recent e-mails read at once, the records of the
        e-mail steps made at once, the enrolments moved at once. Other kinds of steps
        (rare) are planned one by one (:meth:`_plan`)."""
        _, book = self.service.playbooks.active(conn)
        rows = store.lead_rows(conn, [e.lead_id for e in claimed])
        moves = _Moves()
        jobs: list[Job | EventJob] = []
        mailing: list[tuple[store.Enrolment, NurtureSequence, Any, LeadState, str]] = []
        for enrolment in claimed:
            seq = book.nurture.sequence(enrolment.sequence)
            if enrolment.step is None:
                continue
            if seq is None or enrolment.step >= len(seq.steps):
                moves.end(enrolment.id, plan.EXITED, "sequence_changed")
                continue
            row = rows.get(enrolment.lead_id)
            if row is None:
                moves.end(enrolment.id, plan.EXITED, "lead_gone")
                continue
            reason = plan.exit_reason(seq, row.temperature, row.stage)
            if reason is not None:
                moves.end(enrolment.id, plan.EXITED, reason)
                continue
            if seq.steps[enrolment.step].email is None:
                job = self._plan(conn, enrolment.id, now)
                if job is not None:
                    jobs.append(job)
                continue
            address = consent.email_address(enrolment.lead_id, row.attributes or {})
            mailing.append((enrolment, seq, row, LeadState.from_dict(row.state), address or ""))
        if mailing:
            jobs += self._plan_emails(conn, book, mailing, moves, now)
        moves.flush(conn, now)
        return jobs

    def _plan_emails(
        self,
        conn: Connection,
        book: Playbook,
        mailing: list[tuple[store.Enrolment, NurtureSequence, Any, LeadState, str]],
        moves: _Moves,
        now: int,
    ) -> list[Job | EventJob]:
        lead_ids = [e.lead_id for e, *_ in mailing]
        blocks = store.blocks_of(conn, lead_ids)
        recent = store.sent_times_of(conn, lead_ids, now - pressure.WEEK_US)
        planned_now: dict[str, list[int]] = defaultdict(list)  # e-mails of this batch
        winners: dict[tuple[str, int], int | None] = {}
        quiet = book.nurture.quiet_hours
        caps = book.nurture.caps.get("email")
        wanted: list[dict[str, Any]] = []
        for enrolment, seq, row, state, address in mailing:
            assert enrolment.step is not None
            step = seq.steps[enrolment.step]
            assert step.email is not None
            refusal = consent.contact_refusal(
                "email",
                suppressed=state.suppressed,
                consent=row.consent,
                blocks=blocks.get(enrolment.lead_id, {}),
                address=address,
            )
            if refusal is not None:
                moves.end(enrolment.id, plan.EXITED, refusal)
                continue
            attributes = row.attributes or {}
            zone = (
                pressure.zone_of(quiet, attributes)
                if quiet is not None
                else pressure.ZoneInfo("UTC")
            )
            own = store.step_key(enrolment.id, enrolment.step)
            sent = [t for key, t in recent.get(enrolment.lead_id, ()) if key != own]
            sent += planned_now[enrolment.lead_id]
            allowed = pressure.next_send_at(now, sent, caps, quiet, zone)
            if allowed > now:
                moves.postpone(enrolment.id, allowed)
                continue
            count = len(step.email.variants)
            won = None
            if count > 1:
                spot = (seq.name, enrolment.step)
                if spot not in winners:
                    winners[spot] = _variant_winner(
                        conn, seq.name, enrolment.step, count, step.email.min_sends
                    )
                won = winners[spot]
            variant = variants.choose(count, won, self.rand())
            planned_now[enrolment.lead_id].append(now)
            wanted.append(
                store.step_values(enrolment, enrolment.step, "email", "planned", now, variant)
            )
        records = store.plan_steps(conn, wanted)
        by_key = {r["key"]: r for r in wanted}
        reps: dict[str, Any] | None = None
        jobs: list[Job | EventJob] = []
        skipped: list[tuple[str, str, str | None]] = []
        for enrolment, seq, row, state, address in mailing:
            assert enrolment.step is not None
            key = store.step_key(enrolment.id, enrolment.step)
            if key not in by_key:
                continue  # refused or postponed above
            record = records[key]
            if record.status in store.SENT_STATUSES:  # sent before a crash cut it short
                moves.advance(seq, enrolment, now)
                continue
            if self.settings.mailer is None:
                skipped.append((record.key, "skipped", None))
                moves.advance(seq, enrolment, now)
                continue
            owner = None
            if row.owner:
                if reps is None:
                    reps = {r.id: r for r in actions.active_reps(conn)}
                rep = reps.get(row.owner)
                owner = {
                    "id": row.owner,
                    "name": rep.name if rep else None,
                    "email": rep.email if rep else None,
                }
            ctx = mail.context(
                enrolment.lead_id,
                row.temperature,
                row.stage,
                row.attributes or {},
                owner,
                top_interests(book, state),
                self.settings.public_url,
            )
            email_step = seq.steps[enrolment.step].email
            assert email_step is not None
            try:
                rendered = mail.render(email_step, record.variant or 0, ctx)
            except Exception as exc:  # a template that fails on this lead: not retried
                store.finish_step(conn, record.key, "failed", now, error=f"template: {exc}"[:300])
                moves.end(enrolment.id, plan.EXITED, "template_error")
                continue
            self._links_in(conn, now)
            jobs.append(Job(enrolment.id, enrolment.step, record.key, address, rendered, now))
        if skipped:
            for key, status, _ in skipped:
                store.finish_step(conn, key, status, now, error="no SMTP configured")
        return jobs

    def _record_event(self, job: EventJob, now: int) -> None:
        """Track the step's event through ingest, as any client would: its points and
        stage come from the playbook, and nurture's own exits react to it. The message id
        is the step's key, so a rerun after a crash records it once."""
        from pyrometer.service.ingest import ingest

        props = {"sequence": job.sequence, "step": job.step}
        user, anonymous = (None, job.lead_id) if job.visitor else (job.lead_id, None)
        try:
            ingest(
                self.service,
                [Track(f"nurture-{job.key}", job.event, now, user, anonymous, props)],
                [],
            )
        except Exception as exc:  # recorded, retried after a backoff
            error = f"{type(exc).__name__}: {exc}"[:300]
            self.service.write(lambda conn: self._failed(conn, job, error, now))
            return
        self.service.write(lambda conn: self._done(conn, job, now))

    def _done(self, conn: Connection, job: EventJob, now: int) -> None:
        store.finish_step(conn, job.key, "done", now)
        enrolment = store.enrolment(conn, job.enrolment_id)
        if enrolment is None or enrolment.status != store.ACTIVE or enrolment.step != job.step:
            return  # the event itself ended the sequence (a stage past its exit)
        _, book = self.service.playbooks.active(conn)
        seq = book.nurture.sequence(enrolment.sequence)
        if seq is not None:
            self._advance(conn, seq, enrolment, now)

    def _plan(self, conn: Connection, enrolment_id: int, now: int) -> Job | EventJob | None:
        """One enrolment's step other than an e-mail (an until time-out, points, stage, a
        task or a webhook), with everything it needs read on its own."""
        enrolment = store.enrolment(conn, enrolment_id)
        if enrolment is None or enrolment.status != store.ACTIVE or enrolment.step is None:
            return None
        _, book = self.service.playbooks.active(conn)
        seq = book.nurture.sequence(enrolment.sequence)
        if seq is None or enrolment.step >= len(seq.steps):
            store.end(conn, enrolment.id, plan.EXITED, "sequence_changed", now)
            return None
        row = store.lead_rows(conn, [enrolment.lead_id]).get(enrolment.lead_id)
        if row is None:
            store.end(conn, enrolment.id, plan.EXITED, "lead_gone", now)
            return None
        reason = plan.exit_reason(seq, row.temperature, row.stage)
        if reason is not None:
            store.end(conn, enrolment.id, plan.EXITED, reason, now)
            return None
        step = seq.steps[enrolment.step]
        state = LeadState.from_dict(row.state)
        if step.until is not None:  # its time-out passed without the event
            store.plan_step(conn, enrolment, enrolment.step, "until", "timed_out", now)
            outcome = plan.timed_out(seq, enrolment.step, now)
            if isinstance(outcome, str):
                store.end(conn, enrolment.id, plan.EXITED, outcome, now)
            elif outcome.step is None:
                store.move_to(conn, enrolment.id, enrolment.step, None)
                store.end(conn, enrolment.id, plan.COMPLETED, None, now)
            else:
                store.move_to(conn, enrolment.id, outcome.step, outcome.due_us)
            return None
        if step.event is not None:  # points or stage: not a contact, no consent needed
            record = store.plan_step(conn, enrolment, enrolment.step, step.kind, "planned", now)
            if record.status == "done":  # recorded before a crash cut the run short
                self._advance(conn, seq, enrolment, now)
                return None
            visitor = bool(identity_store.visitors_among(conn, [enrolment.lead_id]))
            return EventJob(
                enrolment.id,
                enrolment.step,
                record.key,
                enrolment.lead_id,
                step.event,
                seq.name,
                visitor,
            )
        if step.kind in ("task", "webhook"):
            # Consent covers every automated action: no task or webhook for a blocked lead.
            refusal = consent.contact_refusal(
                "any",
                suppressed=state.suppressed,
                consent=row.consent,
                blocks=store.blocks(conn, enrolment.lead_id),
            )
            if refusal is not None:
                store.end(conn, enrolment.id, plan.EXITED, refusal, now)
                return None
            store.plan_step(conn, enrolment, enrolment.step, step.kind, "done", now)
            outbox.enqueue(conn, [self._note(seq, step, enrolment, row, now)], now)
            self._advance(conn, seq, enrolment, now)
            return None
        raise AssertionError("e-mail steps are planned in batches (_plan_emails)")

    def _note(
        self, seq: NurtureSequence, step: Any, enrolment: store.Enrolment, row: Any, now: int
    ) -> Notification:
        lead = actions.LeadSnapshot(
            enrolment.lead_id, row.attributes or {}, row.owner, row.temperature, row.stage, 0.0
        )
        data = actions.lead_data(lead)
        data["nurture"] = {"sequence": seq.name, "step": enrolment.step}
        if step.task is not None:
            data["task"] = {
                "title": step.task.title,
                "owner": row.owner,
                "due_at": iso(now + step.task.due_us),
            }
            return Notification("nurture.task", enrolment.lead_id, data)
        data["nurture"]["name"] = step.webhook
        return Notification("nurture.webhook", enrolment.lead_id, data)

    def _advance(
        self, conn: Connection, seq: NurtureSequence, enrolment: store.Enrolment, now: int
    ) -> None:
        assert enrolment.step is not None
        position = plan.after(seq, enrolment.step, now)
        if position.step is None:
            store.move_to(conn, enrolment.id, enrolment.step, None)
            store.end(conn, enrolment.id, plan.COMPLETED, None, now)
        else:
            store.move_to(conn, enrolment.id, position.step, position.due_us)

    def _failed(self, conn: Connection, job: Job | EventJob, error: str, now: int) -> None:
        store.finish_step(conn, job.key, "failed", now, error=error)
        enrolment = store.enrolment(conn, job.enrolment_id)
        if enrolment is None or enrolment.status != store.ACTIVE:
            return
        attempts = enrolment.attempts + 1
        if attempts >= self.settings.max_attempts:
            store.end(conn, enrolment.id, plan.EXITED, "send_failed", now)
            return
        wait = min(3600.0, self.settings.backoff * 2 ** (attempts - 1))
        store.postpone(conn, enrolment.id, now + int(wait * 1e6), failed=True)


class NurtureRunner:
    """A daemon thread running due steps: woken when an enrolment is made, else every
    ``poll`` seconds or at the next due time. One process of a store runs it (a leader
    lock, as the SLA watcher's)."""

    def __init__(self, service: Service, settings: NurtureSettings | None = None) -> None:
        self.runner = Runner(service, settings or NurtureSettings.from_env())
        self._service = service
        self._lock = SchedulerLock(service, _LOCK_ID, "nurture")
        self._wake = service.signal(SIGNAL)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyrometer-nurture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        mailer = self.runner.settings.mailer
        if isinstance(mailer, SmtpMailer):
            mailer.close()

    def _run(self) -> None:
        poll = self.runner.settings.poll
        try:
            while not self._stop.is_set():
                self._wake.clear()
                wait = poll
                try:
                    if self._lock.try_acquire():
                        self.runner.run_due(rest=self._stop.wait)
                        # A few pages of a sweep for standing conditions, between rounds
                        # of due steps (it made enrolments of its own, due at once).
                        sweeping = self.runner.sweep(rest=self._stop.wait, pages=5)
                        due = self._service.read(store.next_due_us)
                        if due is not None:
                            wait = min(poll, max(0.05, (due - self._service.clock()) / 1e6))
                        if sweeping:
                            wait = 0.0
                except Exception:  # a database blip must not stop the runner for good
                    log.warning("nurture round failed; trying again", exc_info=True)
                self._wake.wait(wait)
        finally:
            self._lock.release()


# ---------------------------------------------------------------- what comes back


class UnknownSend(LookupError):
    """A link or report naming no send this store made."""


def _send_of(service: Service, links: Links, purpose: str, token: str) -> tuple[store.StepRow, Any]:
    payload = links.read(purpose, token)
    key = payload[0] if isinstance(payload, list) else payload
    row = service.read(lambda conn: store.step_by_key(conn, str(key)))
    if row is None:
        raise UnknownSend("no such e-mail")
    return row, payload


def _track(
    service: Service, row: store.StepRow, name: str, message_id: str, props: dict[str, Any]
) -> None:
    from pyrometer.service.ingest import ingest

    props = {"sequence": row.sequence, "step": row.step, **props}
    if row.variant is not None:
        props["variant"] = row.variant
    ingest(service, [Track(message_id, name, service.clock(), row.lead_id, None, props)], [])


def record_open(service: Service, links: Links, token: str) -> None:
    """The pixel was loaded: the send's first open, and an ``email_open`` event."""
    row, _ = _send_of(service, links, OPEN, token)
    now = service.clock()
    service.write(lambda conn: store.mark(conn, row.key, "opened_us", now))
    _track(service, row, "email_open", f"nurture-open-{row.key}", {})


def record_click(service: Service, links: Links, token: str) -> str:
    """A tracked link was followed: an ``email_click`` event; the URL to redirect to."""
    row, payload = _send_of(service, links, CLICK, token)
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[1], str)):
        raise BadLink("not a valid link")
    url = payload[1]
    now = service.clock()

    def work(conn: Connection) -> None:
        store.mark(conn, row.key, "clicked_us", now)
        store.mark(conn, row.key, "opened_us", now)  # a click is also an open

    service.write(work)
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    _track(service, row, "email_click", f"nurture-click-{row.key}-{digest}", {"url": url})
    return url


def suppress(service: Service, lead_id: str, reason: str, channel: str = "email") -> int:
    """Block the channel with ``reason`` and end every sequence the lead is in, at once;
    an unsubscribe is also tracked as the ``unsubscribe`` event the playbook scores and
    suppresses on. How many enrolments ended."""
    from pyrometer.service.ingest import ingest

    now = service.clock()

    def work(conn: Connection) -> int:
        store.block(conn, lead_id, channel, reason, now)
        return store.end_all(conn, lead_id, reason, now)

    ended = service.write(work)
    if reason == "unsubscribed":
        mid = "nurture-unsubscribe-" + hashlib.sha256(lead_id.encode()).hexdigest()[:24]
        ingest(service, [Track(mid, "unsubscribe", now, lead_id, None, {"channel": channel})], [])
    return ended


class UnknownLead(LookupError):
    pass


class NotManual(ValueError):
    """A block the lead or its mail provider set (unsubscribed, bounced, complained):
    it is not lifted by hand."""


CHANNELS = ("email", "*")


def set_block(
    service: Service, lead_id: str, channel: str, reason: str = "manual"
) -> dict[str, Any]:
    """An operator blocks the lead on ``channel`` (``*``: every automated action): as a
    bounce or unsubscribe does, its sequences end at once and it is enrolled in no more
    while blocked. A block already there keeps its reason. The lead's blocks now."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
    if reason not in consent.BLOCK_REASONS:
        raise ValueError(f"reason must be one of {', '.join(consent.BLOCK_REASONS)}")
    _known(service, lead_id)
    suppress(service, lead_id, reason, channel)
    return service.read(lambda conn: store.blocks(conn, lead_id))


def clear_block(service: Service, lead_id: str, channel: str) -> dict[str, str]:
    """Lift a ``manual`` block (the others are the lead's own word or its mailbox's and
    stay); sequences that ended do not start again, new triggers enrol it. The lead's
    blocks now."""
    _known(service, lead_id)

    def work(conn: Connection) -> dict[str, str]:
        found = store.blocks(conn, lead_id)
        reason = found.get(channel)
        if reason is None:
            raise UnknownLead(f"no {channel!r} block on lead {lead_id!r}")
        if reason != "manual":
            raise NotManual(f"the {channel!r} block is {reason!r}, not manual: it stays")
        store.unblock(conn, lead_id, channel)
        return store.blocks(conn, lead_id)

    return service.write(work)


def _exists(service: Service, lead_id: str) -> bool:
    found = service.read(
        lambda conn: conn.execute(
            sa.select(leads.c.lead_id).where(leads.c.lead_id == lead_id)
        ).first()
    )
    return found is not None


def _known(service: Service, lead_id: str) -> None:
    if not _exists(service, lead_id):
        raise UnknownLead(f"lead {lead_id!r}")


def unsubscribe(service: Service, links: Links, token: str) -> str:
    """The link or the one-click POST: the lead is suppressed at once; its id."""
    row, _ = _send_of(service, links, UNSUBSCRIBE, token)
    suppress(service, row.lead_id, "unsubscribed")
    return row.lead_id


def lead_of_message_id(message_id: str) -> str | None:
    """``<nurture.E.S.h@pyrometer>`` → the send key ``E:S``."""
    text = message_id.strip().strip("<>")
    head = text.split("@", 1)[0].split(".")
    if len(head) >= 3 and head[0] == "nurture" and head[1].isdigit() and head[2].isdigit():
        return f"{head[1]}:{head[2]}"
    return None


def report_bounce(
    service: Service, kind: str, lead_id: str | None = None, message_id: str | None = None
) -> str:
    """A mail provider reports a bounce or complaint: the lead's e-mail is blocked and
    its sequences end. Names the lead by id or by our Message-ID; returns the lead id."""
    if lead_id is None and message_id is not None:
        key = lead_of_message_id(message_id)
        row = service.read(lambda conn: store.step_by_key(conn, key)) if key else None
        if row is None:
            raise UnknownSend(f"e-mail with Message-ID {message_id!r}")
        lead_id = row.lead_id
    if lead_id is None:
        raise UnknownSend("give lead_id or message_id")
    if not _exists(service, lead_id):
        raise UnknownSend(f"lead {lead_id!r}")
    suppress(service, lead_id, {"bounce": "bounced", "complaint": "complained"}[kind])
    return lead_id


# ---------------------------------------------------------------- reads


def lead_nurture(conn: Connection, lead_id: str) -> dict[str, Any]:
    """The lead's enrolments and the steps each ran, for ``GET /v1/leads/{id}``."""
    mine = store.enrolments_of(conn, [lead_id]).get(lead_id, [])
    steps = store.steps_of(conn, [e.id for e in mine])
    blocks = store.blocks(conn, lead_id)
    out = []
    for e in mine:
        out.append(
            {
                "sequence": e.sequence,
                "status": e.status,
                "enrolled_at": iso(e.enrolled_us),
                "cause": e.cause,
                "next_step": e.step if e.status == store.ACTIVE else None,
                "next_due_at": iso(e.next_due_us) if e.status == store.ACTIVE else None,
                "ended_at": iso(e.ended_us),
                "exit_reason": e.exit_reason,
                "steps": [
                    {
                        "step": s.step,
                        "kind": s.kind,
                        "status": s.status,
                        "variant": s.variant,
                        "subject": s.subject,
                        "at": iso(s.done_us),
                        "opened_at": iso(s.opened_us),
                        "clicked_at": iso(s.clicked_us),
                    }
                    for s in steps.get(e.id, [])
                ],
            }
        )
    return {"do_not_contact": blocks, "enrolments": out}


def sequence_report(service: Service, name: str) -> dict[str, Any] | None:
    """``GET /v1/sequences/{name}``: the sequence's counts."""

    def work(conn: Connection) -> dict[str, Any] | None:
        _, book = service.playbooks.active(conn)
        seq = book.nurture.sequence(name)
        if seq is None:
            return None
        stats = store.sequence_stats(conn, name)
        converted = conn.execute(
            sa.select(sa.func.count()).where(
                store.E.sequence == name,
                store.E.exit_reason.in_(
                    [f"stage:{s}" for s in seq.exit.stages]
                    + [f"temperature:{t}" for t in seq.exit.temperatures]
                ),
            )
        ).scalar()
        replies = stats["exits"].get("event:email_reply", 0)
        steps = []
        for index, step in enumerate(seq.steps):
            rows = [r for r in stats["steps"] if r["step"] == index]
            entry: dict[str, Any] = {
                "step": index,
                "kind": step.kind,
                "waiting": stats["waiting"].get(index, 0),
                "by_status": {},
            }
            for r in rows:
                entry["by_status"][r["status"]] = (
                    entry["by_status"].get(r["status"], 0) + r["count"]
                )
            if step.email is not None:
                entry["variants"] = []
                for v, subject in enumerate(step.email.variants):
                    mine = [
                        r
                        for r in rows
                        if (r["variant"] or 0) == v and r["status"] in store.SENT_STATUSES
                    ]
                    sends = sum(r["count"] for r in mine)
                    opens = sum(r["opens"] for r in mine)
                    clicks = sum(r["clicks"] for r in mine)
                    low, high = variants.Tally(sends, opens).interval()
                    entry["variants"].append(
                        {
                            "subject": subject,
                            "sends": sends,
                            "opens": opens,
                            "clicks": clicks,
                            "open_rate": opens / sends if sends else None,
                            "open_rate_95": [round(low, 4), round(high, 4)],
                        }
                    )
                if len(step.email.variants) > 1:
                    entry["winner"] = _variant_winner(
                        conn, name, index, len(step.email.variants), step.email.min_sends
                    )
            steps.append(entry)
        total = sum(stats["by_status"].values())
        sweep = None
        if seq.enrol.condition is not None:  # the sweep of existing leads after a publish
            job = conn.execute(
                sa.select(jobs).where(jobs.c.kind == SWEEP).order_by(jobs.c.id.desc()).limit(1)
            ).first()
            if job is not None:
                sweep = {
                    "job_id": job.id,
                    "playbook_version": job.playbook_version,
                    "status": job.status,
                    "done": job.done,
                    "total": job.total,
                }
        return {
            "name": name,
            "description": seq.description,
            "enrolled": total,
            "by_status": stats["by_status"],
            "exits": stats["exits"],
            "opens": sum(r["opens"] for r in stats["steps"]),
            "clicks": sum(r["clicks"] for r in stats["steps"]),
            "replies": replies,
            "conversions": int(converted or 0),
            "steps": steps,
            "sweep": sweep,
        }

    return service.read(work)
