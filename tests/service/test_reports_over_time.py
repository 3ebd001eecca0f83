"""Reports read the way the documents put them: conversion by temperature at first sight,
and the funnel's moves over time, on both stores."""

from __future__ import annotations

from pyrometer.service.decay import run_all_due
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Track
from pyrometer.service.leads import move_stage
from pyrometer.service.reports import over_time, summary
from pyrometer.service.runtime import Service
from tests.service.conftest import Clock

DAY_US = 86_400_000_000


def _rates(rows: list[dict]) -> dict:
    return {r["value"]: (r["converted"], r["leads"]) for r in rows}


def test_a_warm_lead_that_bought_and_faded_counts_as_warm_at_first_sight(
    service: Service, clock: Clock
) -> None:
    start = service.clock()
    ingest(service, [Track("w", "demo_request", start, user_id="buyer")], [])  # 20: warm
    ingest(service, [Track("c", "page_view", start, user_id="looker")], [])  # 1: cold
    move_stage(service, "buyer", "won")
    clock.advance(120 * 86_400)  # the buyer's points fade: cold today
    run_all_due(service)
    report = summary(service, start - DAY_US, service.clock() + 1)
    assert _rates(report["by_temperature"]) == {"cold": (1, 2)}
    assert _rates(report["by_first_temperature"]) == {"cold": (0, 1), "warm": (1, 1)}


def test_a_lead_that_turns_warm_after_its_first_day_was_cold_at_first_sight(
    service: Service, clock: Clock
) -> None:
    start = service.clock()
    ingest(service, [Track("a", "page_view", start, user_id="slow")], [])
    clock.advance(2 * 86_400)
    ingest(service, [Track("b", "demo_request", service.clock(), user_id="slow")], [])
    report = summary(service, start - DAY_US, service.clock() + 1)
    assert _rates(report["by_first_temperature"]) == {"cold": (0, 1)}
    assert _rates(report["by_temperature"]) == {"warm": (0, 1)}


def test_over_time_counts_arrivals_and_moves_in_their_spans(service: Service, clock: Clock) -> None:
    start = service.clock()
    for day in range(12):
        at = service.clock()
        ingest(service, [Track(f"p{day}", "page_view", at, user_id=f"lead-{day}")], [])
        if day % 3 == 0:  # 1 + 20 + 25 + 20 points: hot
            hot = [("demo_request", 1), ("contact_sales", 2), ("trial_signup", 3)]
            tracks = [Track(f"{n}{day}", n, at + d, user_id=f"lead-{day}") for n, d in hot]
            ingest(service, tracks, [])
        clock.advance(86_400)
    spans = over_time(service, start, start + 12 * DAY_US, spans=4)
    assert [s["new_leads"] for s in spans] == [3, 3, 3, 3]
    assert [s["temperature:hot"] for s in spans] == [1, 1, 1, 1]
    assert spans[0]["start"] == "2026-11-23T09:00:00Z"
    everything = over_time(service, 0, start + 12 * DAY_US, spans=4)
    assert sum(s["new_leads"] for s in everything) == 12
    assert everything[0]["start"] == spans[0]["start"]  # "all time" begins at the first lead
