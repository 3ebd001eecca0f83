"""The row scorer gives the data-frame path's probabilities and reasons, without pandas."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from pyrometer.core.playbook import default_playbook_text, parse_playbook
from pyrometer.predictive import model_bytes
from pyrometer.predictive import store_training as st
from pyrometer.predictive.artifact import PredictiveModel
from pyrometer.predictive.fast_score import RowScorer
from pyrometer.predictive.features import SchemaError
from pyrometer.service.models import score_leads

DAY = 86_400_000_000
NOW = 400 * DAY
CITIES = [f"city {i}" for i in range(40)]
INDUSTRIES = ["software", "retail", "media", "education"]


def _history(n: int) -> tuple[list[st.LeadHistory], list[tuple[str, str, int]]]:
    """Every kind of column: a few categories, a wide one (target-encoded, with its
    frequency), a number, a yes/no answer, and events of several types."""
    rng = random.Random(7)
    leads, events = [], []
    for i in range(n):
        lead_id = f"L{i:04d}"
        start = i * DAY // 4
        industry = rng.choice(INDUSTRIES)
        keen = rng.random() < (0.6 if industry == "software" else 0.2)
        for k in range(rng.randint(1, 5)):
            events.append((lead_id, rng.choice(["page_view", "email_open"]), start + k * DAY))
        if keen:
            events.append((lead_id, "pricing_page_view", start + 2 * DAY))
        converts = rng.random() < (0.7 if keen else 0.1)
        attributes = {
            "industry": industry,
            "city": CITIES[i % len(CITIES)],
            "company_size": rng.randint(1, 500),
            "newsletter": rng.choice(["yes", "no"]),
        }
        if converts:
            leads.append(st.LeadHistory(lead_id, attributes, start, customer_us=start + 20 * DAY))
        else:
            leads.append(st.LeadHistory(lead_id, attributes, start))
    return leads, events


@pytest.fixture(scope="module")
def model() -> PredictiveModel:
    book = parse_playbook(default_playbook_text() + "\nmodels:\n  horizon: 30d\n  cutoff: 14d\n")
    leads, events = _history(800)
    data = st.training_data(leads, st.event_log(events), book, NOW)
    trained = st.train(data, book, NOW)
    stored = model_bytes.load(trained.artifact)
    model = st.as_predictive(stored, trained.metrics)
    kinds = {spec.name: spec.kind for spec in model.schema.features}
    # The model reads every kind of column the row scorer encodes.
    assert {"industry", "city", "company_size", "newsletter"} <= set(kinds)
    assert any(name.startswith("events: ") for name in kinds)
    assert stored.model.encoders and any(s.frequencies for s in model.schema.features)
    return model


ANY_TEXT = hs.text(alphabet="ab yN0-", max_size=4)
VALUES: dict[str, Any] = {
    "industry": hs.one_of(
        hs.sampled_from(INDUSTRIES),
        hs.sampled_from(["  Software ", "RETAIL", "unknown", "", "n/a", "-"]),
        hs.integers(0, 3),
        hs.booleans(),
        ANY_TEXT,
    ),
    "city": hs.one_of(hs.sampled_from(CITIES), hs.sampled_from(["City 3 ", "nowhere"]), ANY_TEXT),
    "company_size": hs.one_of(
        hs.integers(-5, 1000),
        hs.floats(-10, 1e4, allow_nan=False),
        hs.sampled_from(["42", " 7 ", "1e2", "", "n/a"]),
    ),
    "newsletter": hs.sampled_from(["yes", "no", "Y", " n ", "true", "0", 1, True, False, ""]),
}
ATTRIBUTES = hs.fixed_dictionaries(
    {},
    optional={
        **VALUES,
        "unused": hs.one_of(hs.text(max_size=3), hs.dictionaries(hs.just("k"), hs.integers())),
    },
)
WINDOW_EDGES = [0, 7 * DAY, 7 * DAY + 1, 30 * DAY, 30 * DAY - 1, 90 * DAY, 90 * DAY + 1]
EVENTS = hs.lists(
    hs.tuples(
        hs.sampled_from(["page_view", "Page View", "email_open", "pricing_page_view", "other"]),
        hs.one_of(
            hs.sampled_from(WINDOW_EDGES).map(lambda age: NOW - age),
            hs.integers(NOW - 200 * DAY, NOW + 2 * DAY),
        ),
    ),
    max_size=12,
)


def _frame_path(
    model: PredictiveModel, leads: list[tuple[str, dict[str, Any]]], log: list[Any]
) -> tuple[np.ndarray, list[Any]]:
    frame = st.with_columns(
        st.lead_frame([a for _, a in leads], [i for i, _ in leads], [NOW] * len(leads)), model
    )
    raw = model.cleaned(frame, st.event_log(log), source="lead")
    return model.model.predict_proba(model.schema.design(raw)), model.factors(frame, 3, raw=raw)


def _same_factors(fast: list[Any], slow: list[Any]) -> None:
    assert [(name, value) for name, value, _ in fast] == [(n, v) for n, v, _ in slow]
    for (_, _, a), (_, _, b) in zip(fast, slow, strict=True):
        assert a == pytest.approx(b, abs=1e-9)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(leads=hs.lists(hs.tuples(ATTRIBUTES, EVENTS), min_size=1, max_size=3))
def test_rows_score_as_the_frame_path_does(model: PredictiveModel, leads: list[Any]) -> None:
    """Each lead of a small page against the frame path on that lead alone (a frame of
    several leads turns a column mixing numbers and gaps into floats, so ``1`` becomes
    ``1.0``: the row scorer reads each lead as it is)."""
    scorer = RowScorer(model)
    fast = scorer.score([(attrs, events) for attrs, events in leads], NOW)
    reference = []
    for attrs, events in leads:
        pair = [("lead-1", attrs)]
        log = [("lead-1", name, ts) for name, ts in events]
        try:
            reference.append(_frame_path(model, pair, log))
        except SchemaError as exc:
            # A value the model cannot read: the row scorer leaves the page to the frame
            # path, and the service gives that path's error naming the column.
            assert fast is None
            assert scorer.probabilities(leads, NOW) is None  # the batch path refuses it too
            with pytest.raises(SchemaError, match="should be"):
                score_leads(model, pair, log, NOW)
            assert "should be" in str(exc)
            return
    assert fast is not None, f"the row scorer refused readable leads: {leads!r}"
    # The batch path (event features of all leads counted together, no reasons) reads
    # the same numbers: the same probabilities.
    matrix = scorer.matrix(leads, NOW)
    assert matrix is not None
    rows = [scorer.row(attrs, events, NOW) for attrs, events in leads]
    one_by_one = np.vstack([r[0] for r in rows if r])
    # The same numbers, but each event's weight 2^(-age / half-life): numpy's power on an
    # array and Python's on one float may differ in the last bit (0.12499999999996655
    # against ...657), so the decayed sum is compared to the last bits, the rest exactly.
    (decayed,) = [at for name, at, _ in scorer._event_steps if name.endswith("decayed engagement")]
    exact = [j for j in range(matrix.shape[1]) if j != decayed]
    assert np.array_equal(matrix[:, exact], one_by_one[:, exact], equal_nan=True)
    assert np.allclose(matrix[:, decayed], one_by_one[:, decayed], rtol=1e-14, atol=0)
    together = scorer.probabilities(leads, NOW)
    assert together == pytest.approx([prob for prob, _, _ in fast], abs=1e-12)
    for (prob, up, down), (p, factors) in zip(fast, reference, strict=True):
        assert prob == pytest.approx(float(p[0]), abs=1e-9)
        _same_factors(up, factors[0][0])
        _same_factors(down, factors[0][1])
    # The service's answer (rounded effects) is the frame path's, lead by lead.
    for attrs, events in leads:
        pair = [("lead-1", attrs)]
        log = [("lead-1", name, ts) for name, ts in events]
        ((a, fa),) = score_leads(model, pair, log, NOW)
        ((b, fb),) = score_leads(model, pair, log, NOW, fast=False)
        assert a == pytest.approx(b, abs=1e-9)
        assert [(f["feature"], f["value"]) for f in fa] == [(f["feature"], f["value"]) for f in fb]
        assert [f["effect"] for f in fa] == pytest.approx([f["effect"] for f in fb], abs=1e-4)
