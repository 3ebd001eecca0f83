"""The lead list: what sales should call (open, suppressed, funnel), lists of values,
unknown parameters, and ``q`` over attribute values in any script."""

from __future__ import annotations

import importlib
import json
import unicodedata
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from pyrometer.core.timeutil import iso
from pyrometer.service.runtime import Service
from service.conftest import START, Keys

HOT = ("demo_request", "contact_sales", "trial_signup", "contact_sales")  # 90 points


def _send(client: TestClient, keys: Keys, path: str, body: dict[str, Any]) -> None:
    answer = client.post(path, json=body, headers=Keys.bearer(keys.ingest))
    assert answer.status_code == 200, answer.text


def _hot_lead(client: TestClient, keys: Keys, lead: str, *extra: str) -> None:
    for n, event in enumerate((*HOT, *extra)):
        body = {"userId": lead, "event": event, "messageId": f"{lead}-{n}", "timestamp": iso(START)}
        _send(client, keys, "/v1/track", body)


def _ids(client: TestClient, keys: Keys, params: Any) -> list[str]:
    answer = client.get("/v1/leads", params=params, headers=Keys.bearer(keys.read))
    assert answer.status_code == 200, answer.text
    return sorted(item["lead_id"] for item in answer.json()["items"])


def test_open_leads_leave_out_customers_disqualified_and_do_not_contact(
    client: TestClient, keys: Keys
) -> None:
    _hot_lead(client, keys, "call-me")
    _hot_lead(client, keys, "bought", "won")
    _hot_lead(client, keys, "nope", "disqualified")
    _hot_lead(client, keys, "unsubscribed", "unsubscribe")
    _hot_lead(client, keys, "no-email")
    traits = {"userId": "no-email", "messageId": "t1", "traits": {"Do Not Email": True}}
    _send(client, keys, "/v1/identify", traits)
    everyone = ["bought", "call-me", "no-email", "nope", "unsubscribed"]
    assert _ids(client, keys, {"temperature": "hot"}) == everyone
    assert _ids(client, keys, {"temperature": "hot", "open": "true"}) == ["call-me"]
    assert _ids(client, keys, {"open": "false"}) == ["bought", "no-email", "nope", "unsubscribed"]
    assert _ids(client, keys, {"suppressed": "true"}) == ["no-email", "unsubscribed"]
    assert _ids(client, keys, {"suppressed": "false"}) == ["bought", "call-me", "nope"]
    assert _ids(client, keys, {"funnel": "customer"}) == ["bought"]
    assert _ids(client, keys, [("funnel", "customer"), ("funnel", "none")]) == ["bought", "nope"]
    assert _ids(client, keys, [("stage", "customer"), ("stage", "disqualified")]) == [
        "bought",
        "nope",
    ]
    lead = client.get("/v1/leads/no-email", headers=Keys.bearer(keys.read)).json()
    assert lead["suppressed"] is True


def test_unknown_parameters_and_values_are_named(client: TestClient, keys: Keys) -> None:
    _hot_lead(client, keys, "ann")
    typo = client.get("/v1/leads", params={"temprature": "hot"}, headers=Keys.bearer(keys.read))
    assert typo.status_code == 400
    assert typo.json()["detail"][0]["loc"] == ["query", "temprature"]
    assert "temperature" in typo.json()["detail"][0]["msg"]  # it lists what the route takes
    on_page = client.get("/v1/leads/ann", params={"limit": 5}, headers=Keys.bearer(keys.read))
    assert on_page.status_code == 400 and on_page.json()["detail"][0]["loc"] == ["query", "limit"]
    funnel = client.get("/v1/leads", params={"funnel": "middle"}, headers=Keys.bearer(keys.read))
    assert funnel.status_code == 422 and funnel.json()["detail"][0]["loc"] == ["query", "funnel"]
    stage = client.get("/v1/leads", params={"stage": "warmish"}, headers=Keys.bearer(keys.read))
    assert stage.status_code == 422


def _identify(client: TestClient, keys: Keys, lead: str, traits: dict[str, Any]) -> None:
    _send(
        client, keys, "/v1/identify", {"userId": lead, "messageId": f"i-{lead}", "traits": traits}
    )


def test_q_finds_values_in_any_script_and_case_but_not_keys(
    service: Service, client: TestClient, keys: Keys
) -> None:
    _identify(client, keys, "lead-1", {"last_name": "Müller", "city": "Zürich"})
    _identify(client, keys, "lead-2", {"last_name": "Ølstad", "email": "ola@example.no"})
    _identify(client, keys, "lead-3", {"last_name": "Smith", "company": "Acme"})
    decomposed = unicodedata.normalize("NFD", "müller")
    for q, found in (
        ("Müller", ["lead-1"]),
        ("MÜLLER", ["lead-1"]),
        (decomposed, ["lead-1"]),
        ("zür", ["lead-1"]),
        ("øl", ["lead-2"]),
        ("OLA@example", ["lead-2"]),
        ("acme", ["lead-3"]),
        ("lead-3", ["lead-3"]),
        ("last_name", []),  # a key, in every lead: no match
        ("email", []),
        ("city", []),
        ("100%", []),
    ):
        assert _ids(client, keys, {"q": q}) == found, q

    query = sa.text("SELECT CAST(attributes AS TEXT) FROM leads WHERE lead_id = 'lead-1'")
    stored = service.read(lambda conn: str(conn.execute(query).scalar_one()))
    assert "Müller" in stored  # real UTF-8, not M\u00fcller


def test_the_migration_rewrites_escaped_attributes(
    service: Service, client: TestClient, keys: Keys
) -> None:
    _identify(client, keys, "old", {"last_name": "Müller"})
    _identify(client, keys, "odd", {"note": "x"})
    escaped = json.dumps({"last_name": "Müller"})  # what earlier versions wrote
    bad = '{"note": "\\ud800"}'  # an escaped unpaired surrogate: cannot be UTF-8

    def age(conn: Any) -> None:
        cast = "CAST(:a AS json)" if conn.dialect.name == "postgresql" else ":a"
        update = f"UPDATE leads SET attributes = {cast} WHERE lead_id = :id"
        conn.execute(sa.text(update), [{"a": escaped, "id": "old"}, {"a": bad, "id": "odd"}])

    service.write(age)

    def text_of(lead: str) -> str:
        query = sa.text("SELECT CAST(attributes AS TEXT) FROM leads WHERE lead_id = :id")
        return str(service.read(lambda conn: conn.execute(query, {"id": lead}).scalar_one()))

    assert "M\\u00fcller" in text_of("old")
    migration = importlib.import_module("pyrometer.store.migrations.versions.0006_utf8_attributes")
    assert service.write(migration.reencode_attributes) == 1
    assert "Müller" in text_of("old") and json.loads(text_of("odd")) == {"note": "\ud800"}
    assert _ids(client, keys, {"q": "müller"}) == ["old"]
    assert service.write(migration.reencode_attributes) == 0  # done once
