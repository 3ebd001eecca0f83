"""A real ``pyrometer serve`` killed with SIGKILL mid-ingest loses nothing it answered
2xx for, keeps each lead's state in step with its events, and restarts cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import sqlalchemy as sa

from pyrometer.core.timeutil import iso
from pyrometer.service.keys import Scope, create_key
from pyrometer.service.runtime import Service
from pyrometer.store.tables import events, leads
from service.conftest import START, free_port

REPO = Path(__file__).resolve().parents[2]
WRITERS = 8


def _serve(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYROMETER_DATABASE_URL": url}
    process = subprocess.Popen(
        [sys.executable, "-m", "pyrometer.cli.app", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"server did not start: {process.stderr.read().decode()[-2000:]}")


def _batches(writer: int) -> Iterator[tuple[list[str], dict[str, object]]]:
    for number in range(10_000):
        ids = [f"w{writer}-{number}-{k}" for k in range(20)]
        batch = [
            {
                "type": "track",
                "userId": f"lead-{(writer + k) % 5}",
                "event": "page_view",
                "messageId": message_id,
                "timestamp": iso(START - number * 1_000_000),
                "properties": {"url": "/pricing" if k % 3 else "/blog"},
            }
            for k, message_id in enumerate(ids)
        ]
        yield ids, {"batch": batch}


def test_sigkill_mid_ingest_loses_nothing_acknowledged(store_url: str) -> None:
    setup = Service.open(store_url)
    key = create_key(setup, Scope.INGEST)
    setup.close()
    port = free_port()
    server = _serve(store_url, port)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(number: int) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as http:
            for ids, body in _batches(number):
                if stop.is_set():
                    return
                try:
                    response = http.post("/v1/batch", json=body, timeout=10)
                except httpx.TransportError:
                    return  # the server is gone
                if response.status_code == 200:
                    with lock:
                        acknowledged.extend(ids)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.send_signal(signal.SIGKILL)  # in the middle of ingest: writers are still sending
    server.wait()
    stop.set()
    for thread in threads:
        thread.join()
    assert len(acknowledged) >= 2000

    restarted = _serve(store_url, free_port())  # migrations and start-up run cleanly
    try:
        check = Service.open(store_url)
        stored = set(
            check.read(lambda conn: conn.execute(sa.select(events.c.event_id)).scalars().all())
        )
        assert set(acknowledged) <= stored
        counted = check.read(
            lambda conn: conn.execute(sa.select(sa.func.sum(leads.c.event_count))).scalar()
        )
        assert counted == len(stored)  # every stored event is in its lead's state, once
        check.close()
    finally:
        restarted.terminate()
        restarted.wait(timeout=20)
