"""What the live queue's stream reads: transitions into and out of hot, by id, from the
store (so it sees every process's writes), on SQLite and PostgreSQL."""

from __future__ import annotations

from pyrometer.service.decay import run_all_due
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Track
from pyrometer.service.runtime import Service
from pyrometer.store.live import hot_changes_after, last_transition_id
from tests.service.conftest import Clock

HOT_EVENTS = ("demo_request", "webinar_attended", "form_submit", "case_study_download")


def test_turning_hot_and_cooling_are_both_read_after_the_last_id(
    service: Service, clock: Clock
) -> None:
    start = service.read(last_transition_id)
    warm = [Track("w-1", "demo_request", clock.now_us, user_id="warm")]
    ingest(service, warm, [])  # cold to warm: not the queue's business
    assert service.read(lambda c: hot_changes_after(c, start)) == []
    tracks = [
        Track(f"m-{i}", name, clock.now_us, user_id="ann") for i, name in enumerate(HOT_EVENTS)
    ]
    ingest(service, tracks, [])
    turned = service.read(lambda c: hot_changes_after(c, start))
    assert [lead for _, lead in turned] == ["ann"]
    seen = turned[-1][0]
    assert service.read(last_transition_id) >= seen
    clock.advance(120 * 86_400)  # months without a signal: she cools
    run_all_due(service)
    cooled = service.read(lambda c: hot_changes_after(c, seen))
    assert [lead for _, lead in cooled] == ["ann"]
    assert service.read(lambda c: hot_changes_after(c, cooled[-1][0])) == []
