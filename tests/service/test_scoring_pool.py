"""Groups stored by scoring processes (scored ahead and written there) store what the
reference says, with events in any order and some sent twice."""

from __future__ import annotations

import gc
import os
import random
import signal

import pytest

from pyrometer.core.playbook import default_playbook
from pyrometer.service import ingest as ingest_module
from pyrometer.service.collector import SERVING_THRESHOLDS
from pyrometer.service.ingest import SCORE_AHEAD_MIN, ingest
from pyrometer.service.openmp import WAIT_POLICY
from pyrometer.service.reads import get_lead
from pyrometer.service.runtime import Service
from pyrometer.service.scoring_pool import ScoringPool, groups_stored
from pyrometer.store import repo
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


@pytest.mark.slow
def test_groups_go_to_the_first_free_scoring_process(
    service: Service, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each scoring process keeps the event features of the leads it wrote: groups that
    come one at a time all go to the first, so its cache stays current (taken in turn, a
    lead both wrote had to be caught up from the store at every group); the second takes
    a group only while the first is busy. Each serves as the server process does: the
    collector tuned, OpenMP's threads sleeping between predictions."""
    monkeypatch.delenv(WAIT_POLICY, raising=False)
    data = company(40, clock.now_us)
    ingest(service, [], identifies_of(data.leads, clock.now_us - 10**9))
    tracks = tracks_of(list(data.events))
    assert len(tracks) >= 4 * SCORE_AHEAD_MIN
    pool = ScoringPool(service, 2)
    service.scoring_pool = pool
    try:
        for executor in pool._executors:
            assert executor.submit(os.getenv, WAIT_POLICY).result(timeout=60) == "PASSIVE"
            assert executor.submit(gc.get_threshold).result(timeout=60) == SERVING_THRESHOLDS
        for start in range(0, 4 * SCORE_AHEAD_MIN, SCORE_AHEAD_MIN):
            ingest(service, tracks[start : start + SCORE_AHEAD_MIN], [])
        where = [e.submit(groups_stored).result(timeout=60) for e in pool._executors]
        assert where == [4, 0]
        # Two groups at once: the first busy, the next goes to the second; once the
        # first is free again, back to it.
        first = pool._take()
        second = pool._take()
        assert (first, second) == (0, 1)
        pool._done(first)
        assert pool._take() == 0
    finally:
        service.scoring_pool = None
        pool.close()


@pytest.mark.slow
def test_a_scoring_process_that_dies_is_replaced_and_its_group_stored(
    service: Service, clock: Clock
) -> None:
    """A scoring process killed between groups: the group sent to it is stored by the
    server process, a new process takes its place, and groups go to it again."""
    data = company(30, clock.now_us)
    ingest(service, [], identifies_of(data.leads, clock.now_us - 10**9))
    tracks = tracks_of(list(data.events))
    groups = [
        tracks[i : i + SCORE_AHEAD_MIN] for i in range(0, 3 * SCORE_AHEAD_MIN, SCORE_AHEAD_MIN)
    ]
    pool = ScoringPool(service, 2)
    service.scoring_pool = pool
    try:
        ingest(service, groups[0], [])
        first = pool._executors[0]
        os.kill(first.submit(os.getpid).result(timeout=60), signal.SIGKILL)
        result = ingest(service, groups[1], [])
        assert result.accepted == len(groups[1])  # stored here: nothing lost
        assert pool._executors[0] is not first
        ingest(service, groups[2], [])
        where = [e.submit(groups_stored).result(timeout=60) for e in pool._executors]
        assert where == [1, 0]
    finally:
        service.scoring_pool = None
        pool.close()
    sent = {t.message_id for group in groups for t in group}
    leads = {t.user_id for group in groups for t in group}
    stored = service.read(
        lambda conn: {e.event_id for lead in leads for e in repo.lead_events(conn, lead)}
    )
    assert sent <= stored
