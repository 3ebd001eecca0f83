"""Who gets a lead: suppression, owners, territory, capacity-weighted round-robin, hours."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.core.model import Transition
from pyrometer.core.playbook import RouteWhen, Routing, Stage
from pyrometer.core.timeutil import parse_time_us
from pyrometer.routing.assign import Assignment, Rule, choose_rep, routes
from pyrometer.routing.reps import Rep, parse_rep

POLICY = Routing()
NOON = parse_time_us("2026-12-01T12:00:00Z")  # 14:00 Vilnius, 07:00 New York


def rep(rep_id: str, **fields: object) -> Rep:
    data = {"id": rep_id, "name": rep_id.title(), "email": f"{rep_id}@example.com", **fields}
    return parse_rep(data)


def choose(
    reps: list[Rep],
    attributes: dict[str, object] | None = None,
    *,
    suppressed: bool = False,
    owner: str | None = None,
    assigned: dict[str, int] | None = None,
    last: dict[str, int] | None = None,
    now: int = NOON,
    policy: Routing = POLICY,
) -> Assignment:
    return choose_rep(
        policy, attributes or {}, suppressed, owner, reps, assigned or {}, last or {}, now
    )


def spread(reps: list[Rep], leads: int, policy: Routing = POLICY) -> Counter[str]:
    """Route ``leads`` leads one after another, feeding each choice back."""
    assigned: Counter[str] = Counter()
    last: dict[str, int] = {}
    for i in range(leads):
        now = NOON + i * 1_000_000
        chosen = choose(reps, assigned=dict(assigned), last=last, now=now, policy=policy)
        assert chosen.rep_id is not None, chosen.reason
        assigned[chosen.rep_id] += 1
        last[chosen.rep_id] = now
    return assigned


def test_1000_hot_leads_spread_over_3_reps_in_proportion_to_capacity() -> None:
    """Capacities 10/20/30, scaled by 100 so nobody fills up: each rep's count is within
    one lead of its exact share (1000 × capacity / 60)."""
    reps = [rep("ann", capacity=1000), rep("bob", capacity=2000), rep("cy", capacity=3000)]
    counts = spread(reps, 1000)
    assert sum(counts.values()) == 1000
    for r in reps:
        assert r.capacity is not None
        share = Fraction(1000 * r.capacity, 6000)
        assert abs(counts[r.id] - share) <= 1, (r.id, counts[r.id], share)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=5), st.integers(1, 300))
def test_round_robin_follows_capacity_within_one_lead_per_rep(
    capacities: list[int], leads: int
) -> None:
    """Tolerance: every rep is within ``len(reps)`` leads of its exact share (in practice
    within one, as above), and nobody is given a lead while another has a lower share."""
    scale = 1000
    reps = [rep(f"r{i}", capacity=c * scale) for i, c in enumerate(capacities)]
    counts = spread(reps, leads)
    total = sum(capacities) * scale
    for r in reps:
        assert r.capacity is not None
        assert abs(counts[r.id] - Fraction(leads * r.capacity, total)) < len(reps)


def test_capacity_is_a_ceiling() -> None:
    reps = [rep("ann", capacity=2), rep("bob", capacity=3)]
    counts = spread(reps, 5)
    assert counts == {"ann": 2, "bob": 3}
    full = choose(reps, assigned=dict(counts))
    assert full == Assignment(
        None, "every rep in working hours is at capacity: unassigned queue", Rule.UNASSIGNED
    )


def test_the_default_capacity_applies_to_a_rep_without_one() -> None:
    policy = Routing(default_capacity=2)
    reps = [rep("ann"), rep("bob", capacity=4)]
    assert spread(reps, 6, policy) == {"ann": 2, "bob": 4}


def test_ties_go_to_the_least_recently_assigned_then_the_lowest_id() -> None:
    reps = [rep("bob"), rep("ann"), rep("cy")]
    assert choose(reps).rep_id == "ann"
    assert choose(reps, last={"ann": 5, "bob": 3}).rep_id == "cy"
    assert choose(reps, last={"ann": 5, "bob": 3, "cy": 4}).rep_id == "bob"


def test_territory_wins_over_round_robin() -> None:
    baltic = rep("kim", territory={"country": ["LT", "LV", "EE"]}, capacity=30)
    big = rep("lee", territory={"company_size": {"gte": 500}})
    others = [rep("ann"), rep("bob")]
    reps = [*others, baltic, big]
    # kim already has far more leads than anyone: territory still wins.
    chosen = choose(reps, {"country": "lt"}, assigned={"kim": 3})
    assert chosen == Assignment(
        "kim", "territory country in [LT, LV, EE]; 4 of 30 in the last 30 days", Rule.TERRITORY
    )
    assert choose(reps, {"company_size": "1200"}).rep_id == "lee"
    assert choose(reps, {"company_size": 1200}).reason.startswith("territory company_size >= 500")
    unmatched = choose(reps, {"country": "DE", "company_size": 20})
    assert unmatched.rule is Rule.ROUND_ROBIN and unmatched.rep_id == "ann"
    assert unmatched.reason == "round-robin, no territory matched; 1 of 30 in the last 30 days"


def test_a_full_or_absent_territory_rep_falls_back_to_any_rep() -> None:
    kim = rep("kim", territory={"country": "LT"}, capacity=1)
    reps = [kim, rep("ann")]
    chosen = choose(reps, {"country": "LT"}, assigned={"kim": 1})
    assert chosen.rep_id == "ann" and chosen.rule is Rule.FALLBACK
    assert "territory reps (Kim)" in chosen.reason
    gone = rep("kim", territory={"country": "LT"}, away=True)
    away = choose([gone, rep("ann")], {"country": "LT"})
    assert away.rep_id == "ann" and away.rule is Rule.FALLBACK


def test_an_away_rep_gets_nothing() -> None:
    reps = [rep("ann", away=True), rep("bob")]
    assert set(spread(reps, 30)) == {"bob"}
    nobody = choose([rep("ann", away=True)])
    assert nobody == Assignment(None, "every rep is away: unassigned queue", Rule.UNASSIGNED)


def test_out_of_hours_reps_get_nothing_while_one_is_in_hours() -> None:
    vilnius = rep("vil", timezone="Europe/Vilnius", hours="09:00-17:00")
    new_york = rep("nyc", timezone="America/New_York", hours="09:00-17:00")
    night = rep("owl", timezone="America/New_York", hours="22:00-06:00")
    reps = [new_york, night, vilnius]
    assert set(spread(reps, 20)) == {"vil"}  # 14:00 in Vilnius, 07:00 in New York
    late = parse_time_us("2026-12-02T04:00:00Z")  # 06:00 Vilnius, 23:00 New York
    assert choose(reps, now=late).rep_id == "owl"
    # A territory rep out of hours does not hold the lead: someone in hours gets it.
    us = rep("nyc", timezone="America/New_York", hours="09:00-17:00", territory={"country": "US"})
    fallback = choose([us, night, vilnius], {"country": "US"}, now=late)
    assert fallback.rep_id == "owl" and fallback.rule is Rule.FALLBACK


def test_nobody_in_hours_means_the_unassigned_queue() -> None:
    reps = [rep("nyc", timezone="America/New_York", hours="09:00-17:00")]
    assert choose(reps) == Assignment(
        None, "no rep in working hours: unassigned queue", Rule.UNASSIGNED
    )
    assert choose([]) == Assignment(None, "no reps: unassigned queue", Rule.UNASSIGNED)


def test_a_suppressed_lead_is_never_routed() -> None:
    reps = [rep("kim", territory={"country": "LT"})]
    for owner in (None, "kim"):
        chosen = choose(reps, {"country": "LT"}, suppressed=True, owner=owner)
        assert chosen.rep_id is None and chosen.rule is Rule.SUPPRESSED


def test_an_active_owner_is_kept() -> None:
    reps = [rep("ann"), rep("kim", territory={"country": "LT"}), rep("bob", capacity=1)]
    kept = choose(reps, {"country": "LT"}, owner="bob", assigned={"bob": 1})
    assert kept == Assignment("bob", "kept its owner Bob", Rule.OWNER)
    # An owner who is away, or no longer a rep, does not keep the lead.
    away = [rep("ann"), rep("kim", territory={"country": "LT"}), rep("bob", away=True)]
    assert choose(away, {"country": "LT"}, owner="bob").rep_id == "kim"
    assert choose(reps, {"country": "LT"}, owner="gone").rep_id == "kim"


def _transition(kind: str, old: str, new: str) -> Transition:
    return Transition("lead-1", NOON, kind, old, new, "event:1")


def test_routes_follows_the_playbooks_when() -> None:
    assert routes(POLICY, _transition("temperature", "warm", "hot"))
    assert routes(POLICY, _transition("temperature", "cold", "hot"))
    assert routes(POLICY, _transition("stage", "mql", "sql"))
    assert not routes(POLICY, _transition("temperature", "hot", "warm"))
    assert not routes(POLICY, _transition("stage", "lead", "mql"))
    assert not routes(POLICY, _transition("stage", "sql", "opportunity"))
    stage_only = Routing(when=(RouteWhen(stage=Stage.OPPORTUNITY),))
    assert not routes(stage_only, _transition("temperature", "warm", "hot"))
    assert routes(stage_only, _transition("stage", "sql", "opportunity"))
    assert not routes(Routing(when=()), _transition("temperature", "warm", "hot"))
