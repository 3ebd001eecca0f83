"""Signed list cursors (#10) and lead ids in one normal form on every path (#11)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.service.cursors import BadCursor, decode_cursor, encode_cursor
from pyrometer.service.reads import LeadQuery, get_lead, list_leads
from pyrometer.service.runtime import Service
from pyrometer.store.secrets import get_or_create
from pyrometer.store.tables import server_secrets
from service.conftest import Clock, Keys


def _track(lead: str, message_id: str, **extra: object) -> dict[str, object]:
    return {
        "userId": lead,
        "event": "demo_request",
        "messageId": message_id,
        "timestamp": "2026-11-23T08:00:00Z",
        **extra,
    }


def _three_leads(client: TestClient, keys: Keys) -> None:
    for i, lead in enumerate(("a", "b", "c")):
        answer = client.post(
            "/v1/track", json=_track(lead, f"m{i}"), headers=Keys.bearer(keys.admin)
        )
        assert answer.status_code == 200


def _unsigned(data: dict[str, object]) -> str:
    """A cursor as this API wrote them before they were signed: base64 JSON."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_cursors_are_signed_and_a_bad_one_is_a_400_naming_it(
    client: TestClient, keys: Keys, clock: Clock
) -> None:
    _three_leads(client, keys)
    read = Keys.bearer(keys.read)
    first = client.get("/v1/leads", params={"limit": 1}, headers=read).json()
    cursor = first["next_cursor"]
    clock.advance(3600)
    second = client.get("/v1/leads", params={"limit": 1, "cursor": cursor}, headers=read)
    assert second.status_code == 200
    assert second.json()["as_of"] == first["as_of"]  # every page scored at the same time
    payload, signature = cursor.split(".")
    tampered = [
        "garbage",
        cursor[:-2],
        ("A" if payload[0] != "A" else "B") + payload[1:] + "." + signature,
        # What used to be a cursor: the reader picks the scoring time (or a value of
        # any type, a 500 before).
        _unsigned({"t": 0, "v": 1e9, "id": "", "s": "-score"}),
        _unsigned({"t": "soon", "v": {"x": 1}, "id": 5, "s": "-score"}),
        _unsigned({"t": 0, "v": 1e9, "id": "", "s": "-score"}) + "." + signature,
    ]
    for bad in tampered:
        answer = client.get("/v1/leads", params={"limit": 1, "cursor": bad}, headers=read)
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_every_process_of_a_store_shares_the_key(store_url: str, clock: Clock) -> None:
    one, two = Service.open(store_url, clock), Service.open(store_url, clock)
    try:
        cursor = encode_cursor(one, {"t": 1, "v": 2, "id": "x", "s": "-score"})
        assert decode_cursor(two, cursor) == {"t": 1, "v": 2, "id": "x", "s": "-score"}
        count = sa.select(sa.func.count()).select_from(server_secrets)
        assert one.read(lambda conn: conn.execute(count).scalar()) == 1
        again = one.write(lambda conn: get_or_create(conn, "cursor-hmac", 0))
        assert again == two.read(lambda c: c.execute(sa.select(server_secrets.c.value)).scalar())
    finally:
        one.close()
        two.close()


def test_pyrometer_secret_overrides_the_stored_key(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = encode_cursor(service, {"t": 1})
    monkeypatch.setenv("PYROMETER_SECRET", "one")
    with pytest.raises(BadCursor):
        decode_cursor(service, stored)
    signed = encode_cursor(service, {"t": 1})
    assert decode_cursor(service, signed) == {"t": 1}
    monkeypatch.setenv("PYROMETER_SECRET", "two")
    with pytest.raises(BadCursor):
        list_leads(service, LeadQuery(cursor=signed))


def test_lead_ids_are_trimmed_and_nfc_on_every_api_path(client: TestClient, keys: Keys) -> None:
    admin = Keys.bearer(keys.admin)
    for i, spelling in enumerate(
        ("Jos\u00e9", " Jose\u0301", "Jos\u00e9\u00a0\t", "\u3000Jose\u0301")
    ):
        answer = client.post("/v1/track", json=_track(spelling, f"t{i}"), headers=admin)
        assert answer.status_code == 200
    listed = client.get("/v1/leads", headers=admin).json()["items"]
    assert [(x["lead_id"], x["event_count"]) for x in listed] == [("Jos\u00e9", 4)]
    for path in ("Jos%C3%A9", "Jose%CC%81", "%20Jos%C3%A9%20"):
        page = client.get(f"/v1/leads/{path}", headers=admin)
        assert page.status_code == 200 and page.json()["lead_id"] == "Jos\u00e9"
    # An anonymous visitor, linked by identify and alias in other spellings.
    visits = [
        {"type": "page", "anonymousId": "v-1 ", "messageId": "p1"},
        {"type": "page", "anonymousId": "V\u0301", "messageId": "p2"},
    ]
    assert client.post("/v1/batch", json={"batch": visits}, headers=admin).status_code == 200
    linked = [
        {"type": "identify", "userId": " Jose\u0301", "anonymousId": " v-1", "messageId": "i1"},
        {"type": "alias", "userId": "Jos\u00e9 ", "previousId": "\u0056\u0301 ", "messageId": "a1"},
    ]
    assert client.post("/v1/batch", json={"batch": linked}, headers=admin).status_code == 200
    ids = [x["lead_id"] for x in client.get("/v1/leads", headers=admin).json()["items"]]
    assert ids == ["Jos\u00e9"]
    patched = client.patch("/v1/leads/Jose%CC%81%20", json={"owner": "kim"}, headers=admin)
    assert patched.status_code == 200 and patched.json()["owner"] == "kim"
    moved = client.post("/v1/leads/%20Jos%C3%A9/stage", json={"stage": "won"}, headers=admin)
    assert moved.status_code == 200 and moved.json()["stage"] == "customer"


def test_an_id_empty_after_trimming_is_a_422_naming_the_field(
    client: TestClient, keys: Keys
) -> None:
    admin = Keys.bearer(keys.admin)
    cases = [
        ("/v1/track", _track("   ", "x"), ["body", "userId"]),
        ("/v1/page", {"anonymousId": "\u3000\t"}, ["body", "anonymousId"]),
        ("/v1/identify", {"userId": "a", "anonymousId": " "}, ["body", "anonymousId"]),
        ("/v1/alias", {"userId": "a", "previousId": "\u00a0"}, ["body", "previousId"]),
        (
            "/v1/batch",
            {"batch": [{"type": "track", **_track("\n", "y")}]},
            ["body", "batch", 0, "track", "userId"],
        ),
    ]
    for path, body, loc in cases:
        answer = client.post(path, json=body, headers=admin)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == loc
        assert "empty or only white space" in answer.json()["detail"][0]["msg"]
    blank = client.get("/v1/leads/%20%20", headers=admin)
    assert blank.status_code == 422 and blank.json()["detail"][0]["loc"] == ["path", "lead_id"]
    assert client.get("/v1/leads", headers=admin).json()["items"] == []


def test_import_normalises_lead_ids_and_names_the_row_of_a_blank_one(
    store_url: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.csv"
    events.write_text(
        "lead_id,event,timestamp,event_id\n"
        " Jose\u0301 ,demo_request,2026-11-20T10:00:00Z,e1\n"
        "Jos\u00e9,pricing_page_view,2026-11-20T11:00:00Z,e2\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(events), "--database", store_url])
    assert result.exit_code == 0, result.output
    service = Service.open(store_url)
    try:
        found = get_lead(service, "Jos\u00e9")
        assert found is not None and found["event_count"] == 2
        assert get_lead(service, " Jose\u0301 ") is None  # the service takes ids normalised
    finally:
        service.close()
    leads = tmp_path / "leads.csv"
    leads.write_text("lead_id,company\nok,Acme\n \t ,Blank Inc\n", encoding="utf-8")
    result = runner.invoke(app, ["import", str(leads), "--database", store_url])
    assert result.exit_code == 2
    assert "leads.csv, row 2, column 'lead_id'" in result.output
    assert "empty or only white space" in result.output
    far = tmp_path / "far.csv"
    far.write_text(
        "lead_id,event,timestamp\n"
        "a,demo_request,2026-11-20T10:00:00Z\n"
        "b,demo_request,0001-01-01T00:00:00+14:00\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["import", str(far), "--database", store_url])
    assert result.exit_code == 2
    assert "far.csv, row 2, column 'timestamp'" in result.output
    assert "outside the accepted range of times" in result.output
    service = Service.open(store_url)
    try:
        assert get_lead(service, "a") is None and get_lead(service, "b") is None
    finally:
        service.close()
