"""Speed to lead (issue #12): touches stop a routed lead's clock, the SLA watcher records
breaches (and reassigns on request), and the report's figures, on SQLite and PostgreSQL.

Leads turn hot through the default playbook: contact_sales (25) + demo_request (20) +
trial_signup (20) = 65, hot at 50; reps are added with the service's ``add_rep``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi.testclient import TestClient

from pyrometer.api.app import create_app
from pyrometer.core.playbook import default_playbook_text
from pyrometer.core.timeutil import iso, parse_time_us
from pyrometer.service import leads as lead_changes
from pyrometer.service.ingest import SCORE_AHEAD_MIN, ingest
from pyrometer.service.inputs import Track
from pyrometer.service.reps import add_rep
from pyrometer.service.runtime import Service
from pyrometer.service.sla_watch import SlaWatcher, check_breaches
from pyrometer.service.touches import add_touch
from pyrometer.service.unknown_events import unknown_events_report
from pyrometer.store import assignments
from pyrometer.store.assignments import AssignmentRow
from pyrometer.store.tables import deliveries, leads, touches, webhooks
from pyrometer.store.touches import TouchRow, lead_touches
from service.conftest import Clock, Keys

MINUTE = 60_000_000
SECOND = 1_000_000


def rep(service: Service, rep_id: str, **more: Any) -> None:
    add_rep(
        service, {"id": rep_id, "name": rep_id.title(), "email": f"{rep_id}@example.com", **more}
    )


def hot_tracks(lead: str, at_us: int) -> list[Track]:
    return [
        Track(f"{lead}-{name}", name, at_us, user_id=lead)
        for name in ("contact_sales", "demo_request", "trial_signup")
    ]


def make_hot(service: Service, lead: str, at_us: int) -> None:
    ingest(service, hot_tracks(lead, at_us), [])


def in_force(service: Service, lead: str) -> AssignmentRow:
    return service.read(lambda conn: assignments.current(conn, [lead])[lead])


def history(service: Service, lead: str) -> list[AssignmentRow]:
    return service.read(lambda conn: assignments.history(conn, lead))


def touches_of(service: Service, lead: str) -> list[TouchRow]:
    return service.read(lambda conn: lead_touches(conn, lead))


def subscribe(service: Service, now_us: int) -> None:
    """A webhook for every event type, so notifications land in the outbox."""
    row = {
        "id": "wh_test",
        "url": "https://receiver.example/hook",
        "events": ["*"],
        "secret": "whsec_" + "A" * 32,
        "created_us": now_us,
    }
    service.write(lambda conn: conn.execute(webhooks.insert().values(**row)))


def queued(service: Service, kind: str) -> list[dict[str, Any]]:
    query = (
        sa.select(deliveries.c.payload)
        .where(deliveries.c.event_type == kind)
        .order_by(deliveries.c.id)
    )
    rows = service.read(lambda conn: conn.execute(query).scalars().all())
    return [orjson.loads(text)["data"] for text in rows]


def publish(service: Service, clock: Clock, old: str, new: str) -> None:
    text = default_playbook_text()
    assert old in text
    changed = text.replace(old, new)
    service.write(lambda conn: service.playbooks.publish(conn, changed, clock()))


def test_a_breach_fires_after_the_sla_and_not_before(service: Service, clock: Clock) -> None:
    rep(service, "kim")
    subscribe(service, clock())
    start = clock()
    make_hot(service, "ann", start)
    held = in_force(service, "ann")
    assert (held.rep_id, held.clock_us, held.sla_due_us) == ("kim", start, start + 5 * MINUTE)

    clock.now_us = start + 5 * MINUTE - 1
    assert check_breaches(service) == 0
    assert in_force(service, "ann").breached_us is None
    assert queued(service, "sla.breached") == []

    clock.now_us = start + 5 * MINUTE + 30 * SECOND
    assert check_breaches(service) == 1
    assert in_force(service, "ann").breached_us == clock()
    assert check_breaches(service) == 0  # once per clock
    (note,) = queued(service, "sla.breached")
    assert note["lead"]["id"] == "ann" and note["lead"]["owner"] == "kim"
    assert note["rep"] == {"id": "kim", "name": "Kim", "email": "kim@example.com"}
    assert note["clock_started_at"] == iso(start)
    assert note["sla_due_at"] == iso(start + 5 * MINUTE)
    assert note["late_seconds"] == 30.0 and note["on_breach"] == "notify"
    assert "reassigned_to" not in note
    # notify only: the lead stays with its rep, no new assignment
    assert [row.rule for row in history(service, "ann")] == ["round_robin"]


def test_a_touch_before_the_sla_stops_the_clock(
    service: Service, clock: Clock, client: TestClient, keys: Keys
) -> None:
    rep(service, "kim")
    admin = Keys.bearer(keys.admin)
    start = clock()
    make_hot(service, "ann", start)
    make_hot(service, "bob", start)

    clock.advance(120)
    made = client.post(
        "/v1/leads/ann/touches",
        json={"kind": "call", "rep": "kim", "outcome": "booked a demo"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["lead"] == "ann" and body["stopped_clock"] is True
    assert body["touch"]["kind"] == "call" and body["touch"]["rep"] == "kim"
    assert body["touch"]["at"] == iso(clock()) and body["touch"]["outcome"] == "booked a demo"
    assert body["clock"] == {
        "rep": "kim",
        "started_at": iso(start),
        "sla_due_at": iso(start + 5 * MINUTE),
        "seconds_to_first_touch": 120.0,
        "within_sla": True,
    }
    assert in_force(service, "ann").first_touch_us == start + 2 * MINUTE
    # A second touch stops nothing: the clock stopped at the first.
    again = client.post(
        "/v1/leads/ann/touches", json={"kind": "email", "rep": "kim"}, headers=admin
    )
    assert again.status_code == 201 and again.json()["stopped_clock"] is False
    # A touch dated before bob's clock started does not count.
    early = {"kind": "note", "rep": "kim", "at": iso(start - MINUTE)}
    before = client.post("/v1/leads/bob/touches", json=early, headers=admin)
    assert before.status_code == 201 and before.json()["stopped_clock"] is False
    assert in_force(service, "bob").first_touch_us is None

    clock.advance(600)
    assert check_breaches(service) == 1  # bob only
    assert in_force(service, "ann").breached_us is None
    assert in_force(service, "bob").breached_us == clock()
    assert [t.kind for t in touches_of(service, "ann")] == ["call", "email"]
    assert [t.event_id for t in touches_of(service, "ann")] == [None, None]


def test_the_touch_endpoint_refuses_bad_input_naming_the_field(
    service: Service, clock: Clock, client: TestClient, keys: Keys
) -> None:
    make_hot(service, "ann", clock())
    admin = Keys.bearer(keys.admin)

    def loc(body: dict[str, Any]) -> list[Any]:
        answer = client.post("/v1/leads/ann/touches", json=body, headers=admin)
        assert answer.status_code == 422, answer.text
        return [error["loc"] for error in answer.json()["detail"]]

    assert loc({"kind": "fax", "rep": "kim"}) == [["body", "kind"]]
    assert loc({"kind": "call"}) == [["body", "rep"]]
    assert loc({"kind": "call", "rep": "  "}) == [["body", "rep"]]
    assert loc({"kind": "call", "rep": "kim", "outcome": "x" * 2001}) == [["body", "outcome"]]
    assert loc({"kind": "call", "rep": "kim", "at": "1800-01-01T00:00:00Z"}) == [["body", "at"]]
    assert loc({"kind": "call", "rep": "kim", "at": "yesterday"}) == [["body", "at"]]
    future = iso(clock() + MINUTE)
    assert loc({"kind": "call", "rep": "kim", "at": future}) == [["body", "at"]]
    assert loc({"kind": "call", "rep": "kim", "colour": "red"}) == [["body", "colour"]]
    ok = {"kind": "call", "rep": "kim", "outcome": "y" * 2000}
    assert client.post("/v1/leads/ann/touches", json=ok, headers=admin).status_code == 201
    assert client.post("/v1/leads/nobody/touches", json=ok, headers=admin).status_code == 404
    for key in (keys.read, keys.ingest):
        refused = client.post("/v1/leads/ann/touches", json=ok, headers=Keys.bearer(key))
        assert refused.status_code == 403
    assert len(touches_of(service, "ann")) == 1


def test_reassign_on_breach_goes_to_the_other_rep_with_the_same_clock(
    service: Service, clock: Clock
) -> None:
    publish(service, clock, "on_breach: notify", "on_breach: reassign")
    rep(service, "ana")
    rep(service, "kim")
    subscribe(service, clock())
    start = clock()
    make_hot(service, "ann", start)
    assert in_force(service, "ann").rep_id == "ana"  # round-robin: tie, lowest id

    clock.now_us = start + 6 * MINUTE
    assert check_breaches(service) == 1
    first, second = history(service, "ann")
    assert first.rep_id == "ana" and first.breached_us == clock() and first.ended_us == clock()
    assert second.rep_id == "kim" and second.rule == "reassigned" and second.counts
    assert second.clock_us == start  # the buyer's wait does not restart
    assert second.sla_due_us == clock() + 5 * MINUTE  # a fresh 5 minutes for kim
    assert second.reason.startswith("SLA breached by Ana (60s late): reassigned;")
    owner = service.read(
        lambda conn: conn.execute(sa.select(leads.c.owner).where(leads.c.lead_id == "ann"))
    ).scalar_one()
    assert owner == "kim"
    (breach,) = queued(service, "sla.breached")
    assert breach["rep"]["id"] == "ana" and breach["reassigned_to"] == "kim"
    assigned = queued(service, "lead.assigned")
    assert [a["assignment"]["rep"]["id"] for a in assigned] == ["ana", "kim"]
    assert assigned[1]["assignment"]["previous_rep"] == "ana"
    assert assigned[1]["assignment"]["clock_started_at"] == iso(start)
    assert assigned[1]["lead"]["owner"] == "kim"

    # kim lets it run too: nobody who has not breached this clock is left, so it stays.
    clock.advance(6 * 60)
    assert check_breaches(service) == 1
    assert [row.rep_id for row in history(service, "ann")] == ["ana", "kim"]
    late = queued(service, "sla.breached")[1]
    assert late["rep"]["id"] == "kim" and late["reassigned_to"] is None
    assert late["not_reassigned"].startswith("no other rep can take it")
    # A touch now stops kim's clock (it carries the original start).
    touched = add_touch(service, "ann", "call", "kim")
    assert touched.stopped is not None and touched.stopped.clock_us == start


def test_a_sales_touch_event_stops_the_clock_like_the_endpoint(
    service: Service, clock: Clock
) -> None:
    rep(service, "kim")
    start = clock()
    make_hot(service, "ann", start)
    touch = Track(
        "touch-1",
        "sales_touch",
        start + MINUTE,
        user_id="ann",
        properties={"kind": "Meeting", "rep": "kim", "outcome": "intro call"},
    )
    clock.advance(90)
    assert ingest(service, [touch], []).accepted == 1
    (stored,) = touches_of(service, "ann")
    assert (stored.kind, stored.rep_id, stored.outcome, stored.event_id, stored.at_us) == (
        "meeting",
        "kim",
        "intro call",
        "touch-1",
        start + MINUTE,
    )
    assert in_force(service, "ann").first_touch_us == start + MINUTE
    # The same message again is a duplicate: no second touch.
    again = ingest(service, [touch], [])
    assert (again.accepted, again.duplicates) == (0, 1)
    assert len(touches_of(service, "ann")) == 1
    clock.advance(600)
    assert check_breaches(service) == 0

    # The service knows the event: the unknown-events report does not list it.
    unknown = unknown_events_report(service, 100)["events"]
    assert "sales_touch" not in {row["event"] for row in unknown}

    # A lead that turns hot and is touched in the same request is not left waiting; an
    # unknown kind is a note.
    odd = Track("touch-2", "sales_touch", start, user_id="bob", properties={"kind": "fax"})
    ingest(service, [*hot_tracks("bob", start), odd], [])
    assert in_force(service, "bob").first_touch_us == start
    assert [(t.kind, t.rep_id) for t in touches_of(service, "bob")] == [("note", None)]


def test_a_sales_touch_on_the_scored_ahead_path(service: Service, clock: Clock) -> None:
    """A large group of userId tracks is scored before its write (ingest's second write
    path): its sales_touch events are touches too, once each."""
    rep(service, "kim")
    start = clock()
    make_hot(service, "ann", start)
    clock.advance(60)
    views = [
        Track(f"view-{n}", "page_view", start, user_id=f"visitor-{n}", properties={"url": "/"})
        for n in range(SCORE_AHEAD_MIN)
    ]
    touch = Track(
        "touch-big",
        "sales_touch",
        start + 30 * SECOND,
        user_id="ann",
        properties={"kind": "call", "rep": "kim"},
    )
    group = [*views, touch]
    assert ingest(service, group, []).accepted == len(group)
    assert in_force(service, "ann").first_touch_us == start + 30 * SECOND
    assert ingest(service, group, []).duplicates == len(group)
    count = service.read(
        lambda conn: conn.execute(sa.select(sa.func.count()).select_from(touches)).scalar_one()
    )
    assert count == 1


def test_a_working_hours_sla_waits_for_the_reps_morning(service: Service, clock: Clock) -> None:
    publish(service, clock, "sla_working_hours: false", "sla_working_hours: true")
    rep(service, "kim", hours="09:00-17:00", timezone="UTC")
    start = parse_time_us("2026-11-23T16:58:00Z")
    clock.now_us = start
    make_hot(service, "ann", start)
    assert iso(in_force(service, "ann").sla_due_us) == "2026-11-24T09:03:00Z"
    clock.now_us = parse_time_us("2026-11-23T17:10:00Z")  # wall time would have breached
    assert check_breaches(service) == 0
    clock.now_us = parse_time_us("2026-11-24T09:03:00Z")
    assert check_breaches(service) == 1


def test_the_watcher_thread_breaches_on_its_own(service: Service, clock: Clock) -> None:
    rep(service, "kim")
    make_hot(service, "ann", clock())
    clock.advance(301)
    watcher = SlaWatcher(service)
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while in_force(service, "ann").breached_us is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.stop()
    assert in_force(service, "ann").breached_us == clock()


def test_the_report_matches_a_hand_computed_history(
    service: Service, clock: Clock, client: TestClient, keys: Keys
) -> None:
    rep(service, "ana")
    rep(service, "kim")
    t0 = clock()
    # ann -> ana, touched after 2 minutes, won.      bob -> kim, touched after 10 minutes.
    # cat -> ana, never touched.                     dan -> kim, touched after 4 minutes, won.
    plan = [("ann", 0, 2, True), ("bob", 1, 10, False), ("cat", 2, None, False)]
    plan.append(("dan", 3, 4, True))
    for lead, minute, _, _ in plan:
        clock.now_us = t0 + minute * MINUTE
        make_hot(service, lead, clock())
    assert [in_force(service, lead).rep_id for lead, *_ in plan] == ["ana", "kim", "ana", "kim"]
    clock.now_us = t0 + 20 * MINUTE
    for lead, minute, wait, won in plan:
        if wait is not None:
            add_touch(service, lead, "call", "x", t0 + (minute + wait) * MINUTE)
        if won:
            lead_changes.move_stage(service, lead, "won")
    read = Keys.bearer(keys.read)
    answer = client.get(
        "/v1/reports/speed-to-lead",
        params={"since": iso(t0), "until": iso(t0 + 10 * MINUTE)},
        headers=read,
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["sla_seconds"] == 300.0 and report["since"] == iso(t0)

    def conv(leads: int, converted: int) -> dict[str, Any]:
        return {
            "leads": leads,
            "converted": converted,
            "rate": round(converted / leads, 4) if leads else None,
        }

    assert report["overall"] == {
        "routed": 4,
        "touched": 3,
        "touched_rate": 0.75,
        "median_seconds_to_first_touch": 240.0,  # waits 120, 240, 600: the 2nd
        "p90_seconds_to_first_touch": 600.0,  # ceil(0.9 * 3) = 3rd
        "touched_within_sla": 2,
        "within_sla_rate": 0.5,
        "conversion": {
            "touched_within_5_minutes": conv(2, 2),
            "touched_later": conv(1, 0),
            "not_touched": conv(1, 0),
        },
    }
    ana, kim = report["by_rep"]
    assert (ana["rep"], ana["name"], kim["rep"]) == ("ana", "Ana", "kim")
    assert (ana["routed"], ana["touched"], ana["touched_within_sla"]) == (2, 1, 1)
    assert ana["median_seconds_to_first_touch"] == ana["p90_seconds_to_first_touch"] == 120.0
    assert ana["within_sla_rate"] == 0.5
    assert ana["conversion"] == {
        "touched_within_5_minutes": conv(1, 1),
        "touched_later": conv(0, 0),
        "not_touched": conv(1, 0),
    }
    assert (kim["routed"], kim["touched"], kim["touched_within_sla"]) == (2, 2, 1)
    assert kim["median_seconds_to_first_touch"] == 240.0  # waits 240, 600: the 1st
    assert kim["p90_seconds_to_first_touch"] == 600.0
    assert kim["conversion"]["touched_within_5_minutes"] == conv(1, 1)
    assert kim["conversion"]["touched_later"] == conv(1, 0)

    # The period is by clock start: from minute 1 ann is out.
    later = client.get(
        "/v1/reports/speed-to-lead",
        params={"since": iso(t0 + MINUTE), "until": iso(t0 + 10 * MINUTE)},
        headers=read,
    ).json()
    assert later["overall"]["routed"] == 3 and later["by_rep"][0]["routed"] == 1
    empty = client.get("/v1/reports/speed-to-lead", params={"until": iso(t0)}, headers=read).json()
    assert empty["overall"]["routed"] == 0 and empty["by_rep"] == []
    assert empty["overall"]["median_seconds_to_first_touch"] is None
    assert empty["overall"]["within_sla_rate"] is None

    bad = client.get(
        "/v1/reports/speed-to-lead",
        params={"since": iso(t0), "until": iso(t0)},
        headers=read,
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "since"]
    wrong = client.get(
        "/v1/reports/speed-to-lead", params={"since": "1800-01-01T00:00:00Z"}, headers=read
    )
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["query", "since"]
    assert (
        client.get("/v1/reports/speed-to-lead", headers=Keys.bearer(keys.ingest)).status_code == 403
    )


def test_two_watchers_at_once_breach_each_clock_once(service: Service, clock: Clock) -> None:
    """Run side by side (two processes' watchers, or the server's and the worker's), each
    clock is breached and announced once: the leads are locked and checked again."""
    rep(service, "kim", capacity=1000)
    subscribe(service, clock())
    leads_ = [f"lead-{n:03d}" for n in range(150)]  # more than one batch
    ingest(service, [t for lead in leads_ for t in hot_tracks(lead, clock())], [])
    clock.advance(301)
    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda: counts.append(check_breaches(service))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == len(leads_)
    notes = queued(service, "sla.breached")
    assert sorted(note["lead"]["id"] for note in notes) == leads_


def test_the_server_starts_the_watcher(service: Service, clock: Clock) -> None:
    rep(service, "kim")
    make_hot(service, "ann", clock())
    clock.advance(301)
    with TestClient(create_app(service)):  # background work on, as `pyrometer serve` runs
        deadline = time.monotonic() + 10
        while in_force(service, "ann").breached_us is None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert in_force(service, "ann").breached_us == clock()
