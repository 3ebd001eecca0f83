"""The service reads Segment's names through the playbook's aliases, as the batch does."""

from __future__ import annotations

from fastapi.testclient import TestClient

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
