"""A person's rights: erasure (API and CLI) leaves a tombstone and nothing else; export
gives everything the store holds about the lead."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.timeutil import iso
from pyrometer.service.erasure import erase_lead
from pyrometer.service.runtime import Service
from pyrometer.store import erasure as erasure_rows
from pyrometer.store.tables import (
    audit,
    erasures,
    events,
    identities,
    identity_messages,
    leads,
    transitions,
    visitors,
)
from service.conftest import START, Keys


def _send(client: TestClient, keys: Keys, path: str, body: dict[str, Any]) -> None:
    answer = client.post(path, json=body, headers=Keys.bearer(keys.ingest))
    assert answer.status_code == 200, answer.text


def _ann_with_history(client: TestClient, keys: Keys) -> None:
    """Ann browsed anonymously, identified herself, then asked for a demo."""
    for n, event in enumerate(("pricing_page_view", "case_study_download")):
        body = {"anonymousId": "browser-1", "event": event, "messageId": f"a{n}"}
        _send(client, keys, "/v1/track", {**body, "timestamp": iso(START - 3600_000_000)})
    traits = {"Job Title": "CEO", "phone": "+49 170 000"}
    identify = {"userId": "ann@example.com", "anonymousId": "browser-1", "messageId": "i1"}
    _send(client, keys, "/v1/identify", {**identify, "traits": traits})
    demo = {"userId": "ann@example.com", "event": "demo_request", "messageId": "d1"}
    _send(client, keys, "/v1/track", {**demo, "timestamp": iso(START)})
    _send(client, keys, "/v1/track", {"userId": "bob", "event": "demo_request", "messageId": "b1"})


def _rows_about(service: Service, lead: str) -> dict[str, int]:
    def count(conn: Any) -> dict[str, int]:
        return {
            table.name: conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.lead_id == lead)
            ).scalar_one()
            for table in (
                leads,
                events,
                identities,
                transitions,
                identity_messages,
                visitors,
                audit,
            )
        }

    return service.read(count)


def test_export_gives_the_person_everything_stored(client: TestClient, keys: Keys) -> None:
    _ann_with_history(client, keys)
    answer = client.get("/v1/leads/ann@example.com/export", headers=Keys.bearer(keys.read))
    assert answer.status_code == 200
    assert answer.headers["content-disposition"].startswith("attachment;")
    data = answer.json()
    assert data["attributes"] == {"job_title": "CEO", "phone": "+49 170 000"}
    assert [e["event_id"] for e in data["events"]] == ["a0", "a1", "d1"]  # oldest first
    assert data["events"][0]["event"] == "pricing_page_view"
    assert [i["anonymous_id"] for i in data["identities"]] == ["browser-1"]
    assert {(t["kind"], t["to"]) for t in data["transitions"]} >= {("temperature", "warm")}
    assert data["score"] == 48 and data["temperature"] == "warm"
    missing = client.get("/v1/leads/nobody/export", headers=Keys.bearer(keys.read))
    assert missing.status_code == 404


def test_erasure_removes_every_row_and_keeps_a_tombstone(
    service: Service, client: TestClient, keys: Keys
) -> None:
    _ann_with_history(client, keys)
    assert _rows_about(service, "ann@example.com")["events"] == 3
    refused = client.delete("/v1/leads/ann@example.com", headers=Keys.bearer(keys.read))
    assert refused.status_code == 403
    answer = client.delete("/v1/leads/ann@example.com", headers=Keys.bearer(keys.admin))
    assert answer.status_code == 200, answer.text
    tombstone = answer.json()["tombstone"]
    assert (tombstone["events"], tombstone["identities"]) == (3, 1)
    assert tombstone["transitions"] >= 1
    assert _rows_about(service, "ann@example.com") == dict.fromkeys(
        ("leads", "events", "identities", "transitions", "identity_messages", "visitors", "audit"),
        0,
    )
    assert _rows_about(service, "bob")["events"] == 1  # nobody else's data goes
    # The tombstone knows when, who asked, how much; nothing of who Ann was.
    stored = service.read(lambda conn: conn.execute(sa.select(erasures)).one()._mapping)
    assert stored["key_id"] is not None and stored["events"] == 3
    assert not any("ann" in str(value) or "CEO" in str(value) for value in stored.values())
    admin_id = service.read(
        lambda conn: conn.execute(
            sa.text("SELECT id FROM api_keys WHERE scope = 'admin'")
        ).scalar_one()
    )
    assert stored["key_id"] == tombstone["key_id"] == admin_id
    gone = client.get("/v1/leads/ann@example.com", headers=Keys.bearer(keys.read))
    assert gone.status_code == 404
    again = client.delete("/v1/leads/ann@example.com", headers=Keys.bearer(keys.admin))
    assert again.status_code == 404


def test_erasure_leaves_no_trace_in_merges_and_identity_calls(
    service: Service, client: TestClient, keys: Keys
) -> None:
    """Ann took over a second address by an admin merge, and was herself merged into
    Carol's record: erasing Ann removes her merge audit and her identify's id, and Carol's
    audit keeps the merge without naming her."""
    _ann_with_history(client, keys)
    _send(client, keys, "/v1/track", {"userId": "ann2", "event": "demo_request", "messageId": "x1"})
    merged = client.post(
        "/v1/leads/ann@example.com/merge", json={"from": "ann2"}, headers=Keys.bearer(keys.admin)
    )
    assert merged.status_code == 200, merged.text
    _send(
        client, keys, "/v1/track", {"userId": "carol", "event": "demo_request", "messageId": "c1"}
    )
    into_carol = client.post(
        "/v1/leads/carol/merge", json={"from": "ann@example.com"}, headers=Keys.bearer(keys.admin)
    )
    assert into_carol.status_code == 200, into_carol.text
    _ann_with_history(client, keys)  # she comes back (messages resent count once)
    _send(client, keys, "/v1/identify", {"userId": "ann@example.com", "messageId": "i2"})
    rows = _rows_about(service, "ann@example.com")
    assert rows["identity_messages"] >= 1
    answer = client.delete("/v1/leads/ann@example.com", headers=Keys.bearer(keys.admin))
    assert answer.status_code == 200, answer.text
    assert set(_rows_about(service, "ann@example.com").values()) == {0}
    details = service.read(lambda conn: [r.detail for r in conn.execute(sa.select(audit))])
    assert all("ann@example.com" not in str(detail) for detail in details), details
    assert any(detail.get("from_erased") for detail in details)


def test_a_later_event_for_an_erased_id_starts_a_new_lead(client: TestClient, keys: Keys) -> None:
    _ann_with_history(client, keys)
    client.delete("/v1/leads/ann@example.com", headers=Keys.bearer(keys.admin))
    body = {"userId": "ann@example.com", "event": "whitepaper_download", "messageId": "w1"}
    _send(client, keys, "/v1/track", body)
    lead = client.get("/v1/leads/ann@example.com", headers=Keys.bearer(keys.read)).json()
    assert lead["event_count"] == 1 and lead["attributes"] == {}
    assert lead["engagement"] == 5 and lead["fit"] == 0
    # The browser is no longer linked to her: its next visit is a visitor of its own.
    visit = {"anonymousId": "browser-1", "event": "pricing_page_view", "messageId": "a9"}
    _send(client, keys, "/v1/track", visit)
    assert client.get("/v1/leads/browser-1", headers=Keys.bearer(keys.read)).status_code == 200


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_erase_from_the_command_line(
    service: Service, client: TestClient, keys: Keys, store_url: str, runner: CliRunner
) -> None:
    _ann_with_history(client, keys)
    done = runner.invoke(
        app, ["erase", "ann@example.com", "--by", "ticket 42", "--database", store_url]
    )
    assert done.exit_code == 0, done.output
    assert "3 events" in done.output
    assert _rows_about(service, "ann@example.com")["leads"] == 0
    stored = service.read(lambda conn: conn.execute(sa.select(erasures)).one()._mapping)
    assert stored["requested_by"] == "ticket 42" and stored["key_id"] is None
    unknown = runner.invoke(app, ["erase", "nobody", "--database", store_url])
    assert unknown.exit_code == 2 and "no lead 'nobody'" in unknown.output


def test_an_erasure_that_fails_midway_erases_nothing(
    service: Service, client: TestClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ann_with_history(client, keys)
    before = _rows_about(service, "ann@example.com")

    def broken(*_: object) -> int:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(erasure_rows, "add_tombstone", broken)
    with pytest.raises(RuntimeError):
        erase_lead(service, "ann@example.com", "test")
    assert _rows_about(service, "ann@example.com") == before  # rows and tombstone: all or none
    tombstones = service.read(
        lambda conn: conn.execute(sa.select(sa.func.count()).select_from(erasures)).scalar_one()
    )
    assert tombstones == 0
