"""Many writers at once for one lead lose no update, over real HTTP, on both stores."""

from __future__ import annotations

import threading

import httpx
import pytest

from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook
from pyrometer.core.reference import score_lead_reference
from pyrometer.core.timeutil import iso
from service.conftest import START, Clock, Keys

WRITERS = 8
PER_WRITER = 25
EVENTS = ("pricing_page_view", "page_view", "email_open", "demo_request", "whitepaper_download")


def test_eight_concurrent_writers_for_one_lead(live_url: str, keys: Keys, clock: Clock) -> None:
    sent: list[Event] = []
    lock = threading.Lock()
    errors: list[str] = []
    barrier = threading.Barrier(WRITERS)

    def writer(number: int) -> None:
        with httpx.Client(base_url=live_url, headers=Keys.bearer(keys.ingest), timeout=30) as http:
            barrier.wait()
            for i in range(PER_WRITER):
                # Spread over days and out of order, so caps, once and decay all matter.
                ts = START - ((number * 7919 + i * 104729) % (20 * 86_400)) * 1_000_000
                name = EVENTS[(number + i) % len(EVENTS)]
                message_id = f"w{number}-{i}"
                body = {
                    "userId": "ann",
                    "event": name,
                    "messageId": message_id,
                    "timestamp": iso(ts),
                    "properties": {"url": "/pricing"},
                }
                if i % 5 == 0:  # a few batches too, and a repeated message id
                    item = {"type": "track", **body}
                    response = http.post("/v1/batch", json={"batch": [item, item]})
                else:
                    response = http.post("/v1/track", json=body)
                if response.status_code != 200:
                    errors.append(response.text)
                    continue
                with lock:
                    sent.append(Event.create("ann", name, ts, message_id, {"url": "/pricing"}))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(sent) == WRITERS * PER_WRITER

    expected = score_lead_reference(default_playbook(), "ann", sent, {}, clock.now_us)
    lead = httpx.get(f"{live_url}/v1/leads/ann", headers=Keys.bearer(keys.read)).json()
    assert lead["event_count"] == expected.event_count == WRITERS * PER_WRITER
    assert lead["score"] == pytest.approx(round(expected.score, 4), abs=1e-4)
    assert lead["temperature"] == str(expected.temperature)
    assert lead["stage"] == str(expected.stage)
    points = sorted((x["rule"], x["event_id"], x["points"]) for x in lead["ledger"])
    assert points == sorted((x.rule, x.event_id, x.points) for x in expected.engagement_lines)
