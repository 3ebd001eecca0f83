"""API keys: revocation counts on the very next request in every server process, and keys
are listed (never with their secret), created and revoked from the CLI and the API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pyrometer.api.app import create_app
from pyrometer.cli.app import app as cli
from pyrometer.core.timeutil import iso
from pyrometer.service.keys import KeyChecker, Scope, create_key, new_key, record_use
from pyrometer.service.keys import hash_key as _hash
from pyrometer.service.runtime import Service
from pyrometer.store import key_lookup
from pyrometer.store.tables import api_keys
from service.conftest import Clock, Keys, free_port

REPO = Path(__file__).resolve().parents[2]


def _key_id(service: Service, key: str) -> int:
    return int(
        service.read(
            lambda conn: conn.execute(
                sa.select(api_keys.c.id).where(api_keys.c.key_hash == _hash(key))
            ).scalar_one()
        )
    )


def test_a_revoked_key_is_refused_on_the_very_next_request_of_another_app(
    service: Service, store_url: str, clock: Clock, keys: Keys
) -> None:
    """Two apps on one store stand for two server processes: one revokes, the other's
    next request with the key is refused (before: accepted for 30 s from its cache)."""
    other = Service.open(store_url, clock)
    try:
        with (
            TestClient(create_app(service, background=False)) as first,
            TestClient(create_app(other, background=False)) as second,
        ):
            reader = new_key(service, Scope.READ, "dashboard")
            auth = Keys.bearer(reader.key)
            for _ in range(3):  # warm whatever the app keeps
                assert first.get("/v1/leads", headers=auth).status_code == 200
            revoked = second.delete(f"/v1/keys/{reader.info.id}", headers=Keys.bearer(keys.admin))
            assert revoked.status_code == 200
            assert revoked.json()["revoked"] is True
            refused = first.get("/v1/leads", headers=auth)
            assert refused.status_code == 401
            assert refused.json()["detail"] == "unknown or revoked API key"
            assert second.get("/v1/leads", headers=auth).status_code == 401
            # Other keys are untouched.
            assert first.get("/v1/leads", headers=Keys.bearer(keys.read)).status_code == 200
    finally:
        other.close()


def test_keys_are_listed_created_and_revoked_over_the_api(
    client: TestClient, service: Service, keys: Keys
) -> None:
    admin = Keys.bearer(keys.admin)
    created = client.post("/v1/keys", json={"scope": "ingest", "name": "website"}, headers=admin)
    assert created.status_code == 201
    body = created.json()
    secret = body["key"]
    assert body["scope"] == "ingest" and body["name"] == "website" and not body["revoked"]
    assert secret.startswith(body["prefix"])
    track = {"userId": "ann", "event": "page_view", "messageId": "m1"}
    assert client.post("/v1/track", json=track, headers=Keys.bearer(secret)).status_code == 200

    listing = client.get("/v1/keys", headers=admin)
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert [item["name"] for item in items] == ["admin", "ingest", "read", "website"]
    assert set(items[0]) == {"id", "scope", "name", "prefix", "created", "last_used", "revoked"}
    text = listing.text
    for key in (secret, keys.admin, keys.ingest, keys.read):
        assert key not in text and _hash(key) not in text  # neither the key nor its hash

    assert client.delete(f"/v1/keys/{body['id']}", headers=admin).json()["revoked"] is True
    assert client.post("/v1/track", json=track, headers=Keys.bearer(secret)).status_code == 401
    again = client.delete(f"/v1/keys/{body['id']}", headers=admin)
    assert again.status_code == 200  # revoking twice is fine
    after = {
        item["id"]: item["revoked"]
        for item in client.get("/v1/keys", headers=admin).json()["items"]
    }
    assert after[body["id"]] is True and list(after.values()).count(True) == 1


def test_key_routes_need_the_admin_scope_and_name_bad_input(client: TestClient, keys: Keys) -> None:
    for key in (keys.read, keys.ingest):
        assert client.get("/v1/keys", headers=Keys.bearer(key)).status_code == 403
        assert (
            client.post("/v1/keys", json={"scope": "read"}, headers=Keys.bearer(key)).status_code
            == 403
        )
        assert client.delete("/v1/keys/1", headers=Keys.bearer(key)).status_code == 403
    assert client.get("/v1/keys").status_code == 401
    admin = Keys.bearer(keys.admin)
    missing = client.delete("/v1/keys/999", headers=admin)
    assert missing.status_code == 404 and "999" in missing.json()["detail"]
    bad = client.post("/v1/keys", json={"scope": "root"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "scope"]
    assert client.delete("/v1/keys/abc", headers=admin).status_code == 422


def test_keys_list_and_revoke_from_the_cli(
    client: TestClient, service: Service, store_url: str, keys: Keys
) -> None:
    runner = CliRunner()
    made = runner.invoke(
        cli, ["keys", "create", "--scope", "read", "--name", "bi tool", "--database", store_url]
    )
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    key_id = _key_id(service, secret)

    listed = runner.invoke(cli, ["keys", "list", "--database", store_url])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["id", "scope", "name", "prefix", "created", "last_used", "revoked"]
    row = next(line for line in lines if line.startswith(f"{key_id} "))
    assert "bi tool" in row and row.split()[1] == "read" and row.split()[-2:] == ["never", "no"]
    for key in (secret, keys.admin, keys.ingest, keys.read):
        assert key not in listed.output and _hash(key) not in listed.output

    assert client.get("/v1/leads", headers=Keys.bearer(secret)).status_code == 200
    revoked = runner.invoke(cli, ["keys", "revoke", str(key_id), "--database", store_url])
    assert revoked.exit_code == 0, revoked.output
    assert client.get("/v1/leads", headers=Keys.bearer(secret)).status_code == 401

    active = runner.invoke(cli, ["keys", "list", "--active", "--database", store_url])
    assert not any(line.startswith(f"{key_id} ") for line in active.output.splitlines())
    unknown = runner.invoke(cli, ["keys", "revoke", "4242", "--database", store_url])
    assert unknown.exit_code == 2 and "4242" in unknown.output


def test_keys_show_when_they_were_last_used(
    client: TestClient, service: Service, store_url: str, clock: Clock, keys: Keys
) -> None:
    admin = Keys.bearer(keys.admin)

    def last_used() -> dict[str, str | None]:
        items = client.get("/v1/keys", headers=admin).json()["items"]
        return {item["name"]: item["last_used"] for item in items}

    checker: KeyChecker = client.app.state.keys  # type: ignore[attr-defined]
    checker.flush()
    assert last_used()["read"] is None  # never used
    assert client.get("/v1/leads", headers=Keys.bearer(keys.read)).status_code == 200
    clock.advance(3600)
    assert client.get("/v1/leads", headers=Keys.bearer(keys.read)).status_code == 200
    checker.flush()
    seen = last_used()
    assert seen["read"] == iso(clock.now_us) and seen["ingest"] is None
    # Another process writing an older time does not move it back.
    record_use(service, {_key_id(service, keys.read): clock.now_us - 10_000_000})
    assert last_used()["read"] == iso(clock.now_us)
    listed = CliRunner().invoke(cli, ["keys", "list", "--database", store_url])
    assert iso(clock.now_us) in listed.output


def test_a_store_that_does_not_answer_gives_503_not_401(client: TestClient, keys: Keys) -> None:
    dead = Service(sa.create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x"))
    client.app.state.keys = KeyChecker(dead)  # type: ignore[attr-defined]
    answer = client.get("/v1/leads", headers=Keys.bearer(keys.read))
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"


def test_a_store_that_hangs_gives_503_within_the_time_out(
    client: TestClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts the connection and then says nothing (a partition)."""
    monkeypatch.setattr(key_lookup, "LOOKUP_TIMEOUT_SECONDS", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever answers
        port = silent.getsockname()[1]
        hung = Service(sa.create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{port}/x"))
        client.app.state.keys = KeyChecker(hung)  # type: ignore[attr-defined]
        started = time.monotonic()
        answer = client.get("/v1/leads", headers=Keys.bearer(keys.read))
        assert answer.status_code == 503
        assert time.monotonic() - started < 3


def _wait_until_up(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not start")


def test_revocation_reaches_every_server_process_at_once(store_url: str) -> None:
    """Two ``serve`` processes on one store (what ``--workers 2`` runs, but with each
    process known to have served the key before): both refuse it right after a revoke."""
    setup = Service.open(store_url)
    key = create_key(setup, Scope.READ, "revoke me")
    key_id = _key_id(setup, key)
    setup.close()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYROMETER_DATABASE_URL": store_url}
    ports = [free_port(), free_port()]
    serve = [sys.executable, "-m", "pyrometer.cli.app", "serve", "--scoring-processes", "0"]
    servers = [
        subprocess.Popen(
            [*serve, "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for server, port in zip(servers, ports, strict=True):
            _wait_until_up(server, port)
        auth = {"Authorization": f"Bearer {key}"}
        urls = [f"http://127.0.0.1:{port}/v1/leads" for port in ports]
        assert {httpx.get(url, headers=auth).status_code for url in urls * 5} == {200}
        revoked = CliRunner().invoke(cli, ["keys", "revoke", str(key_id), "--database", store_url])
        assert revoked.exit_code == 0, revoked.output
        assert [httpx.get(url, headers=auth).status_code for url in urls] == [401, 401]
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def test_postgres_lookups_go_in_rounds_that_begin_after_each_request(service: Service) -> None:
    """Concurrent requests share a query, and never one that began before them: a key
    revoked while a round is out is refused to every request that arrived after it."""
    if service.engine.dialect.name != "postgresql":
        pytest.skip("rounds are PostgreSQL's; SQLite asks per request on the loop")
    import asyncio

    made = new_key(service, Scope.INGEST, "rounds")
    digest = _hash(made.key)
    lookup = key_lookup.KeyLookup(service.engine)
    pg = lookup._pg
    assert pg is not None
    real = pg._lookup
    queries: list[list[str]] = []
    first_answered = asyncio.Event()
    release = asyncio.Event()

    async def counted(digests: list[str]) -> dict[str, key_lookup.Found]:
        queries.append(list(digests))
        found = await real(digests)
        if len(queries) == 1:  # the first round has its answer, from before the revoke
            first_answered.set()
            await release.wait()
        return found

    pg._lookup = counted  # type: ignore[method-assign]

    async def scenario() -> tuple[object, list[object], list[object]]:
        early = asyncio.ensure_future(lookup.scope(digest))
        await first_answered.wait()
        await asyncio.to_thread(
            service.write,
            lambda conn: conn.execute(
                api_keys.update().where(api_keys.c.id == made.info.id).values(revoked=True)
            ),
        )
        late = [asyncio.ensure_future(lookup.scope(digest)) for _ in range(50)]
        await asyncio.sleep(0.05)
        release.set()
        others = await asyncio.gather(*(lookup.scope(_hash(f"nope-{i}")) for i in range(20)))
        return await early, list(await asyncio.gather(*late)), list(others)

    try:
        early, late, others = asyncio.run(scenario())
    finally:
        lookup.close()
    assert early == (made.info.id, "ingest")  # its round began before the revoke
    assert late == [None] * 50  # all arrived after: refused, whatever round was out
    assert others == [None] * 20
    # 71 lookups, a handful of queries: the 50 shared one round, the 20 at most two.
    assert len(queries) <= 4, queries
