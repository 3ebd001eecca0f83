"""The recorded history of a lead ends where the lead is: chaining its transitions from
its first class gives its stored temperature and stage, however late its events come.

Routing acts on transitions, so a lead hot with a history that ends at warm would never
be routed. Late events (a batch holding a lead's older events after its cooling was
recorded) are where the two could part.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook
from pyrometer.core.timeutil import to_us
from pyrometer.service.scoring import advance_decay, apply_events, blank_record

BOOK = default_playbook()
START = to_us("2026-06-01T00:00:00Z")
DAY = 86_400_000_000
NAMES = ("demo_request", "contact_sales", "pricing_page_view", "page_view", "sales_accepted")

events = st.lists(
    st.tuples(st.sampled_from(NAMES), st.integers(0, 90 * DAY)), min_size=1, max_size=30
)


@settings(max_examples=150, deadline=None)
@given(events, st.lists(st.integers(1, 10), min_size=1, max_size=6), st.booleans())
def test_transitions_chain_to_the_stored_classes(
    made: list[tuple[str, int]], cuts: list[int], scheduler: bool
) -> None:
    stream = [Event("lead", name, START + at, f"e{n}", {}) for n, (name, at) in enumerate(made)]
    record = blank_record(BOOK, 1, "lead", {}, START)
    ends = {"temperature": record.temperature, "stage": record.stage}
    now = START
    position = 0
    for cut in cuts * 5:
        if position >= len(stream):
            break
        batch = stream[position : position + cut]
        position += cut
        # Each batch arrives a few days on, its events in any order of time.
        now = max(now, max(e.ts_us for e in batch)) + 3 * DAY
        change = apply_events(BOOK, record, batch, now)
        if scheduler:
            later = advance_decay(BOOK, change.record, now + 20 * DAY)
            change = type(change)(later.record, (*change.transitions, *later.transitions))
            now += 20 * DAY
        for transition in change.transitions:
            ends[transition.kind] = transition.new
        record = change.record
        assert (ends["temperature"], ends["stage"]) == (record.temperature, record.stage)
