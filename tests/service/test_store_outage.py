"""A store that stops answering: requests get 503 with ``Retry-After`` within the
time-out instead of hanging, ``/health`` stays cheap and reports it, ``/ready`` says no,
a full ingest queue is refused, and once the store is back every acknowledged
``messageId`` is stored exactly once.

PostgreSQL is reached through a TCP proxy that stops passing bytes (a partition); on
SQLite another connection holds the write lock (a long lock)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pyrometer.api.app import create_app
from pyrometer.service.grouping import GroupCommitter, Overloaded
from pyrometer.service.inputs import Track
from pyrometer.service.keys import Scope, create_key
from pyrometer.service.runtime import Service
from pyrometer.store.tables import events
from service.conftest import START, Keys, free_port
from service.faults import BlackholeProxy

TIMEOUT = 2.0  # the request time-out the server is given
SLACK = 1.5  # scheduling on a loaded 2-core machine


class _Fault:
    """The store as the service sees it (``url``), and a way to make it stop answering."""

    def __init__(self, store_url: str, tmp_path) -> None:
        self.real_url = store_url
        self.postgres = not store_url.startswith("sqlite")
        self._proxy: BlackholeProxy | None = None
        self._holder: sqlite3.Connection | None = None
        if self.postgres:
            real = sa.make_url(store_url)
            self._proxy = BlackholeProxy(real.host or "127.0.0.1", real.port or 5432)
            self.url = real.set(port=self._proxy.port).render_as_string(hide_password=False)
        else:
            self.url = store_url
            self._path = store_url.removeprefix("sqlite:///")

    def start(self) -> None:
        if self._proxy is not None:
            self._proxy.blackhole()
        else:
            self._holder = sqlite3.connect(self._path, isolation_level=None, timeout=30)
            self._holder.execute("BEGIN IMMEDIATE")

    def stop(self) -> None:
        if self._proxy is not None:
            self._proxy.heal()
        elif self._holder is not None:
            self._holder.execute("ROLLBACK")
            self._holder.close()
            self._holder = None

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.close()


@contextmanager
def _served(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def _track(message_id: str) -> dict[str, object]:
    return {"userId": f"lead-{hash(message_id) % 7}", "event": "page_view", "messageId": message_id}


def test_outage_answers_503_in_time_and_loses_nothing_acknowledged(
    store_url: str, tmp_path
) -> None:
    fault = _Fault(store_url, tmp_path)
    service = Service.open(fault.url)
    headers = {"Authorization": f"Bearer {create_key(service, Scope.INGEST)}"}
    acknowledged: list[str] = []
    refused: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        with _served(create_app(service, background=False, request_timeout=TIMEOUT)) as base:

            def writer(number: int) -> None:
                with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                    for batch in range(100_000):
                        if stop.is_set():
                            return
                        ids = [f"w{number}-{batch}-{k}" for k in range(10)]
                        body = {"batch": [{"type": "track", **_track(i)} for i in ids]}
                        answer = http.post("/v1/batch", json=body)
                        with lock:
                            if answer.status_code == 200:
                                acknowledged.extend(ids)
                            else:
                                refused.append(answer.status_code)

            threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 20
            while len(acknowledged) < 300 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(acknowledged) >= 300

            fault.start()
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                for attempt in range(2):  # the first may meet a stuck connection, then fast
                    began = time.monotonic()
                    answer = http.post("/v1/track", json=_track(f"during-{attempt}"))
                    took = time.monotonic() - began
                    assert answer.status_code == 503, answer.text
                    assert int(answer.headers["retry-after"]) > 0
                    assert took < TIMEOUT + SLACK, took
                began = time.monotonic()
                health = http.get("/health")
                assert health.status_code == 200 and time.monotonic() - began < SLACK
                if fault.postgres:  # the store itself does not answer: both say so
                    assert health.json()["store"] == "unreachable"
                    ready = http.get("/ready")
                    assert ready.status_code == 503 and ready.headers["retry-after"]

                fault.stop()
                deadline = time.monotonic() + 30
                while http.get("/ready").status_code != 200:
                    assert time.monotonic() < deadline, "the store did not come back"
                    time.sleep(0.1)
                assert http.get("/health").json()["store"] == "ok"
                after = http.post("/v1/track", json=_track("after-heal"))
                assert after.status_code == 200, after.text
            mark = len(acknowledged)
            deadline = time.monotonic() + 20
            while len(acknowledged) < mark + 100 and time.monotonic() < deadline:
                time.sleep(0.02)
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
    finally:
        stop.set()
        fault.stop()
        service.close()
        fault.close()

    assert 503 in refused
    assert len(acknowledged) == len(set(acknowledged))
    check = Service.open(fault.real_url)
    try:
        stored = check.read(
            lambda conn: conn.execute(
                sa.select(events.c.event_id, sa.func.count()).group_by(events.c.event_id)
            ).all()
        )
    finally:
        check.close()
    counts = dict(stored)
    missing = [i for i in acknowledged if i not in counts]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:3]}"
    assert max(counts.values()) == 1


def test_a_full_ingest_queue_is_refused_with_503(
    service: Service, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyrometer.service.grouping as grouping

    release = threading.Event()
    real = grouping.ingest_many

    def stuck(*args: object, **kwargs: object) -> object:
        release.wait(30)  # the store is slow: what is sent now waits in the queue
        return real(*args, **kwargs)

    monkeypatch.setattr(grouping, "ingest_many", stuck)
    app = create_app(service, background=False, max_queued_messages=5)
    committer: GroupCommitter = app.state.committer
    body = {"batch": [{"type": "track", **_track(f"big-{k}")} for k in range(5)]}
    with TestClient(app) as client:
        waiting = threading.Thread(
            target=committer.submit,
            args=([Track("q-1", "page_view", START, "lead-q", None, {})], []),
        )
        waiting.start()
        deadline = time.monotonic() + 5
        while committer.queued == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        answer = client.post("/v1/batch", json=body, headers=Keys.bearer(keys.ingest))
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
        assert "waiting to be stored" in answer.json()["detail"]
        release.set()
        waiting.join(timeout=30)
        again = client.post("/v1/batch", json=body, headers=Keys.bearer(keys.ingest))
        assert again.status_code == 200 and again.json()["accepted"] == 5


def test_overloaded_names_the_limit(service: Service) -> None:
    committer = GroupCommitter(service, max_queued=1)
    committer._queued = 1  # as if a message were waiting
    with pytest.raises(Overloaded, match="at most 1"):
        committer.submit([Track("o-1", "page_view", START, "lead-o", None, {})], [])


def test_health_is_cheap_and_ready_checks_the_store(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["ok"] is True and health["store"] in ("ok", "unknown")  # probed at start
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "store": "ok"}
    assert client.get("/health").json()["store"] == "ok"


def test_a_store_error_is_503_with_retry_after(
    client: TestClient, keys: Keys, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*_args: object, **_kwargs: object) -> object:
        raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused\nmore"))

    monkeypatch.setattr(service, "read", refused)
    answer = client.get("/v1/leads", headers=Keys.bearer(keys.read))
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["detail"] == "the store did not answer: connection refused"
