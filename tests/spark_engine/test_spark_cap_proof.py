"""The cap proof on Spark: windows it settles are summed without ranking their events, and
only leads with a window (or a tie of lifecycle events) it cannot settle are redone
exactly; both give the reference's scores."""

from __future__ import annotations

from pyspark.sql import SparkSession
from test_equivalence import assert_same

from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook_text, parse_playbook
from pyrometer.core.reference import score_reference
from pyrometer.core.timeutil import to_us
from pyrometer.engines.spark import SparkBatchScorer

from .conftest import frames

DAY = 86_400_000_000
WEEK = 7 * DAY
BASE = (to_us("2026-10-01T00:00:00Z") // WEEK) * WEEK + 3_600_000_000  # a week's first hour
AS_OF = BASE + 40 * DAY


def playbook():
    text = default_playbook_text().replace(
        "cap: {points: 30, per: 1d}", "cap: {points: 25, per: 7d}", 1
    )  # pricing: 10 points, 25 a week: two events earn all, the third 5, then 0
    parsed = parse_playbook(text, source="test")
    assert parsed.engagement[0].cap is not None and parsed.engagement[0].slots == 3
    return parsed


def events() -> list[Event]:
    rows = [
        # Four pricing visits on four days of one week: the cap bites across decay
        # steps, so only ranking the events gives their points (redone).
        *[("ranked", "pricing_page_view", BASE + i * DAY, f"r{i}") for i in range(4)],
        # Three on one day: past the cap, but all decay alike (closed form).
        *[("one_day", "pricing_page_view", BASE + i * 60_000_000, f"o{i}") for i in range(3)],
        # Two visits in a week: within what earns whole points (the proof).
        ("within", "pricing_page_view", BASE, "w0"),
        ("within", "pricing_page_view", BASE + 3 * DAY, "w1"),
        # A once rule twice: the earliest counts (closed form).
        ("twice", "newsletter_signup", BASE + 2 * DAY, "t1"),
        ("twice", "newsletter_signup", BASE, "t0"),
        # Two lifecycle events at the same time: the greater event id wins (redone).
        ("tie", "lost", BASE + DAY, "z9"),
        ("tie", "purchase", BASE + DAY, "z1"),
        ("tie", "page_view", BASE + 2 * DAY, "z5"),
        # Two at one time with the same stage: settled without the ids.
        ("same", "won", BASE + DAY, "s2"),
        ("same", "purchase", BASE + DAY, "s1"),
    ]
    return [Event.create(lead, name, ts, eid, {}) for lead, name, ts, eid in rows]


def test_only_leads_the_proof_leaves_open_are_redone(spark: SparkSession) -> None:
    book, stream = playbook(), events()
    event_frame, _ = frames(spark, stream, {})
    scorer = SparkBatchScorer(book, spark)
    got = scorer.collect(event_frame, None, AS_OF)
    assert scorer.last_redone == 2  # "ranked" and "tie"
    want = score_reference(book, stream, {}, AS_OF)
    assert set(got) == set(want)
    for lead, expected in want.items():
        assert_same(expected, got[lead], "spark")
    assert str(got["tie"].stage) == "lead"  # lost (z9) after purchase (z1)
    assert str(got["same"].stage) == "customer"
    # Without the redone leads, nothing is redone.
    settled = [e for e in stream if e.lead_id not in ("ranked", "tie")]
    event_frame, _ = frames(spark, settled, {})
    again = scorer.collect(event_frame, None, AS_OF)
    assert scorer.last_redone == 0
    for lead, expected in score_reference(book, settled, {}, AS_OF).items():
        assert_same(expected, again[lead], "spark")
