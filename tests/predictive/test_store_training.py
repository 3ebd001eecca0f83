"""Training from a store's outcomes: labels, the point-in-time cut-off, champion/challenger."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pyrometer.core.playbook import Models, default_playbook, default_playbook_text, parse_playbook
from pyrometer.predictive import model_bytes
from pyrometer.predictive import store_training as st

DAY = 86_400_000_000
NOW = 400 * DAY
SETTINGS = Models.model_validate({"horizon": "30d", "cutoff": "14d"})


def test_labels_follow_the_outcome_and_cut_before_it() -> None:
    won = st.LeadHistory("a", {}, 0, customer_us=20 * DAY)
    label = st.label(won, SETTINGS, NOW)
    assert label is not None and (label.outcome, label.outcome_us) == (1, 20 * DAY)
    assert label.decision_us == 14 * DAY  # its first 14 days only
    # Decided before its cut-off: nobody scores it then, so it is not learned from.
    assert st.label(st.LeadHistory("b", {}, 0, customer_us=5 * DAY), SETTINGS, NOW) is None
    lost = st.label(st.LeadHistory("c", {}, 0, lost_us=16 * DAY), SETTINGS, NOW)
    assert lost is not None and lost.outcome == 0
    gone = st.label(st.LeadHistory("d", {}, 0, disqualified_us=15 * DAY), SETTINGS, NOW)
    assert gone is not None and gone.outcome == 0
    expired = st.label(st.LeadHistory("e", {}, 0), SETTINGS, NOW)
    assert expired is not None and (expired.outcome, expired.outcome_us) == (0, 30 * DAY)
    assert st.label(st.LeadHistory("f", {}, NOW - DAY), SETTINGS, NOW) is None  # still open
    slow = st.label(st.LeadHistory("s", {}, 0, customer_us=45 * DAY), SETTINGS, NOW)
    assert slow is not None and (slow.outcome, slow.outcome_us) == (0, 30 * DAY)  # too late
    # Won after a loss: the first outcome counts.
    relost = st.label(
        st.LeadHistory("g", {}, 0, customer_us=19 * DAY, lost_us=17 * DAY), SETTINGS, NOW
    )
    assert relost is not None and relost.outcome == 0
    at_mql = Models.model_validate({"cutoff": "mql"})
    mql = st.label(st.LeadHistory("h", {}, 0, customer_us=9 * DAY, mql_us=2 * DAY), at_mql, NOW)
    assert mql is not None and mql.decision_us == 2 * DAY
    assert st.label(st.LeadHistory("i", {}, 0, customer_us=9 * DAY), at_mql, NOW) is None


def _history(n: int, seed: int = 1) -> tuple[list[st.LeadHistory], list[tuple[str, str, int]]]:
    """Leads whose industry and early pricing visits carry signal; converted leads then
    get an onboarding call and a contract value, both written only after they bought."""
    rng = random.Random(seed)
    leads, events = [], []
    for i in range(n):
        lead_id = f"L{i:04d}"
        start = i * DAY // 4
        industry = rng.choice(["software", "retail", "media", "education"])
        keen = rng.random() < (0.6 if industry == "software" else 0.2)
        for k in range(rng.randint(1, 4)):
            events.append((lead_id, "page_view", start + k * DAY))
        if keen:
            events.append((lead_id, "pricing_page_view", start + 2 * DAY))
        converts = rng.random() < (0.7 if keen else 0.08)
        attributes = {"industry": industry, "company_size": str(rng.randint(1, 500))}
        if converts:
            bought = start + 20 * DAY
            events.append((lead_id, "purchase", bought))
            events.append((lead_id, "onboarding_call", bought + DAY))
            attributes["contract_value"] = str(rng.randint(1000, 9000))
            leads.append(st.LeadHistory(lead_id, attributes, start, customer_us=bought))
        else:
            leads.append(st.LeadHistory(lead_id, attributes, start))
    return leads, events


def _book():
    text = default_playbook_text() + "\nmodels:\n  horizon: 30d\n  cutoff: 14d\n"
    return parse_playbook(text)


def test_a_feature_written_only_after_conversion_cannot_reach_the_model() -> None:
    book = _book()
    leads, events = _history(400)
    data = st.training_data(leads, st.event_log(events), book, NOW)
    trained = st.train(data, book, NOW)
    features = trained.metrics["features"]
    # The onboarding call comes after the purchase: as of each cut-off it never happened.
    assert not any("onboarding_call" in f for f in features)
    # The stage history (the purchase itself) is never a feature.
    assert not any("purchase" in f for f in features)
    # An attribute filled only for converted leads is caught by the leakage guard.
    assert "contract_value" not in features
    assert "contract_value" in trained.metrics["dropped"]
    assert any("contract_value" in w for w in trained.warnings)
    # What was known before the outcome still carries the signal.
    assert any("pricing_page_view" in f for f in features) and "industry" in features
    assert trained.metrics["roc_auc"] > 0.7
    # Validated on the newest outcomes, not a shuffle.
    held = [x for x in data.labelled if x.lead_id in set(trained.holdout_ids)]
    older = [x for x in data.labelled if x.lead_id not in set(trained.holdout_ids)]
    assert min(x.outcome_us for x in held) >= max(x.outcome_us for x in older)
    assert len(trained.metrics["lift_by_decile"]) == 10
    assert set(trained.metrics["baselines"]) == {"logistic", "naive_bayes"}


def test_stored_bytes_are_not_pickle_and_score_the_same() -> None:
    book = _book()
    leads, events = _history(300, seed=2)
    data = st.training_data(leads, st.event_log(events), book, NOW)
    trained = st.train(data, book, NOW)
    assert not trained.artifact.startswith(b"\x80")  # a pickle's first byte
    stored = model_bytes.load(trained.artifact)
    again = model_bytes.load(model_bytes.dump(stored.model, stored.schema, stored.events))
    rows = np.arange(len(data.labelled))
    first = st.holdout_scores(trained.artifact, data, rows, trained.metrics)
    second = st.holdout_scores(
        model_bytes.dump(again.model, again.schema, again.events), data, rows, trained.metrics
    )
    assert np.allclose(first, second)
    with pytest.raises(model_bytes.ModelBytesError):
        model_bytes.load(b"\x80\x04junk")


def test_a_worse_challenger_loses_and_a_better_one_wins() -> None:
    good = {"roc_auc": 0.80, "brier": 0.10}
    assert st.not_worse({"roc_auc": 0.81, "brier": 0.2}, good)
    assert not st.not_worse({"roc_auc": 0.78, "brier": 0.05}, good)
    assert st.not_worse({"roc_auc": 0.801, "brier": 0.09}, good)  # a tie: Brier decides
    assert not st.not_worse({"roc_auc": 0.799, "brier": 0.11}, good)
    assert st.not_worse({"roc_auc": 0.5, "brier": 0.3}, {"roc_auc": None})


def test_the_champion_is_judged_on_the_same_leads_it_never_saw(monkeypatch) -> None:
    book = _book()
    leads, events = _history(400, seed=3)
    log = st.event_log(events)
    # The champion was trained 80 days in, on the outcomes known then.
    early = st.training_data(leads, log, book, 80 * DAY)
    champion = st.train(early, book, 80 * DAY)
    data = st.training_data(leads, log, book, NOW)
    assert len(data.labelled) > len(early.labelled)
    # A challenger of one tiny tree ranks worse than the champion on the same leads.
    from pyrometer.predictive import models

    monkeypatch.setitem(models.LGB_PARAMS, "n_estimators", 1)
    monkeypatch.setitem(models.LGB_PARAMS, "num_leaves", 2)
    weak = st.train(data, book, NOW, champion=(champion.artifact, champion.metrics))
    judged = weak.champion
    assert judged is not None and judged["fair"] is True
    assert judged["leads"] == len(weak.holdout_ids)  # every held-out lead is new to it
    assert judged["challenger_wins"] is False
    assert judged["roc_auc"] > judged["challenger"]["roc_auc"]


def test_no_fair_comparison_keeps_the_champion() -> None:
    """On leads it was trained on a champion looks better than it is: no contest."""
    book = _book()
    leads, events = _history(300, seed=4)
    data = st.training_data(leads, st.event_log(events), book, NOW)
    champion = st.train(data, book, NOW)
    again = st.train(data, book, NOW, champion=(champion.artifact, champion.metrics))
    assert again.champion is not None
    assert again.champion["fair"] is False and again.champion["challenger_wins"] is False
    assert "fair comparison needs 2 of each" in again.champion["note"]


def test_too_few_outcomes_is_a_clear_error() -> None:
    leads = [st.LeadHistory(f"x{i}", {"a": "b"}, 0, customer_us=DAY) for i in range(30)]
    with pytest.raises(st.NotEnoughOutcomes, match="0 lost, disqualified or expired"):
        st.training_data(leads, st.event_log([]), default_playbook(), NOW)


def test_a_calendar_date_attribute_is_left_out() -> None:
    """created_at says when the history's leads arrived; every lead scored later lies past
    that range, so a date attribute must not become a feature (it was the demo model's
    strongest factor)."""
    book = _book()
    leads, events = _history(400, seed=5)
    dated = [
        st.LeadHistory(
            h.lead_id,
            {**h.attributes, "created_at": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T09:00:00Z"},
            h.first_seen_us,
            customer_us=h.customer_us,
        )
        for i, h in enumerate(leads)
    ]
    trained = st.train(st.training_data(dated, st.event_log(events), book, NOW), book, NOW)
    assert "created_at" not in trained.metrics["features"]
    assert "calendar date" in trained.metrics["dropped"]["created_at"]
    assert "industry" in trained.metrics["features"]
