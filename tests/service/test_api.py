"""The HTTP API: auth, Segment ingest, reading a lead, validation errors that name fields."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient

from service.conftest import Clock, Keys


def _track(lead: str, event: str, message_id: str, **extra: object) -> dict[str, object]:
    return {
        "type": "track",
        "userId": lead,
        "event": event,
        "messageId": message_id,
        "timestamp": "2026-11-23T08:00:00Z",
        **extra,
    }


def test_no_key_is_401_and_wrong_scope_is_403(client: TestClient, keys: Keys) -> None:
    body = _track("ann", "demo_request", "m1")
    assert client.post("/v1/track", json=body).status_code == 401
    assert client.post("/v1/track", json=body, headers=Keys.bearer("nope")).status_code == 401
    assert client.post("/v1/track", json=body, headers=Keys.bearer(keys.read)).status_code == 403
    assert client.get("/v1/leads", headers=Keys.bearer(keys.ingest)).status_code == 403
    publish = {"yaml": "x: 1"}
    assert (
        client.post("/v1/playbook", json=publish, headers=Keys.bearer(keys.read)).status_code == 403
    )
    assert client.post("/v1/track", json=body, headers=Keys.bearer(keys.ingest)).status_code == 200
    assert client.get("/v1/leads/ann", headers=Keys.bearer(keys.read)).status_code == 200
    assert client.get("/v1/leads/ann", headers=Keys.bearer(keys.admin)).status_code == 200


def test_segment_basic_auth_with_the_key_as_user_name(client: TestClient, keys: Keys) -> None:
    token = base64.b64encode(f"{keys.ingest}:".encode()).decode()
    response = client.post(
        "/v1/track",
        json=_track("ann", "demo_request", "m1"),
        headers={"Authorization": f"Basic {token}"},
    )
    assert response.status_code == 200, response.text


def test_track_then_read_the_lead(client: TestClient, keys: Keys, clock: Clock) -> None:
    batch = {
        "batch": [
            _track("ann", "Demo Request", "m1"),
            _track("ann", "pricing_page_view", "m2"),
            _track("ann", "pricing-page-view", "m3"),
            _track("ann", "pricing_page_view", "m4"),
            {
                "type": "page",
                "userId": "ann",
                "messageId": "m5",
                "properties": {"url": "/blog"},
                "timestamp": "2026-11-23T08:30:00Z",
            },
        ]
    }
    response = client.post("/v1/batch", json=batch, headers=Keys.bearer(keys.ingest))
    assert response.json() == {"success": True, "accepted": 5, "duplicates": 0}
    lead = client.get("/v1/leads/ann", headers=Keys.bearer(keys.read)).json()
    assert lead["lead_id"] == "ann"
    assert lead["score"] == 51 and lead["engagement"] == 51 and lead["fit"] == 0
    assert lead["temperature"] == "hot" and lead["stage"] == "mql"
    assert [e["event_id"] for e in lead["events"]] == ["m5", "m4", "m3", "m2", "m1"]
    assert {(t["kind"], t["to"]) for t in lead["transitions"]} == {
        ("temperature", "warm"),
        ("temperature", "hot"),
        ("stage", "mql"),
    }
    assert sum(line["value"] for line in lead["ledger"]) == 51
    clock.advance(40 * 86_400)
    cooled = client.get("/v1/leads/ann", headers=Keys.bearer(keys.read)).json()
    assert cooled["temperature"] == "warm" and cooled["score"] < 30


def test_invalid_requests_name_the_field(client: TestClient, keys: Keys) -> None:
    auth = Keys.bearer(keys.admin)
    missing = client.post("/v1/track", json={"userId": "ann", "messageId": "x"}, headers=auth)
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "event"]
    nobody = client.post("/v1/track", json={"event": "x"}, headers=auth)
    assert nobody.status_code == 422 and "userId or anonymousId" in nobody.text
    bad_time = client.post(
        "/v1/track", json=_track("ann", "x", "y", timestamp="yesterday"), headers=auth
    )
    assert bad_time.json()["detail"][0]["loc"] == ["body", "timestamp"]
    future = client.post(
        "/v1/track", json=_track("ann", "x", "y", timestamp="2030-01-01T00:00:00Z"), headers=auth
    )
    assert future.status_code == 422 and future.json()["detail"][0]["loc"] == ["body", "timestamp"]
    nul = client.post("/v1/track", json=_track("ann\u0000", "x", "y"), headers=auth)
    assert nul.status_code == 422 and nul.json()["detail"][0]["loc"] == ["body", "userId"]
    unknown_lead = client.get("/v1/leads/nobody", headers=auth)
    assert unknown_lead.status_code == 404
    bad_sort = client.get("/v1/leads?sort=name", headers=auth)
    assert bad_sort.status_code == 422 and bad_sort.json()["detail"][0]["loc"] == ["query", "sort"]


def test_a_batch_with_one_bad_message_is_rejected_whole(client: TestClient, keys: Keys) -> None:
    auth = Keys.bearer(keys.ingest)
    batch = {"batch": [_track("ann", "demo_request", "m1"), _track("bob", "!!!", "m2")]}
    response = client.post("/v1/batch", json=batch, headers=auth)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "batch", 1, "event"]
    assert client.get("/v1/leads/ann", headers=Keys.bearer(keys.admin)).status_code == 404


def test_request_size_is_limited(client: TestClient, keys: Keys) -> None:
    big = {
        "batch": [
            _track("ann", "page_view", f"m{i}", properties={"pad": "x" * 5000}) for i in range(1000)
        ]
    }
    response = client.post("/v1/batch", json=big, headers=Keys.bearer(keys.ingest))
    assert response.status_code == 413
    assert response.json()["detail"][0]["loc"] == ["body"]
