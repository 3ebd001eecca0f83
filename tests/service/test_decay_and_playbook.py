"""Time and policy: decay transitions at their exact moments, and playbook publishing."""

from __future__ import annotations

import time

import sqlalchemy as sa
from fastapi.testclient import TestClient

from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook, default_playbook_text, parse_playbook
from pyrometer.core.reference import score_lead_reference
from pyrometer.service.decay import DecayScheduler, run_due
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Track
from pyrometer.service.reads import get_lead
from pyrometer.service.rescore import run_job
from pyrometer.service.runtime import Service
from pyrometer.store.tables import transitions
from service.conftest import START, Clock, Keys

DAY = 86_400
NAMES = ("demo_request", "pricing_page_view", "pricing_page_view", "pricing_page_view")


def _hot_lead(service: Service) -> list[Event]:
    tracks = [Track(f"m{i}", name, START + i, user_id="ann") for i, name in enumerate(NAMES)]
    ingest(service, tracks, [])
    return [Event.create("ann", t.name, t.ts_us, t.message_id) for t in tracks]


def _decay_rows(service: Service) -> list[tuple[int, str, str, str]]:
    query = (
        sa.select(transitions.c.at_us, transitions.c.kind, transitions.c.old, transitions.c.new)
        .where(transitions.c.cause == "decay")
        .order_by(transitions.c.at_us, transitions.c.kind)
    )
    return [tuple(row) for row in service.read(lambda conn: conn.execute(query).all())]


def test_decay_transitions_are_recorded_once_at_the_crossing_time(
    service: Service, clock: Clock
) -> None:
    events = _hot_lead(service)
    book = default_playbook()
    assert run_due(service) == 0  # nothing is due yet
    clock.advance(45 * DAY)
    assert run_due(service) == 1
    recorded = _decay_rows(service)
    assert [(kind, old, new) for _, kind, old, new in recorded] == [
        ("temperature", "hot", "warm"),
        ("stage", "mql", "lead"),
        ("temperature", "warm", "cold"),
    ]
    for at_us, kind, old, new in recorded:
        before = score_lead_reference(book, "ann", events, {}, at_us - 1)
        after = score_lead_reference(book, "ann", events, {}, at_us)
        assert str(getattr(before, kind)) == old and str(getattr(after, kind)) == new
    assert get_lead(service, "ann")["next_decay_change"] is None
    assert run_due(service) == 0
    # A new event does not record the same decay changes again.
    ingest(service, [Track("late", "email_open", clock.now_us, user_id="ann")], [])
    assert _decay_rows(service) == recorded


def test_an_event_after_an_unrecorded_crossing_records_it_at_its_time(
    service: Service, clock: Clock
) -> None:
    _hot_lead(service)
    clock.advance(3 * DAY)
    ingest(service, [Track("later", "email_open", clock.now_us, user_id="ann")], [])
    (row,) = _decay_rows(service)
    assert row[1:] == ("temperature", "hot", "warm")
    assert row[0] == (START // (DAY * 10**6) + 1) * DAY * 10**6  # the next midnight
    assert run_due(service) == 0


def test_history_loaded_late_gets_its_decay_transitions_at_their_times(
    service: Service, clock: Clock
) -> None:
    """Events from two months ago: the lead cooled back then, and that is recorded."""
    clock.advance(60 * DAY)
    events = _hot_lead(service)  # dated START, read 60 days later
    assert get_lead(service, "ann")["temperature"] == "cold"
    # Ingest recorded the crossings that were already due; the scheduler finds none left.
    assert run_due(service) == 0
    recorded = _decay_rows(service)
    assert [row[1:] for row in recorded] == [
        ("temperature", "hot", "warm"),
        ("stage", "mql", "lead"),
        ("temperature", "warm", "cold"),
    ]
    book = default_playbook()
    for at_us, kind, old, new in recorded:
        assert at_us < clock.now_us
        before = score_lead_reference(book, "ann", events, {}, at_us - 1)
        after = score_lead_reference(book, "ann", events, {}, at_us)
        assert str(getattr(before, kind)) == old and str(getattr(after, kind)) == new


def test_the_scheduler_thread_wakes_for_due_leads(service: Service, clock: Clock) -> None:
    _hot_lead(service)
    clock.advance(2 * DAY)
    scheduler = DecayScheduler(service)
    scheduler.start()
    try:
        deadline = time.monotonic() + 5
        while not _decay_rows(service) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert [row[1:] for row in _decay_rows(service)] == [("temperature", "hot", "warm")]


def test_publishing_a_playbook_rescores_every_lead(
    client: TestClient, keys: Keys, service: Service, clock: Clock
) -> None:
    _hot_lead(service)
    ingest(service, [Track("b1", "whitepaper_download", START, user_id="bob")], [])
    admin, read = Keys.bearer(keys.admin), Keys.bearer(keys.read)
    current = client.get("/v1/playbook", headers=read).json()
    assert current["version"] == 1 and "temperature:" in current["yaml"]

    broken = "decay: {half_life: 30d}\nengagement: []\ntemperature: {hot: 1, warm: 5}\n"
    checked = client.post("/v1/playbook/validate", json={"yaml": broken}, headers=read).json()
    assert checked["valid"] is False and checked["problems"]
    refused = client.post("/v1/playbook", json={"yaml": broken}, headers=admin)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][:2] == ["body", "yaml"]

    text = default_playbook_text().replace("hot: 50", "hot: 5").replace("warm: 20", "warm: 4")
    published = client.post("/v1/playbook", json={"yaml": text}, headers=admin)
    assert published.status_code == 202, published.text
    job = published.json()["job"]
    assert published.json()["version"] == 2 and job["total"] == 2 and job["status"] == "running"
    # Reads are right before the background job reaches a lead.
    assert client.get("/v1/leads/bob", headers=read).json()["temperature"] == "hot"
    run_job(service, job["id"])
    done = client.get(f"/v1/jobs/{job['id']}", headers=read).json()
    assert done["status"] == "done" and done["done"] == done["total"] == 2
    bob = client.get("/v1/leads/bob", headers=read).json()
    assert bob["playbook_version"] == 2 and bob["temperature"] == "hot"
    assert [(t["from"], t["to"], t["cause"]) for t in bob["transitions"]] == [
        ("cold", "hot", "playbook:v2")
    ]
    expected = score_lead_reference(
        parse_playbook(text),
        "bob",
        [Event.create("bob", "whitepaper_download", START, "b1")],
        {},
        clock.now_us,
    )
    assert bob["score"] == expected.score
    versions = client.get("/v1/playbook/versions", headers=read).json()
    assert [v["version"] for v in versions] == [2, 1]
    old = client.get("/v1/playbook/versions/1", headers=read).json()
    assert "hot: 50" in old["yaml"]
    # The listing filters by the new classes too.
    hot = client.get("/v1/leads", params={"temperature": "hot"}, headers=read).json()["items"]
    assert {x["lead_id"] for x in hot} == {"ann", "bob"}


def test_one_scheduler_per_store_however_many_processes(service: Service, store_url: str) -> None:
    # Two services on one store stand for two server processes: one scheduler leads, the
    # other waits, and takes over when the first stops.
    other = Service.open(store_url)
    first, second = DecayScheduler(service), DecayScheduler(other)
    try:
        assert first.leading
        assert not second.leading
        assert first.leading  # still ours
        first._lock.release()
        assert second.leading
        assert not first.leading
    finally:
        first._lock.release()
        second._lock.release()
        other.close()


def test_only_the_leading_process_resumes_rescore_jobs(service: Service, store_url: str) -> None:
    # Each server process of `serve --workers N` has a scheduler; the one that takes the
    # lead resumes the rescore jobs a stopped server left, and a process taking over from
    # one that ended resumes them again. The others leave them alone.
    other = Service.open(store_url)
    calls: list[str] = []
    first = DecayScheduler(service, lambda: calls.append("first"))
    second = DecayScheduler(other, lambda: calls.append("second"))

    def wait_for(expected: list[str]) -> None:
        deadline = time.monotonic() + 5
        while calls != expected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert calls == expected

    try:
        first.start()
        wait_for(["first"])
        second.start()
        time.sleep(1.5)  # the second polls the lock every second and stays behind
        assert calls == ["first"]
        first.stop()  # its process ends: the lock is released
        wait_for(["first", "second"])
    finally:
        first.stop()
        second.stop()
        other.close()
