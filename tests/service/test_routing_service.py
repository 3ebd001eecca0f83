"""Routing in the service: a lead that turns hot is assigned in the same transaction that
records the transition, on SQLite and PostgreSQL, through both ingest paths.

The pure decision is tested in tests/routing; here: that every write path acts on it,
that the spread over reps follows capacity, that territory, away reps, do-not-contact and
owners are obeyed, and that the lead read shows who has it and why.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from pyrometer.service import actions
from pyrometer.service.decay import run_all_due
from pyrometer.service.ingest import SCORE_AHEAD_MIN, ingest
from pyrometer.service.inputs import Identify, Track
from pyrometer.service.reps import add_rep, update_rep
from pyrometer.service.runtime import Service
from pyrometer.service.sla_watch import check_breaches
from pyrometer.service.touches import add_touch
from pyrometer.store.tables import assignments, leads, transitions
from service.conftest import Keys

HOT = ("demo_request", "contact_sales", "pricing_page_view")  # 20 + 25 + 10 >= 50


def hot_tracks(service: Service, lead_id: str, tag: str = "") -> list[Track]:
    now = service.clock()
    return [
        Track(f"{lead_id}-{name}{tag}", name, now - 1_000_000 * (3 - n), user_id=lead_id)
        for n, name in enumerate(HOT)
    ]


def rep(rep_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": rep_id, "name": rep_id.title(), "email": f"{rep_id}@example.com", **extra}


def owners(service: Service) -> dict[str, str | None]:
    query = sa.select(leads.c.lead_id, leads.c.owner)
    return {row.lead_id: row.owner for row in service.read(lambda c: c.execute(query).all())}


def assignment_rows(service: Service) -> list[Any]:
    query = sa.select(assignments).order_by(assignments.c.id)
    return service.read(lambda c: c.execute(query).all())


def test_capacity_weighted_round_robin_spreads_1000_hot_leads(service: Service) -> None:
    """1,000 leads turn hot, in batches large enough for the scored-ahead path and in
    single calls (the general path): the reps get them in proportion to capacity."""
    capacities = {"ana": 500, "ben": 300, "cy": 200}
    for rep_id, capacity in capacities.items():
        add_rep(service, rep(rep_id, capacity=capacity))
    batch: list[Track] = []
    for n in range(1000):
        lead = f"lead-{n:04d}"
        if n % 10 == 0:
            ingest(service, hot_tracks(service, lead), [])
            continue
        batch += hot_tracks(service, lead)
        if len(batch) >= 3 * SCORE_AHEAD_MIN:
            ingest(service, batch, [])
            batch = []
    ingest(service, batch, [])
    spread = Counter(owners(service).values())
    # Each rep's share of capacity used stays level: at most one lead apart from exact.
    for rep_id, capacity in capacities.items():
        assert abs(spread[rep_id] - capacity) <= 1, spread
    rows = assignment_rows(service)
    assert len(rows) == 1000 and all(r.counts and r.rule == "round_robin" for r in rows)
    # The clock starts at the routing transition's own time, not when it was noticed.
    hot = service.read(
        lambda c: c.execute(
            sa.select(transitions.c.lead_id, transitions.c.at_us).where(
                transitions.c.kind == "temperature", transitions.c.new == "hot"
            )
        ).all()
    )
    turned = dict(hot)
    assert all(r.clock_us == turned[r.lead_id] for r in rows)
    assert all(r.sla_due_us == r.clock_us + 300_000_000 for r in rows)


def test_full_reps_leave_leads_in_the_unassigned_queue(service: Service) -> None:
    add_rep(service, rep("ana", capacity=2))
    for n in range(3):
        ingest(service, hot_tracks(service, f"l{n}"), [])
    assert owners(service) == {"l0": "ana", "l1": "ana", "l2": None}
    last = assignment_rows(service)[-1]
    assert last.rep_id is None and last.rule == "unassigned"
    assert "capacity" in last.reason
    assert last.clock_us is not None  # the queue's wait is measured too


def test_territory_wins_over_round_robin(service: Service) -> None:
    add_rep(service, rep("lina", territory={"country": ["LT", "LV", "EE"]}))
    add_rep(service, rep("max"))
    ingest(service, hot_tracks(service, "a"), [])  # no country: round-robin
    ingest(service, hot_tracks(service, "b"), [])
    # Lina has one lead already, Max one: both Baltic leads still go to Lina.
    for lead in ("vilnius", "riga"):
        country = "LT" if lead == "vilnius" else "LV"
        ident = Identify(f"id-{lead}", lead, service.clock(), traits={"country": country})
        ingest(service, hot_tracks(service, lead), [ident])
    found = owners(service)
    assert found["vilnius"] == found["riga"] == "lina"
    reasons = {r.lead_id: r.reason for r in assignment_rows(service)}
    assert reasons["riga"].startswith("territory country in [LT, LV, EE]")


def test_an_away_rep_gets_nothing_new(service: Service) -> None:
    add_rep(service, rep("ana"))
    add_rep(service, rep("ben"))
    update_rep(service, "ben", {"away": True})
    for n in range(6):
        ingest(service, hot_tracks(service, f"l{n}"), [])
    assert set(owners(service).values()) == {"ana"}
    update_rep(service, "ben", {"away": False})
    ingest(service, hot_tracks(service, "later"), [])
    assert owners(service)["later"] == "ben"  # back: the least loaded again


def test_do_not_contact_leads_are_scored_but_never_routed(service: Service) -> None:
    add_rep(service, rep("ana"))
    ident = Identify("id-x", "x", service.clock(), traits={"do_not_contact": True})
    ingest(service, hot_tracks(service, "x"), [ident])
    ingest(service, [Track("u1", "unsubscribe", service.clock(), user_id="y")], [])
    ingest(service, hot_tracks(service, "y"), [])
    found = service.read(
        lambda c: c.execute(sa.select(leads.c.lead_id, leads.c.temperature, leads.c.owner)).all()
    )
    # Scored: x turned hot (y's unsubscribe costs it 20 points); neither has an owner.
    assert {row.lead_id: row.owner for row in found} == {"x": None, "y": None}
    assert {row.lead_id: row.temperature for row in found}["x"] == "hot"
    rows = assignment_rows(service)
    assert [(r.lead_id, r.rule, r.counts, r.clock_us) for r in rows] == [
        ("x", "suppressed", False, None)
    ]


def test_a_lead_with_an_active_owner_keeps_that_owner(service: Service, clock: Any) -> None:
    add_rep(service, rep("ana"))
    add_rep(service, rep("ben"))
    ingest(service, hot_tracks(service, "a"), [])
    first = owners(service)["a"]
    # A month later it has cooled; a new burst makes it hot again: same owner, a new
    # clock, and no second lead counted against the owner's capacity.
    clock.advance(40 * 86_400)
    run_all_due(service)
    ingest(service, hot_tracks(service, "a", "-again"), [])
    assert owners(service)["a"] == first
    rows = assignment_rows(service)
    assert [(r.rule, r.counts, r.ended_us is None) for r in rows] == [
        ("round_robin", True, False),
        ("owner", False, True),
    ]
    assert rows[1].clock_us > rows[0].clock_us


def test_no_reps_no_assignment(service: Service) -> None:
    ingest(service, hot_tracks(service, "a"), [])
    assert assignment_rows(service) == [] and owners(service) == {"a": None}


def test_lead_read_and_manual_assignment(service: Service, client: TestClient, keys: Keys) -> None:
    add_rep(service, rep("ana", capacity=1))
    add_rep(service, rep("ben", capacity=5))
    admin = Keys.bearer(keys.admin)
    lead = client.get("/v1/leads/cold-one", headers=admin)
    assert lead.status_code == 404
    ingest(service, [Track("c1", "page_view", service.clock(), user_id="cold-one")], [])
    before = client.get("/v1/leads/cold-one", headers=admin).json()
    assert (before["owner"], before["assigned_at"], before["assignment_reason"]) == (
        None,
        None,
        None,
    )
    # By hand: counts against Ana's capacity of one, so the next hot lead goes to Ben.
    patched = client.patch("/v1/leads/cold-one", json={"owner": "ana"}, headers=admin)
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["owner"] == "ana" and body["assignment"]["rule"] == "manual"
    assert "assigned by hand to Ana" in body["assignment_reason"]
    assert "key" in body["assignment_reason"]  # who did it
    ingest(service, hot_tracks(service, "hot-one"), [])
    hot = client.get("/v1/leads/hot-one", headers=admin).json()
    assert hot["owner"] == "ben"
    assert hot["assigned_at"] is not None
    assert hot["assignment"]["sla_due_at"] is not None
    assert hot["assignment"]["clock_started_at"] <= hot["assignment"]["sla_due_at"]
    # Handing a waiting lead over keeps its clock: the buyer's wait does not restart.
    moved = client.patch("/v1/leads/hot-one", json={"owner": "ana"}, headers=admin).json()
    assert moved["owner"] == "ana"
    assert moved["assignment"]["clock_started_at"] == hot["assignment"]["clock_started_at"]
    assert moved["assignment"]["sla_due_at"] == hot["assignment"]["sla_due_at"]
    # The same owner again records nothing new.
    count = len(assignment_rows(service))
    client.patch("/v1/leads/hot-one", json={"owner": "ana"}, headers=admin)
    assert len(assignment_rows(service)) == count


def test_a_rolled_back_transition_leaves_no_assignment(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The assignment is written in the transition's own transaction: when that fails
    after routing, neither is kept."""
    add_rep(service, rep("ana"))

    def fail(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(actions.outbox, "enqueue", fail)
    with pytest.raises(RuntimeError):
        ingest(service, hot_tracks(service, "a"), [])
    monkeypatch.undo()
    assert assignment_rows(service) == [] and owners(service) == {}
    ingest(service, hot_tracks(service, "a"), [])
    assert owners(service) == {"a": "ana"}


def test_a_handover_after_a_breach_does_not_breach_again(
    service: Service, client: TestClient, keys: Keys, clock: Any
) -> None:
    add_rep(service, rep("ana"))
    add_rep(service, rep("ben"))
    ingest(service, hot_tracks(service, "a"), [])
    clock.advance(6 * 60)  # past the 5-minute SLA
    assert check_breaches(service) == 1
    other = "ben" if owners(service)["a"] == "ana" else "ana"
    admin = Keys.bearer(keys.admin)
    moved = client.patch("/v1/leads/a", json={"owner": other}, headers=admin).json()
    assert moved["assignment"]["breached_at"] is not None  # announced once, carried over
    clock.advance(60)
    assert check_breaches(service) == 0


def test_a_touch_before_late_routing_counts(service: Service, clock: Any) -> None:
    """A rep called the lead; events from before the call arrive later and turn it hot
    at a time before the call: the call answered it, no clock waits."""
    add_rep(service, rep("ana"))
    ingest(service, [Track("p", "page_view", service.clock(), user_id="a")], [])
    add_touch(service, "a", "call", "ana", at_us=service.clock())
    tracks = [t._replace(ts_us=t.ts_us - 600_000_000) for t in hot_tracks(service, "a")]
    ingest(service, tracks, [])
    (row,) = assignment_rows(service)
    assert row.first_touch_us == service.clock() and row.clock_us <= row.first_touch_us
    clock.advance(3600)
    assert check_breaches(service) == 0
