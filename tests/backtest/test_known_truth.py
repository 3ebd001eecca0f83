"""A history with a known truth: demo requests cause purchases, e-mail opens do not."""

from __future__ import annotations

import random

import pytest

from pyrometer.backtest import tune
from pyrometer.backtest.metrics import Outcome, lead_outcomes
from pyrometer.backtest.run import run
from pyrometer.backtest.sweep import as_of_grid
from pyrometer.core.model import Event
from pyrometer.core.playbook import Playbook

DAY = 86_400_000_000
START = 1_780_000_000_000_000 // DAY * DAY
HORIZON = 30 * DAY


def book(demo: float, opens: float, hot: float = 20, warm: float = 8) -> Playbook:
    return Playbook.model_validate(
        {
            "decay": {"half_life": "30d", "step": "1d"},
            "engagement": [
                {"name": "demo_request", "points": demo, "event": "demo_request"},
                {"name": "email_open", "points": opens, "event": "email_open"},
            ],
            "temperature": {"hot": hot, "warm": warm},
            "lifecycle": {"mql": {"score": {"gte": warm}}, "events": {"purchase": "customer"}},
        }
    )


@pytest.fixture(scope="module")
def history() -> tuple[list[tuple[str, list[Event]]], list[Outcome]]:
    rng = random.Random(5)
    leads, outcomes = [], []
    for n in range(400):
        lead = f"L{n:03d}"
        start = rng.uniform(0, 150)
        events = [
            Event.create(lead, "email_open", START + int((start + d) * DAY), f"{lead}-o{i}")
            for i, d in enumerate(sorted(rng.uniform(0, 60) for _ in range(rng.randint(1, 12))))
        ]
        if rng.random() < 0.35:
            demo_day = start + rng.uniform(0, 40)
            events.append(
                Event.create(lead, "demo_request", START + int(demo_day * DAY), f"{lead}-d")
            )
            if rng.random() < 0.7:
                outcomes.append(
                    Outcome(lead, "won", START + int((demo_day + rng.uniform(2, 20)) * DAY))
                )
        elif rng.random() < 0.03:
            outcomes.append(Outcome(lead, "won", START + int((start + rng.uniform(0, 60)) * DAY)))
        leads.append((lead, sorted(events, key=lambda e: e.order_key)))
    return leads, outcomes


def test_a_playbook_that_ignores_demo_requests_backtests_worse(history) -> None:
    leads, outcomes = history
    times = as_of_grid(START + 10 * DAY, START + 180 * DAY, DAY)
    result = run(
        [("demo", book(25, 1)), ("opens", book(0, 5))], leads, {}, outcomes, times, HORIZON
    )
    demo, opens = result.metrics
    assert demo.hot_precision > 3 * opens.hot_precision
    assert demo.band("hot").lift > 3 > opens.band("hot").lift
    assert demo.hot_share_before_win > opens.hot_share_before_win


def test_tuning_learns_that_demo_requests_matter(history) -> None:
    leads, outcomes = history
    known = lead_outcomes(outcomes)
    learn = as_of_grid(START + 10 * DAY, START + 110 * DAY, DAY)
    judge = as_of_grid(START + 140 * DAY, START + 200 * DAY, DAY)
    base = book(0, 5)  # switched demo requests off
    data = tune.features(base, leads, {}, known, learn, HORIZON)
    assert data.names == ("demo_request", "email_open") and len(data.rows) == len(data.labels)
    learned, changes = tune.learn_points(base, data)
    assert changes["demo_request"][1] > changes["email_open"][1]
    assert changes["demo_request"] == (0.0, 25.0)  # the largest is scaled to 25 points

    def tuned(playbook: Playbook) -> Playbook:
        timelines = []
        run(
            [("x", playbook)],
            leads,
            {},
            outcomes,
            learn,
            HORIZON,
            keep=lambda _, t: timelines.append(t),
        )
        table = tune.ScoreTable(learn, timelines, known, HORIZON)
        picked = tune.pick_hot(table.curve(), capacity_per_day=1.0)
        assert picked is not None and picked.new_hot_per_day <= 1.0
        return tune.with_thresholds(
            playbook, picked.threshold, tune.pick_warm(table, picked.threshold)
        )

    later = run(
        [("base", tuned(base)), ("learned", tuned(learned))], leads, {}, outcomes, judge, HORIZON
    )
    base_m, learned_m = later.metrics
    assert learned_m.hot_precision > 2 * (base_m.hot_precision or 0)


@pytest.mark.parametrize("hot", [9.0, 14.5, 25.0, 40.0])
def test_the_trade_off_curve_is_what_backtesting_that_threshold_gives(history, hot) -> None:
    leads, outcomes = history
    known = lead_outcomes(outcomes)
    times = as_of_grid(START + 10 * DAY, START + 120 * DAY, DAY)
    timelines: list = []
    base = book(25, 3)
    run([("x", base)], leads, {}, outcomes, times, HORIZON, keep=lambda _, t: timelines.append(t))
    point = tune.ScoreTable(times, timelines, known, HORIZON).point(hot)
    (m,) = run(
        [("h", tune.with_thresholds(base, hot, 1.0))], leads, {}, outcomes, times, HORIZON
    ).metrics
    assert point.hot_lead_days == m.band("hot").observations
    assert point.precision == m.hot_precision and point.recall == m.hot_recall
    assert point.new_hot_per_day == pytest.approx(m.new_hot_per_day)
