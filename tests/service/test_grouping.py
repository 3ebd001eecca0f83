"""Group commit: requests share a transaction, yet each keeps its own outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from pyrometer.service import grouping
from pyrometer.service.grouping import GroupCommitter
from pyrometer.service.ingest import ingest_many
from pyrometer.service.inputs import IngestResult, Track
from pyrometer.service.runtime import Service
from service.conftest import START


def test_a_repeated_id_counts_for_the_first_request_only(service: Service) -> None:
    first = [Track("m1", "demo_request", START, user_id="ann")]
    second = [Track("m1", "demo_request", START, user_id="ann"), Track("m2", "x", START, "ann")]
    assert ingest_many(service, [(first, []), (second, [])]) == [
        IngestResult(1, 0),
        IngestResult(1, 1),
    ]


def test_a_failing_request_does_not_fail_its_group(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    gate = threading.Event()

    def fake(
        service_: Service, parts: Sequence[tuple[Sequence[Track], Sequence[object]]]
    ) -> list[IngestResult]:
        calls.append(len(parts))
        gate.wait(5)  # hold the first group so the others queue up behind it
        if any(t.name == "boom" for tracks, _ in parts for t in tracks):
            raise ValueError("boom")
        return [IngestResult(len(tracks), 0) for tracks, _ in parts]

    monkeypatch.setattr(grouping, "ingest_many", fake)
    committer = GroupCommitter(service)
    outcomes: dict[str, object] = {}

    def send(name: str) -> None:
        try:
            outcomes[name] = committer.submit([Track(name, name, START, user_id="a")], [])
        except ValueError as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=send, args=(name,)) for name in ("first", "ok", "boom")]
    threads[0].start()
    while not calls:
        time.sleep(0.001)
    for thread in threads[1:]:
        thread.start()
    while committer._queue.qsize() < 2:  # both wait behind the first group
        time.sleep(0.001)
    gate.set()
    for thread in threads:
        thread.join()
    committer.stop()
    assert calls[:2] == [1, 2]  # "ok" and "boom" were grouped, then retried alone
    assert outcomes["first"] == IngestResult(1, 0)
    assert outcomes["ok"] == IngestResult(1, 0)
    assert isinstance(outcomes["boom"], ValueError)
