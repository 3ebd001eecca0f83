"""Identity rules, on both stores: identify and alias only fold an anonymous visitor into
a lead (a merge of two known leads is refused, or an admin's audited merge), every
message type is deduplicated by messageId, and a duplicate never creates a lead."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from pyrometer.core.reference import score_lead_reference
from pyrometer.core.timeutil import iso
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Identify, IngestResult, Track
from pyrometer.service.runtime import Service
from pyrometer.store import repo
from pyrometer.store.tables import events, identity_messages, lead_predictions, leads
from service.conftest import START, Keys
from service.test_races import _together


def _send(client: TestClient, key: str, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, json=body, headers=Keys.bearer(key))


def _ok(client: TestClient, keys: Keys, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = _send(client, keys.ingest, path, body)
    assert response.status_code == 200, response.text
    return response.json()


def _lead(client: TestClient, keys: Keys, lead_id: str) -> dict[str, Any] | None:
    response = client.get(f"/v1/leads/{lead_id}", headers=Keys.bearer(keys.read))
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.json()


def _victim(client: TestClient, keys: Keys) -> dict[str, Any]:
    """A known lead: named by userId, with traits and events."""
    traits = {"email": "victim@corp.example", "Job Title": "CFO", "phone": "+1 555 0100"}
    _ok(client, keys, "/v1/identify", {"userId": "victim@corp.example", "traits": traits})
    for n in range(3):
        body = {
            "userId": "victim@corp.example",
            "event": "demo_request",
            "messageId": f"victim-{n}",
            "timestamp": iso(START - n * 10**6),
        }
        _ok(client, keys, "/v1/track", body)
    lead = _lead(client, keys, "victim@corp.example")
    assert lead is not None
    return lead


def test_identify_cannot_take_over_a_known_lead(client: TestClient, keys: Keys) -> None:
    before = _victim(client, keys)
    attack = {"userId": "attacker", "anonymousId": "victim@corp.example", "messageId": "atk"}
    answer = _send(client, keys.ingest, "/v1/identify", attack)
    assert answer.status_code == 409, answer.text
    problem = answer.json()["detail"][0]
    assert problem["loc"] == ["body", "anonymousId"] and problem["type"] == "merge_refused"
    assert "already identified" in problem["msg"]
    # Nothing of the victim's is in the answer, and nothing moved.
    for secret in ("CFO", "555", "demo_request", str(before["score"])):
        assert secret not in answer.text
    assert _lead(client, keys, "attacker") is None
    after = _lead(client, keys, "victim@corp.example")
    assert after is not None
    assert after["event_count"] == 3 and after["attributes"] == before["attributes"]
    # alias is refused the same way
    alias = {"previousId": "victim@corp.example", "userId": "attacker", "messageId": "atk2"}
    answer = _send(client, keys.ingest, "/v1/alias", alias)
    assert answer.status_code == 409
    assert answer.json()["detail"][0]["loc"] == ["body", "previousId"]
    assert _lead(client, keys, "attacker") is None
    # A refused call is not remembered as applied: once the rule allows it, it counts.
    assert _lead(client, keys, "victim@corp.example") == after


def test_a_visitor_a_user_id_named_is_known(client: TestClient, keys: Keys) -> None:
    anonymous = {"anonymousId": "browser-1", "event": "pricing_page_view", "messageId": "b1"}
    _ok(client, keys, "/v1/track", anonymous)
    named = {"userId": "browser-1", "event": "pricing_page_view", "messageId": "b2"}
    _ok(client, keys, "/v1/track", named)
    identify = {"userId": "someone", "anonymousId": "browser-1", "messageId": "i"}
    assert _send(client, keys.ingest, "/v1/identify", identify).status_code == 409
    # An identify without userId leaves a visitor a visitor.
    _ok(client, keys, "/v1/track", {**anonymous, "anonymousId": "browser-2", "messageId": "c1"})
    _ok(client, keys, "/v1/identify", {"anonymousId": "browser-2", "traits": {"plan": "x"}})
    _ok(client, keys, "/v1/identify", {**identify, "anonymousId": "browser-2", "messageId": "j"})
    someone = _lead(client, keys, "someone")
    assert someone is not None and someone["event_count"] == 1
    assert someone["attributes"] == {"plan": "x"}
    assert _lead(client, keys, "browser-2") is None


def test_a_batch_stores_the_rest_and_lists_what_it_refused(client: TestClient, keys: Keys) -> None:
    _victim(client, keys)
    _ok(client, keys, "/v1/track", {"anonymousId": "v-1", "event": "webinar_attended"})
    batch = [
        {"type": "track", "userId": "ann", "event": "demo_request", "messageId": "m1"},
        {
            "type": "identify",
            "userId": "ann",
            "anonymousId": "victim@corp.example",
            "messageId": "m2",
        },
        {"type": "identify", "userId": "ann", "anonymousId": "v-1", "messageId": "m3"},
        {"type": "alias", "previousId": "victim@corp.example", "userId": "bob", "messageId": "m4"},
    ]
    answer = _ok(client, keys, "/v1/batch", {"batch": batch})
    assert (answer["accepted"], answer["duplicates"]) == (2, 0)
    assert [(r["loc"], r["messageId"]) for r in answer["refused"]] == [
        (["body", "batch", 1, "anonymousId"], "m2"),
        (["body", "batch", 3, "previousId"], "m4"),
    ]
    ann = _lead(client, keys, "ann")
    assert ann is not None and ann["event_count"] == 2  # her demo and v-1's webinar
    victim = _lead(client, keys, "victim@corp.example")
    assert victim is not None and victim["event_count"] == 3
    assert _lead(client, keys, "bob") is None
    # Sent again: the applied messages are duplicates, the refused ones refused again.
    again = _ok(client, keys, "/v1/batch", {"batch": batch})
    assert (again["accepted"], again["duplicates"], len(again["refused"])) == (0, 2, 2)


def test_a_resent_identify_changes_nothing(client: TestClient, keys: Keys) -> None:
    first = {"userId": "cy", "messageId": "t1", "traits": {"Job Title": "Intern"}}
    second = {"userId": "cy", "messageId": "t2", "traits": {"Job Title": "CEO"}}
    assert _ok(client, keys, "/v1/identify", first)["accepted"] == 1
    assert _ok(client, keys, "/v1/identify", second)["accepted"] == 1
    answer = _ok(client, keys, "/v1/identify", first)  # a retry of the old one
    assert (answer["accepted"], answer["duplicates"]) == (0, 1)
    cy = _lead(client, keys, "cy")
    assert cy is not None and cy["attributes"]["job_title"] == "CEO"
    # The same for alias, and for both inside a batch.
    _ok(client, keys, "/v1/track", {"anonymousId": "v-7", "event": "demo_request"})
    alias = {"type": "alias", "previousId": "v-7", "userId": "cy", "messageId": "al"}
    assert _ok(client, keys, "/v1/batch", {"batch": [alias]})["accepted"] == 1
    answer = _ok(client, keys, "/v1/batch", {"batch": [alias, {**second, "type": "identify"}]})
    assert (answer["accepted"], answer["duplicates"]) == (0, 2)


def test_a_resent_message_id_never_creates_a_lead(client: TestClient, keys: Keys) -> None:
    track = {"userId": "dee", "event": "demo_request", "messageId": "dup-1"}
    _ok(client, keys, "/v1/track", track)
    answer = _ok(client, keys, "/v1/track", {**track, "userId": "ghost"})
    assert (answer["accepted"], answer["duplicates"]) == (0, 1)
    answer = _ok(client, keys, "/v1/track", {**track, "userId": None, "anonymousId": "ghost-2"})
    assert answer["duplicates"] == 1
    _ok(client, keys, "/v1/identify", {"userId": "eve", "messageId": "dup-2"})
    answer = _ok(client, keys, "/v1/identify", {"userId": "ghost-3", "messageId": "dup-2"})
    assert answer["duplicates"] == 1
    # A batch of 64 or more tracks named by userId is scored ahead: the same rule.
    batch = [
        {"type": "track", "userId": f"p{n}", "event": "demo_request", "messageId": f"big-{n}"}
        for n in range(70)
    ]
    assert _ok(client, keys, "/v1/batch", {"batch": batch})["accepted"] == 70
    resent = [{**message, "userId": f"q{n}"} for n, message in enumerate(batch)]
    assert _ok(client, keys, "/v1/batch", {"batch": resent})["duplicates"] == 70
    for ghost in ("ghost", "ghost-2", "ghost-3", "q0", "q69"):
        assert _lead(client, keys, ghost) is None, ghost
    listed = client.get("/v1/leads?limit=500", headers=Keys.bearer(keys.read)).json()
    assert {item["lead_id"] for item in listed["items"]} == {"dee", "eve"} | {
        f"p{n}" for n in range(70)
    }


def test_an_admin_merges_two_known_leads_audited(
    client: TestClient, keys: Keys, service: Service
) -> None:
    _victim(client, keys)
    other = {"userId": "v.work@corp.example", "event": "pricing_page_view"}
    for n in range(2):
        _ok(client, keys, "/v1/track", {**other, "messageId": f"w{n}", "timestamp": iso(START)})
    _ok(client, keys, "/v1/identify", {"userId": "v.work@corp.example", "traits": {"x": 1}})
    path = "/v1/leads/victim@corp.example/merge"
    body = {"from": "v.work@corp.example"}
    assert _send(client, keys.ingest, path, body).status_code == 403
    assert _send(client, keys.read, path, body).status_code == 403
    missing = _send(client, keys.admin, path, {"from": "nobody"})
    assert missing.status_code == 404 and missing.json()["detail"][0]["loc"] == ["body", "from"]
    itself = _send(client, keys.admin, path, {"from": "victim@corp.example"})
    assert itself.status_code == 422
    # A probability stored for the merged-away lead (its own, from an active model).
    prediction = {"model_version": 1, "lead_updated_us": START, "p_convert": 0.4}
    with service.engine.begin() as conn:
        conn.execute(
            lead_predictions.insert().values(
                lead_id="v.work@corp.example", computed_us=START, factors=[], **prediction
            )
        )
    answer = _send(client, keys.admin, path, body)
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert done["events_moved"] == 2 and done["event_count"] == 5
    assert "admin" in done["by"] and done["at"] == iso(START)
    assert _lead(client, keys, "v.work@corp.example") is None
    with service.engine.connect() as conn:  # nothing of it left behind, its probability too
        left = sa.select(lead_predictions).where(
            lead_predictions.c.lead_id == "v.work@corp.example"
        )
        assert conn.execute(left).all() == []
    lead = _lead(client, keys, "victim@corp.example")
    assert lead is not None and lead["event_count"] == 5
    assert lead["attributes"]["x"] == 1 and lead["attributes"]["job_title"] == "CFO"
    # The merged lead scores exactly as its whole history would from scratch.
    with service.engine.connect() as conn:
        events = repo.lead_events(conn, "victim@corp.example")
        book = service.playbooks.active(conn)[1]
    expected = score_lead_reference(book, "victim@corp.example", events, lead["attributes"], START)
    assert lead["score"] == round(expected.score, 4) or abs(lead["score"] - expected.score) < 1e-6
    audit = client.get(
        "/v1/leads/victim@corp.example/audit", headers=Keys.bearer(keys.admin)
    ).json()
    assert [(item["action"], item["detail"]["from"]) for item in audit["items"]] == [
        ("merge", "v.work@corp.example")
    ]
    assert audit["items"][0]["by"] == done["by"]
    # The merged-away id is linked: its later anonymous messages are the lead's.
    later = {"anonymousId": "v.work@corp.example", "event": "demo_request", "messageId": "z"}
    _ok(client, keys, "/v1/track", later)
    lead = _lead(client, keys, "victim@corp.example")
    assert lead is not None and lead["event_count"] == 6


def test_the_merge_routes_take_lead_ids_in_their_normal_form(
    client: TestClient, keys: Keys
) -> None:
    """As on every /v1/leads/{lead_id} route and in ingest, ids are trimmed and NFC: a
    decomposed ``José`` in the path and a padded ``from`` name the stored leads."""
    _ok(client, keys, "/v1/track", {"userId": "José", "event": "demo_request"})
    _ok(client, keys, "/v1/track", {"userId": "ann@corp.example", "event": "pricing_page_view"})
    decomposed = "/v1/leads/Jose\u0301"
    answer = _send(client, keys.admin, f"{decomposed}/merge", {"from": " ann@corp.example "})
    assert answer.status_code == 200, answer.text
    assert answer.json()["lead_id"] == "José"
    assert answer.json()["merged_from"] == "ann@corp.example"
    audit = client.get(f"{decomposed}/audit", headers=Keys.bearer(keys.admin)).json()
    assert audit["lead_id"] == "José" and len(audit["items"]) == 1
    blank = _send(client, keys.admin, f"{decomposed}/merge", {"from": "  "})
    assert blank.status_code == 422 and blank.json()["detail"][0]["loc"] == ["body", "from"]


def test_the_same_message_id_raced_with_other_user_ids_counts_once(service: Service) -> None:
    """Concurrent resends of one identify and one track, each with another userId: one of
    each is applied, the others are duplicates, and no other lead is created."""
    results: list[IngestResult] = []
    lock = threading.Lock()

    def send(n: int) -> Callable[[], None]:
        def run() -> None:
            user = f"u{n}"
            identify = Identify("same-identify", user, START, traits={"n": n})
            track = Track("same-track", "demo_request", START, user_id=user)
            result = ingest(service, [track], [identify])
            with lock:
                results.append(result)

        return run

    _together(*(send(n) for n in range(6)))
    assert sum(r.accepted for r in results) == 2 and sum(r.duplicates for r in results) == 10
    with service.engine.connect() as conn:
        owners = conn.execute(sa.select(leads.c.lead_id)).scalars().all()
        tracked = conn.execute(sa.select(events.c.lead_id)).scalars().all()
        identified = conn.execute(sa.select(identity_messages.c.lead_id)).scalars().all()
    assert len(identified) == 1 and len(tracked) == 1
    assert set(owners) == set(identified) | set(tracked)  # nobody else


def test_a_visitor_named_by_a_user_id_meanwhile_is_never_folded(service: Service) -> None:
    """An identify folding visitor V races a track naming V by userId: either the fold
    happened first (V's history is the lead's, V is linked) or it is refused; V's events
    are never split and V never both stays known and moves."""
    for n in range(3):
        ingest(service, [Track(f"v{n}", "pricing_page_view", START - n, anonymous_id="V")], [])
    outcome: list[IngestResult] = []

    def fold() -> None:
        outcome.append(ingest(service, [], [Identify("fold", "taker", START, anonymous_id="V")]))

    def name() -> None:
        ingest(service, [Track("named", "demo_request", START, user_id="V")], [])

    _together(fold, name)
    with service.engine.connect() as conn:
        by_lead = dict(
            conn.execute(
                sa.select(events.c.lead_id, sa.func.count()).group_by(events.c.lead_id)
            ).all()
        )
    if outcome[0].refused:  # V was known first: nothing moved
        assert by_lead == {"V": 4}
    else:  # folded first: the visitor's history is the taker's; "named" went to V anew
        assert by_lead == {"taker": 3, "V": 1}
