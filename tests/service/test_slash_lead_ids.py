"""A lead id holding ``/`` is reachable on every ``/v1/leads/{lead_id}`` route.

Ingest stores ``userId: "ann/x@corp.example"`` as any id, but the path's ``%2F`` is
decoded before routing, so no lead route matched it: the lead could not be read,
exported or erased over the API (a person's GDPR request could not be served).
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from service.conftest import Keys

SLASHED = "ann/x@corp.example"
PATH = "/v1/leads/ann%2Fx@corp.example"


def _track(client: TestClient, keys: Keys, lead: str, message: str) -> None:
    body = {"userId": lead, "event": "demo_request", "messageId": message}
    answer = client.post("/v1/track", json=body, headers=Keys.bearer(keys.ingest))
    assert answer.status_code == 200, answer.text


def test_every_lead_route_reaches_a_lead_whose_id_holds_a_slash(
    client: TestClient, keys: Keys
) -> None:
    _track(client, keys, SLASHED, "m1")
    _track(client, keys, "ann", "m2")  # the id's first part is another lead
    _track(client, keys, "other", "m3")
    admin = Keys.bearer(keys.admin)
    lead = client.get(PATH, headers=admin)
    assert lead.status_code == 200, lead.text
    assert lead.json()["lead_id"] == SLASHED and lead.json()["event_count"] == 1
    for sub in ("/ledger", "/events", "/transitions", "/audit"):
        assert client.get(PATH + sub, headers=admin).status_code == 200, sub
    assert client.get(PATH.replace("%2F", "%2f") + "/export", headers=admin).status_code == 200
    exported = client.get(PATH + "/export", headers=admin).json()
    assert [e["event_id"] for e in exported["events"]] == ["m1"]
    patched = client.patch(PATH, json={"owner": "kim"}, headers=admin)
    assert patched.status_code == 200 and patched.json()["owner"] == "kim"
    moved = client.post(PATH + "/stage", json={"stage": "sales_accepted"}, headers=admin)
    assert moved.status_code == 200, moved.text
    merged = client.post(PATH + "/merge", json={"from": "other"}, headers=admin)
    assert merged.status_code == 200 and merged.json()["lead_id"] == SLASHED
    # %2F is part of the id, never a path separator: this is no route, not lead "ann".
    assert client.get("/v1/leads/ann%2F", headers=admin).status_code == 404
    assert client.get("/v1/leads/ann/x@corp.example", headers=admin).status_code == 404
    erased = client.delete(PATH, headers=admin)
    assert erased.status_code == 200 and erased.json()["erased"] is True
    assert client.get(PATH, headers=admin).status_code == 404
    assert client.get("/v1/leads/ann", headers=admin).json()["event_count"] == 1
