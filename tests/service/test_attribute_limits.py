"""A lead's attributes are bounded: one call's traits by Segment's 32 KiB, a lead's by
1,000 attributes, so no caller can grow one lead (and every read and search of it)
without end."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from pyrometer.service.ingest import MAX_ATTRIBUTES
from service.conftest import Keys


def _identify(client: TestClient, keys: Keys, n: int, traits: dict[str, Any]) -> Any:
    body = {"userId": "ann", "messageId": f"i{n}", "traits": traits}
    return client.post("/v1/identify", json=body, headers=Keys.bearer(keys.ingest))


def _attributes(client: TestClient, keys: Keys) -> dict[str, Any]:
    lead = client.get("/v1/leads/ann", headers=Keys.bearer(keys.read))
    assert lead.status_code == 200, lead.text
    return lead.json()["attributes"]


def test_one_calls_traits_are_at_most_32_kib(client: TestClient, keys: Keys) -> None:
    answer = _identify(client, keys, 0, {"bio": "x" * (33 * 1024)})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "traits"]
    assert "32 KiB" in answer.json()["detail"][0]["msg"]
    track = {"userId": "ann", "event": "page_view", "messageId": "t0"}
    big = client.post(
        "/v1/track",
        json={**track, "properties": {"blob": "y" * (40 * 1024)}},
        headers=Keys.bearer(keys.ingest),
    )
    assert big.status_code == 422 and big.json()["detail"][0]["loc"] == ["body", "properties"]


def test_a_lead_never_holds_more_than_its_share_of_attributes(
    client: TestClient, keys: Keys
) -> None:
    per_call = 300
    answers = [
        _identify(client, keys, n, {f"t{n}_{k}": k for k in range(per_call)}) for n in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 422]
    refused = answers[-1].json()["detail"][0]
    assert refused["type"] == "too_many_attributes" and refused["loc"] == ["body", "traits"]
    assert refused["messageId"] == "i3"
    assert len(_attributes(client, keys)) == 3 * per_call <= MAX_ATTRIBUTES
    # Changing attributes the lead has is always fine, and so is a resend (a duplicate).
    assert _identify(client, keys, 4, {"t0_1": "changed"}).status_code == 200
    assert _identify(client, keys, 0, {}).json()["duplicates"] == 1
    assert _attributes(client, keys)["t0_1"] == "changed"
    # In a batch, the call is refused alone: the rest is stored.
    batch = [
        {"type": "identify", "userId": "ann", "messageId": "b1",
         "traits": {f"b{k}": k for k in range(per_call)}},
        {"type": "track", "userId": "ann", "event": "demo_request", "messageId": "b2"},
    ]  # fmt: skip
    answer = client.post("/v1/batch", json={"batch": batch}, headers=Keys.bearer(keys.ingest))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    assert [(r["loc"], r["type"]) for r in answer.json()["refused"]] == [
        (["body", "batch", 0, "traits"], "too_many_attributes")
    ]
    assert len(_attributes(client, keys)) == 3 * per_call
