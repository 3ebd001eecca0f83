"""A stage move dated in the past says whether it decides the stage; reports count an
imported history by when each lead first appeared, not when it was imported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from pyrometer.core.timeutil import iso
from pyrometer.service.importer import import_events
from pyrometer.service.runtime import Service
from service.conftest import START, Clock, Keys

DAY_US = 86_400_000_000


def _move(client: TestClient, keys: Keys, stage: str, at_us: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"stage": stage}
    if at_us is not None:
        body["at"] = iso(at_us)
    answer = client.post("/v1/leads/ann/stage", json=body, headers=Keys.bearer(keys.admin))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_past_stage_move_says_when_a_later_one_decides(
    client: TestClient, keys: Keys, clock: Clock
) -> None:
    track = {"userId": "ann", "event": "demo_request", "messageId": "m1"}
    client.post("/v1/track", json=track, headers=Keys.bearer(keys.ingest))
    won = _move(client, keys, "won", START - DAY_US)
    assert won["effective"] is True and "reason" not in won and won["stage"] == "customer"
    clock.advance(60)
    lost = _move(client, keys, "lost", START - 2 * DAY_US)  # before the win
    assert lost["effective"] is False and lost["stage"] == "customer"
    assert "won" in lost["reason"] and iso(START - DAY_US) in lost["reason"]
    recycled = _move(client, keys, "recycled", None)  # now: after the win, so it decides
    assert recycled["effective"] is True and recycled["stage"] != "customer"


def test_the_summary_counts_imported_leads_by_their_first_event(
    service: Service, client: TestClient, keys: Keys, clock: Clock, tmp_path: Path
) -> None:
    rows = ["lead_id,event,timestamp,event_id"]
    for lead, days_ago in (("old", 60), ("old", 2), ("recent", 5), ("recent", 1)):
        rows.append(f"{lead},demo_request,{iso(clock.now_us - days_ago * DAY_US)},{lead}{days_ago}")
    path = tmp_path / "history.csv"
    path.write_text("\n".join(rows) + "\n")
    import_events(service, path)
    # A lead known by its attributes before it did anything is first seen then.
    identify = {"userId": "known", "messageId": "k1", "traits": {"Job Title": "CTO"}}
    client.post("/v1/identify", json=identify, headers=Keys.bearer(keys.ingest))
    clock.advance(60)

    def leads_since(days: int) -> int:
        since = iso(clock.now_us - days * DAY_US)
        params = {"since": since}
        answer = client.get("/v1/reports/summary", params=params, headers=Keys.bearer(keys.read))
        assert answer.status_code == 200, answer.text
        return int(answer.json()["leads"])

    assert leads_since(30) == 2  # recent and known; old first appeared 60 days ago
    assert leads_since(90) == 3
    assert leads_since(3) == 1  # only known: recent's first event was 5 days ago
