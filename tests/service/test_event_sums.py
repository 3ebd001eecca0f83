"""A write's probabilities from event sums the database adds up (per lead and event name)
are the probabilities the events themselves give: the same windows to the microsecond,
the same latest event, the same decayed sum; events after the moment scored are left out.
SQLite and PostgreSQL."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from pyrometer.core.playbook import default_playbook_text, parse_playbook
from pyrometer.predictive import model_bytes
from pyrometer.predictive import store_training as st
from pyrometer.predictive.artifact import PredictiveModel
from pyrometer.predictive.fast_score import RowScorer
from pyrometer.service.models import stored_probabilities
from pyrometer.service.runtime import Service
from pyrometer.store import models as store
from pyrometer.store.tables import events
from tests.predictive.test_fast_score import NOW, _history

DAY = 86_400_000_000
NAMES = ["page_view", "email_open", "pricing_page_view", "Email Opened", "webinar_attended"]
# Ages on and either side of each window's edge, a future event, a very old one.
EDGES = [0, 1, 7 * DAY - 1, 7 * DAY, 7 * DAY + 1, 30 * DAY, 30 * DAY + 1, 90 * DAY, 90 * DAY + 1]
EDGES += [-1, -DAY, 400 * DAY + 123_457, 3 * DAY + 999_999]


@pytest.fixture(scope="module")
def model() -> PredictiveModel:
    book = parse_playbook(default_playbook_text() + "\nmodels:\n  horizon: 30d\n  cutoff: 14d\n")
    leads, log = _history(600)
    trained = st.train(st.training_data(leads, st.event_log(log), book, NOW), book, NOW)
    model = st.as_predictive(model_bytes.load(trained.artifact), trained.metrics)
    assert model.events is not None  # it reads event features
    return model


_n = 0


def _store(service: Service, rows: list[tuple[str, str, int]]) -> None:
    global _n
    if not rows:
        return
    values = []
    for lead_id, name, ts in rows:
        _n += 1
        values.append(
            {
                "event_id": f"e{_n}",
                "lead_id": lead_id,
                "subject": lead_id,
                "name": name,
                "ts_us": ts,
                "properties": {},
                "received_us": NOW,
            }
        )
    service.write(lambda conn: conn.execute(events.insert(), values))


def _compare(service: Service, model: PredictiveModel, leads: dict[str, list[tuple[str, int]]]):
    scorer = RowScorer(model)
    attributes = {"industry": "software", "company_size": 40, "newsletter": "yes"}
    items = [(lead_id, dict(attributes)) for lead_id in leads]
    got = service.read(lambda conn: stored_probabilities(conn, model, items, NOW))
    want = scorer.probabilities([(dict(attributes), leads[i]) for i, _ in items], NOW)
    assert want is not None
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    # The event features themselves: counts and the latest age exactly, the decayed sum
    # to the last bits (the order of its additions differs).
    sums = service.read(
        lambda conn: store.lead_event_sums(
            conn, list(leads), NOW, scorer.sum_windows, model.events.half_life_days
        )
    )
    by_lead: dict[str, list] = {i: [] for i in leads}
    for lead_id, name, counts, latest, decayed in sums:
        by_lead[lead_id].append((name, counts, latest, decayed))
    from_sums = scorer.event_matrix_of_sums([by_lead[i] for i in leads], NOW)
    from_events = scorer._event_matrix([leads[i] for i in leads], NOW)
    assert np.array_equal(from_sums[:, :-1], from_events[:, :-1], equal_nan=True)
    assert np.allclose(from_sums[:, -1], from_events[:, -1], rtol=1e-13, atol=0)


def test_sums_at_every_window_edge_give_the_events_probabilities(
    service: Service, model: PredictiveModel
) -> None:
    rng = random.Random(3)
    leads: dict[str, list[tuple[str, int]]] = {"none": []}
    for k, age in enumerate(EDGES):
        lead_id = f"edge{k}"
        leads[lead_id] = [(rng.choice(NAMES), NOW - age) for _ in range(3)]
    for k in range(40):
        leads[f"many{k}"] = [
            (rng.choice(NAMES), NOW - rng.randrange(-2 * DAY, 200 * DAY)) for _ in range(30)
        ]
    _store(service, [(i, name, ts) for i, rows in leads.items() for name, ts in rows])
    _compare(service, model, leads)
    assert any(ts > NOW for rows in leads.values() for _, ts in rows)  # some left out


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    hs.lists(
        hs.tuples(hs.sampled_from(NAMES), hs.integers(-DAY, 120 * DAY)), min_size=0, max_size=12
    )
)
def test_sums_of_any_history_give_the_events_probabilities(
    service: Service, model: PredictiveModel, history: list[tuple[str, int]]
) -> None:
    global _n
    lead_id = f"h{_n}"
    rows = [(name, NOW - age) for name, age in history]
    _store(service, [(lead_id, name, ts) for name, ts in rows])
    _compare(service, model, {lead_id: rows})
