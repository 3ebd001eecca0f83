"""Groups stored by scoring processes (scored ahead and written there) store what the
reference says, with events in any order and some sent twice."""

from __future__ import annotations

import random

import pytest

from pyrometer.core.playbook import default_playbook
from pyrometer.service import ingest as ingest_module
from pyrometer.service.ingest import SCORE_AHEAD_MIN, ingest
from pyrometer.service.reads import get_lead
from pyrometer.service.runtime import Service
from pyrometer.service.scoring_pool import ScoringPool
from service.conftest import Clock
from service.helpers import company, identifies_of, reference, tracks_of


@pytest.mark.slow
def test_a_scoring_process_stores_what_the_reference_says(
    service: Service, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = company(30, clock.now_us)
    rows = list(data.events)
    random.Random(9).shuffle(rows)
    ingest(service, [], identifies_of(data.leads, clock.now_us - 10**9))
    tracks = tracks_of(rows)
    assert len(tracks) > 3 * SCORE_AHEAD_MIN
    pool = ScoringPool(service, 2)
    service.scoring_pool = pool

    def not_here(*args: object) -> set[str]:
        raise AssertionError("a large group was stored by the server process")

    # The groups below are stored by the scoring processes, not in this process.
    monkeypatch.setattr(ingest_module, "store_ahead", not_here)
    monkeypatch.setattr(ingest_module, "_store_scored_ahead", not_here)
    try:
        step = 2 * SCORE_AHEAD_MIN
        for start in range(0, len(tracks), step):
            chunk = tracks[start : start + step]
            # Each group repeats a few events of the one before: they must count once.
            again = tracks[max(0, start - 5) : start]
            result = ingest(service, again + chunk, [])
            assert result.duplicates == len(again)
    finally:
        service.scoring_pool = None
        pool.close()
    clock.advance(86_400)
    expected = reference(default_playbook(), data, clock.now_us)
    for lead_id, ref in expected.items():
        got = get_lead(service, lead_id)
        assert got is not None
        assert got["score"] == pytest.approx(round(ref.score, 4), abs=1e-4), lead_id
        assert got["temperature"] == str(ref.temperature)
        assert got["stage"] == str(ref.stage)
        assert got["event_count"] == ref.event_count
