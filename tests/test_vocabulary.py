"""Segment's own event and trait names mean the default vocabulary, in every engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import PASS1, batch_score
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.core.incremental import apply_attributes, apply_event, new_state, snapshot
from pyrometer.core.model import Event, ScoredLead
from pyrometer.core.playbook import (
    PlaybookError,
    default_playbook,
    default_playbook_text,
    parse_playbook,
)
from pyrometer.core.reference import score_reference
from pyrometer.core.timeutil import to_us
from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect
from pyrometer.engines.native.build import compiler
from pyrometer.io.readers import open_events, open_leads

AS_OF = to_us("2026-11-23T18:00:00Z")
PASS1_VALUES = [False] + ([True] if compiler() is not None else [])
# (Segment spec name, the default playbook's name), one lead per pair: same score expected.
PAIRS = [
    ("Demo Requested", "demo_request"),
    ("Trial Started", "trial_signup"),
    ("Signed Up", "trial_signup"),
    ("Account Created", "form_submit"),
    ("Product Viewed", "product_page_view"),
    ("Product Added", "cart_add"),
    ("Checkout Started", "cart_add"),
    ("Order Completed", "purchase"),
    ("Email Opened", "email_open"),
    ("Email Link Clicked", "email_click"),
    ("Unsubscribed", "unsubscribe"),
    ("Email Marked as Spam", "unsubscribe"),
]
TRAITS: dict[str, Any] = {
    "title": "VP Sales",
    "email": "ann@acme.example",
    "company": {"name": "Acme", "employee_count": 300, "industry": "SaaS"},
    "address": {"country": "DE"},
}


def _events(lead: str, name: str) -> list[Event]:
    return [
        Event.create(lead, name, f"2026-11-2{day}T10:00:00Z", f"{lead}-{k}")
        for k, day in enumerate((1, 2, 2))
    ]


def _leads() -> dict[str, list[Event]]:
    out = {}
    for i, (segment, ours) in enumerate(PAIRS):
        out[f"s{i}"] = _events(f"s{i}", segment)
        out[f"d{i}"] = _events(f"d{i}", ours)
    return out


def _incremental(events: list[Event], lead: str) -> ScoredLead:
    book = default_playbook()
    state = apply_attributes(book, new_state(lead), {}, 0).state
    for event in reversed(events):  # any order gives the same state
        state = apply_event(book, state, event).state
    return snapshot(book, state, AS_OF)


def _same(a: ScoredLead, b: ScoredLead) -> None:
    assert (a.score, a.temperature, a.stage, a.suppressed) == pytest.approx(
        (b.score, b.temperature, b.stage, b.suppressed)
    )


def test_segment_event_names_score_as_the_default_names_in_reference_and_incremental() -> None:
    book = default_playbook()
    leads = _leads()
    events = [event for evs in leads.values() for event in evs]
    ref = score_reference(book, events, {}, AS_OF)
    for i, (segment, ours) in enumerate(PAIRS):
        assert ref[f"s{i}"].engagement != 0 or ours in book.suppression.events, segment
        _same(ref[f"s{i}"], ref[f"d{i}"])
        _same(_incremental(leads[f"s{i}"], f"s{i}"), ref[f"s{i}"])
    assert ref["s7"].stage == "customer"  # Order Completed moves the stage like purchase
    assert ref["s10"].suppressed and ref["s11"].suppressed


@pytest.mark.parametrize("native", PASS1)
def test_segment_event_names_score_as_the_default_names_in_batch(native: bool) -> None:
    book = default_playbook()
    events = [event for evs in _leads().values() for event in evs]
    batch = batch_score(book, events, {}, AS_OF, explain=True, native=native)
    ref = score_reference(book, events, {}, AS_OF)
    for lead, scored in ref.items():
        _same(batch[lead], scored)
    # The ledger keeps the name the event was sent with.
    assert {line.event for line in batch["s7"].engagement_lines} == {"order_completed"}
    assert {line.rule for line in batch["s7"].engagement_lines} == {"purchase"}


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, len(PAIRS) - 1),
            st.booleans(),
            st.integers(0, 40 * 24),
        ),
        max_size=40,
    ),
    st.sampled_from(PASS1_VALUES),
)
def test_random_streams_with_segment_names_agree_in_every_engine(
    draws: list[tuple[str, int, bool, int]], native: bool
) -> None:
    """Each event sent under its Segment name or the playbook's: every engine gives the
    scores the reference gives the same stream under the playbook's names."""
    book = default_playbook()
    sent, plain = [], []
    for i, (lead, pair, segment, hours) in enumerate(draws):
        ts = AS_OF - hours * 3_600_000_000
        sent.append(Event.create(lead, PAIRS[pair][0 if segment else 1], ts, f"e{i:03d}"))
        plain.append(Event.create(lead, PAIRS[pair][1], ts, f"e{i:03d}"))
    expected = score_reference(book, plain, {}, AS_OF)
    assert score_reference(book, sent, {}, AS_OF).keys() == expected.keys()
    batch = batch_score(book, sent, {}, AS_OF, native=native)
    for lead, scored in expected.items():
        _same(score_reference(book, sent, {}, AS_OF)[lead], scored)
        _same(batch[lead], scored)
        _same(_incremental([e for e in sent if e.lead_id == lead], lead), scored)


def test_identify_traits_give_fit_through_aliases_and_nested_objects() -> None:
    book = default_playbook()
    ref = score_reference(book, [], {"ann": TRAITS}, AS_OF)["ann"]
    # decision_maker (title), company_size_core (company.employee_count), target_industry
    assert {line.rule for line in ref.fit_lines} == {
        "decision_maker",
        "company_size_core",
        "target_industry",
    }
    assert ref.fit == 18
    # The playbook's own name wins over an alias.
    own = score_reference(book, [], {"bob": {**TRAITS, "job_title": "Student"}}, AS_OF)["bob"]
    assert "decision_maker" not in {line.rule for line in own.fit_lines}


def test_batch_reads_nested_identify_traits_from_a_segment_file(tmp_path: Path) -> None:
    leads = tmp_path / "identify.jsonl"
    leads.write_text(
        json.dumps({"type": "identify", "userId": "ann", "traits": TRAITS})
        + "\n"
        + json.dumps({"type": "identify", "userId": "bob", "traits": {"title": "Intern"}})
        + "\n"
    )
    events = tmp_path / "track.jsonl"
    events.write_text(
        json.dumps(
            {
                "type": "track",
                "userId": "ann",
                "event": "Order Completed",
                "timestamp": "2026-11-22T10:00:00Z",
                "messageId": "m1",
            }
        )
        + "\n"
    )
    con = connect()
    book = default_playbook()
    scorer = DuckDBBatchScorer(book, con)
    scored = scorer.explain(open_events(con, events), open_leads(con, leads), AS_OF, ["ann", "bob"])
    assert scored["ann"].fit == 18
    assert scored["ann"].stage == "customer"
    assert scored["bob"].fit == 0


def test_a_team_edits_the_aliases() -> None:
    text = default_playbook_text_with(
        "aliases:\n  events:\n    demo_request: [Meeting Booked]\n"
        "  attributes:\n    job_title: [role]\n"
    )
    book = parse_playbook(text)
    event = Event.create("a", "Meeting Booked", "2026-11-23T10:00:00Z", "e1")
    scored = score_reference(book, [event], {"a": {"role": "CEO"}}, AS_OF)["a"]
    assert scored.engagement == 20 and scored.fit == 8
    # Without the default aliases, Segment's names mean nothing any more.
    assert book.event_name("order_completed") == "order_completed"


def default_playbook_text_with(aliases: str) -> str:
    text = default_playbook_text()
    return text[: text.index("\naliases:")] + "\n" + aliases


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        (
            "aliases:\n  events:\n    demo_request: [Booked]\n    form_submit: [Booked]\n",
            "'booked' is an alias of both 'demo_request' and 'form_submit'",
        ),
        (
            "aliases:\n  events:\n    demo_request: [Page View]\n",
            "'page_view' is named by the playbook's own rules",
        ),
        (
            "aliases:\n  events:\n    demo_request: [booked]\n    booked: [meeting]\n",
            "'booked' is an alias of 'demo_request' and has aliases of its own",
        ),
        ("aliases:\n  colours: {}\n", "aliases.colours"),
    ],
)
def test_bad_aliases_are_errors_with_the_path(aliases: str, message: str) -> None:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(default_playbook_text_with(aliases), source="p.yaml")
    assert message in str(caught.value)
