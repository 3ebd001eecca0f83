"""The service reads Segment's names through the playbook's aliases, as the batch does."""

from __future__ import annotations

from fastapi.testclient import TestClient

from pyrometer.core.playbook import default_playbook_text
from service.conftest import Keys


def test_segment_names_and_nested_traits_in_the_service(client: TestClient, keys: Keys) -> None:
    ingest, read = Keys.bearer(keys.ingest), Keys.bearer(keys.read)
    identify = {
        "userId": "ann",
        "messageId": "i1",
        "timestamp": "2026-11-23T08:00:00Z",
        "traits": {
            "title": "VP Sales",
            "company": {"name": "Acme", "employee_count": 300, "industry": "SaaS"},
        },
    }
    assert client.post("/v1/identify", json=identify, headers=ingest).status_code == 200
    for i, event in enumerate(["Demo Requested", "Order Completed"]):
        track = {
            "userId": "ann",
            "event": event,
            "messageId": f"t{i}",
            "timestamp": "2026-11-23T08:30:00Z",
        }
        assert client.post("/v1/track", json=track, headers=ingest).status_code == 200
    lead = client.get("/v1/leads/ann", headers=read).json()
    assert lead["fit"] == 18  # decision_maker 8, company_size_core 6, target_industry 4
    assert lead["engagement"] == 45  # demo_request 20, purchase 25
    assert lead["stage"] == "customer"
    assert {(line.get("event"), line["rule"]) for line in lead["ledger"]} >= {
        ("demo_requested", "demo_request"),
        ("order_completed", "purchase"),
    }


def test_unknown_events_report(client: TestClient, keys: Keys) -> None:
    ingest, read, admin = Keys.bearer(keys.ingest), Keys.bearer(keys.read), Keys.bearer(keys.admin)
    sent = [
        ("pgae_view", "2026-11-22T08:00:00Z"),
        ("Pgae View", "2026-11-23T07:00:00Z"),
        ("foo", "2026-11-21T08:00:00Z"),
        ("Order Completed", "2026-11-23T08:00:00Z"),
        ("demo_request", "2026-11-23T08:00:00Z"),
    ]
    batch = [
        {"type": "track", "userId": "ann", "event": name, "messageId": f"m{i}", "timestamp": ts}
        for i, (name, ts) in enumerate(sent)
    ]
    assert client.post("/v1/batch", json={"batch": batch}, headers=ingest).status_code == 200
    assert client.get("/v1/reports/unknown-events", headers=ingest).status_code == 403
    report = client.get("/v1/reports/unknown-events", headers=read).json()
    assert report["total"] == 3 and report["names"] == 2 and report["playbook_version"] == 1
    assert [(e["event"], e["count"]) for e in report["events"]] == [("pgae_view", 2), ("foo", 1)]
    assert report["events"][0]["first_seen"] == "2026-11-22T08:00:00Z"
    assert report["events"][0]["last_seen"] == "2026-11-23T07:00:00Z"
    limited = client.get("/v1/reports/unknown-events?limit=1", headers=read).json()
    assert len(limited["events"]) == 1 and limited["total"] == 3
    # Publishing an alias makes the name known at once.
    text = default_playbook_text().replace(
        "    demo_request: [Demo Requested]",
        "    demo_request: [Demo Requested]\n    page_view: [pgae_view]",
    )
    assert client.post("/v1/playbook", json={"yaml": text}, headers=admin).status_code == 202
    report = client.get("/v1/reports/unknown-events", headers=read).json()
    assert report["playbook_version"] == 2
    assert [(e["event"], e["count"]) for e in report["events"]] == [("foo", 1)]


def test_validate_warns_about_an_event_in_no_vocabulary(client: TestClient, keys: Keys) -> None:
    text = default_playbook_text().replace("    event: product_page_view", "    event: pgae_view")
    checked = client.post(
        "/v1/playbook/validate", json={"yaml": text}, headers=Keys.bearer(keys.read)
    ).json()
    assert checked["valid"] is True
    assert checked["warnings"][0]["path"].startswith("engagement[2].event (line ")
    assert "did you mean 'page_view'?" in checked["warnings"][0]["msg"]
