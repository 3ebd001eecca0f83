"""`POST /v1/playbook/backtest`: a job over the stored events; its result is the pure
backtest of the same events."""

from __future__ import annotations

import random

from fastapi.testclient import TestClient

from pyrometer.backtest.run import run
from pyrometer.backtest.sweep import as_of_grid
from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook, default_playbook_text, parse_playbook
from pyrometer.core.timeutil import iso
from pyrometer.service import backtest
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Track
from pyrometer.service.runtime import Service
from service.conftest import START, Clock, Keys

DAY_US = 86_400_000_000


def _history(service: Service) -> dict[str, list[Event]]:
    rng = random.Random(3)
    tracks = []
    for n in range(30):
        lead = f"lead{n:02d}"
        day = rng.uniform(0, 40)
        names = ["email_open", "pricing_page_view"] * rng.randint(0, 3)
        if n % 3 == 0:
            names += ["demo_request", "contact_sales"]
        for i, name in enumerate(names):
            at = START + int((day + i * 0.5) * DAY_US)
            tracks.append(Track(f"{lead}-{i}", name, at, user_id=lead))
        if n % 3 == 0 and n % 2 == 0:
            tracks.append(Track(f"{lead}-won", "purchase", START + int((day + 9) * DAY_US), lead))
    ingest(service, tracks, [])
    by_lead: dict[str, list[Event]] = {}
    for t in tracks:
        by_lead.setdefault(t.user_id or "", []).append(
            Event(t.user_id or "", t.name, t.ts_us, t.message_id)
        )
    return by_lead


def test_a_backtest_job_gives_the_pure_backtest_of_the_stored_events(
    client: TestClient, keys: Keys, service: Service, clock: Clock
) -> None:
    events = _history(service)
    clock.advance(120 * 86_400)
    admin, read = Keys.bearer(keys.admin), Keys.bearer(keys.read)
    proposed = default_playbook_text().replace("hot: 50", "hot: 30")
    body = {"yaml": proposed, "from": iso(START + DAY_US), "to": iso(START + 60 * DAY_US)}
    assert client.post("/v1/playbook/backtest", json=body, headers=read).status_code == 403
    answer = client.post("/v1/playbook/backtest", json=body, headers=admin)
    assert answer.status_code == 202, answer.text
    job = answer.json()["job"]
    assert (job["kind"], job["status"], job["total"]) == ("backtest", "running", len(events))
    assert len(events) == 25
    times = as_of_grid(START + DAY_US, START + 60 * DAY_US, DAY_US)
    backtest.run_job(
        service,
        job["id"],
        backtest.Request(parse_playbook(proposed), tuple(times), 30 * DAY_US, None),
    )
    done = client.get(f"/v1/jobs/{job['id']}", headers=read).json()
    assert done["status"] == "done" and done["done"] == 25
    result = done["result"]
    want = run(
        [("in force", default_playbook()), ("proposed", parse_playbook(proposed))],
        sorted(events.items()), {}, None, times, 30 * DAY_US,
    ).to_dict()  # fmt: skip
    assert result["playbooks"] == want["playbooks"]
    assert result["as_of"]["count"] == 60 and result["leads"] == 25
    in_force, lower = result["playbooks"]
    assert lower["bands"][0]["observations"] > in_force["bands"][0]["observations"]
    assert in_force["won_leads"] == 5


def test_bad_backtest_requests_name_the_field(client: TestClient, keys: Keys) -> None:
    admin = Keys.bearer(keys.admin)
    bad_book = client.post(
        "/v1/playbook/backtest", json={"yaml": "temperature: {hot: 1, warm: 5}"}, headers=admin
    )
    assert bad_book.status_code == 422 and bad_book.json()["detail"][0]["loc"][:2] == [
        "body",
        "yaml",
    ]
    backwards = client.post(
        "/v1/playbook/backtest",
        json={
            "yaml": default_playbook_text(),
            "from": "2026-10-01T00:00:00Z",
            "to": "2026-09-01T00:00:00Z",
        },
        headers=admin,
    )
    assert backwards.status_code == 422 and backwards.json()["detail"][0]["loc"] == ["body", "from"]
    never = client.post(
        "/v1/playbook/backtest",
        json={"yaml": default_playbook_text(), "every": "0d"},
        headers=admin,
    )
    assert never.status_code == 422 and "every" in never.json()["detail"][0]["loc"]
