"""Races the transaction design must win, on both stores: an identify while the visitor
keeps sending events, and a playbook publish while events keep arriving."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook_text, parse_playbook
from pyrometer.core.reference import score_lead_reference
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Identify, Track
from pyrometer.service.reads import get_lead
from pyrometer.service.rescore import publish, run_job
from pyrometer.service.runtime import Service
from pyrometer.store.tables import events, leads
from service.conftest import START, Clock

NAMES = ("page_view", "pricing_page_view", "email_click", "webinar_attended")


def _together(*jobs: Callable[[], None]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], None]) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as exc:  # collected and re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def test_identify_while_the_visitor_keeps_sending(service: Service, clock: Clock) -> None:
    sent: list[Event] = []
    lock = threading.Lock()

    def visitor(number: int) -> Callable[[], None]:
        def send() -> None:
            for i in range(30):
                ts = START - (number * 31 + i) * 60_000_000
                name = NAMES[(number + i) % len(NAMES)]
                track = Track(f"a{number}-{i}", name, ts, anonymous_id="anon")
                ingest(service, [track], [])
                with lock:
                    sent.append(Event.create("ann", name, ts, track.message_id))

        return send

    def identify() -> None:
        ingest(service, [], [Identify("id-1", "ann", START, anonymous_id="anon")])

    _together(visitor(0), visitor(1), visitor(2), identify)
    stray = service.read(
        lambda conn: conn.execute(
            sa.select(sa.func.count()).select_from(events).where(events.c.lead_id != "ann")
        ).scalar()
    )
    assert stray == 0
    assert service.read(lambda conn: conn.execute(sa.select(leads.c.lead_id)).scalars().all()) == [
        "ann"
    ]
    expected = score_lead_reference(
        parse_playbook(default_playbook_text()), "ann", sent, {}, clock.now_us
    )
    lead = get_lead(service, "ann")
    assert lead is not None
    assert lead["event_count"] == len(sent) == 90
    assert abs(lead["score"] - expected.score) < 1e-4


def test_publish_while_events_arrive(service: Service, clock: Clock) -> None:
    text = default_playbook_text().replace("hot: 50", "hot: 40").replace("points: 10", "points: 7")
    book = parse_playbook(text)
    sent: dict[str, list[Event]] = {f"L{n}": [] for n in range(12)}
    for lead_id in sent:  # leads with history before the publish
        track = Track(f"{lead_id}-0", "pricing_page_view", START - 10**9, user_id=lead_id)
        ingest(service, [track], [])
        sent[lead_id].append(Event.create(lead_id, track.name, track.ts_us, track.message_id))

    def writer(number: int) -> Callable[[], None]:
        def send() -> None:
            for i in range(25):
                lead_id = f"L{(number * 5 + i) % 12}"
                track = Track(f"w{number}-{i}", NAMES[i % 4], START - i * 10**7, user_id=lead_id)
                ingest(service, [track], [])
                sent[lead_id].append(
                    Event.create(lead_id, track.name, track.ts_us, track.message_id)
                )

        return send

    job: dict[str, int] = {}

    def publisher() -> None:
        job.update(publish(service, text))
        run_job(service, job["job_id"])

    _together(writer(0), writer(1), writer(2), publisher)
    for lead_id, lead_events in sent.items():
        expected = score_lead_reference(book, lead_id, lead_events, {}, clock.now_us)
        lead = get_lead(service, lead_id)
        assert lead is not None and lead["playbook_version"] == 2
        assert lead["event_count"] == len(lead_events)
        assert abs(lead["score"] - expected.score) < 1e-4, lead_id
        stored = service.read(
            lambda conn, lid=lead_id: conn.execute(
                sa.select(leads.c.playbook_version).where(leads.c.lead_id == lid)
            ).scalar()
        )
        assert stored == 2


def test_a_dead_pooled_connection_is_replaced_not_an_error(service: Service) -> None:
    """Connections are not pinged when taken from the pool: one the database dropped
    (a restart) fails its first statement, and the transaction runs again on a new one."""
    if service.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: a server that can drop a connection")
    service.engine.dispose()
    with service.engine.connect() as conn:  # the pool's only connection
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    admin = sa.create_engine(service.engine.url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    admin.dispose()
    ingest(service, [Track("after-restart", "demo_request", START, user_id="ann")], [])
    assert (
        service.read(
            lambda conn: conn.execute(sa.select(sa.func.count()).select_from(events)).scalar()
        )
        == 1
    )
