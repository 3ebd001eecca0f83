"""Webhook deliveries survive a crash: a real ``pyrometer serve`` that cannot deliver yet
(nothing listens at the webhook's port) is killed with SIGKILL after leads turn hot; once
the receiver and the server are up again, each notification arrives, once per
``webhook-id``. And ``pyrometer worker`` sends what a store has queued."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import sqlalchemy as sa
from standardwebhooks import Webhook

from pyrometer.service.keys import Scope, create_key
from pyrometer.service.runtime import Service
from pyrometer.service.webhooks import add_webhook, send_test
from pyrometer.store.tables import deliveries
from service.conftest import free_port
from service.receiver import Receiver

REPO = Path(__file__).resolve().parents[2]
LEADS = [f"lead-{n}" for n in range(5)]
# Retry quickly and for long: the server must still be trying when it is killed.
FAST_RETRIES = {
    "PYROMETER_WEBHOOK_BACKOFF": "0.2",
    "PYROMETER_WEBHOOK_MAX_BACKOFF": "0.5",
    "PYROMETER_WEBHOOK_MAX_ATTEMPTS": "1000",
}


def _start(args: list[str], url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **FAST_RETRIES, "PYTHONPATH": str(REPO), "PYROMETER_DATABASE_URL": url}
    return subprocess.Popen(
        [sys.executable, "-m", "pyrometer.cli.app", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _serve(url: str, port: int) -> subprocess.Popen[bytes]:
    process = _start(["serve", "--port", str(port), "--scoring-processes", "0"], url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"server did not start: {process.stderr.read().decode()[-2000:]}")


def _attempts(service: Service) -> list[int]:
    query = sa.select(deliveries.c.attempts).order_by(deliveries.c.id)
    return service.read(lambda conn: [int(a) for a in conn.execute(query).scalars()])


def test_notifications_survive_sigkill_and_arrive_once(store_url: str) -> None:
    service = Service.open(store_url)
    ingest = create_key(service, Scope.INGEST)
    receiver_port = free_port()
    hook = add_webhook(service, f"http://127.0.0.1:{receiver_port}/in", ["lead.hot"])
    port = free_port()
    server = _serve(store_url, port)
    try:
        batch = [
            {
                "type": "track",
                "userId": lead,
                "event": "contact_sales",
                "messageId": uuid.uuid4().hex,
            }
            for lead in LEADS
            for _ in range(2)
        ]
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/batch",
            json={"batch": batch},
            headers={"Authorization": f"Bearer {ingest}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        # The server has tried (and failed: nothing listens) to deliver each of them.
        deadline = time.monotonic() + 15
        while not (len(tried := _attempts(service)) == len(LEADS) and min(tried) >= 1):
            assert time.monotonic() < deadline, f"attempts so far: {tried}"
            time.sleep(0.05)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)

    with Receiver(port=receiver_port) as receiver:
        server = _serve(store_url, port)
        try:
            got = receiver.wait_for(len(LEADS), timeout=40)  # within the lease at worst
            time.sleep(2.0)  # time enough for a duplicate to show up
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)
    counts = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert len(counts) == len(LEADS) and set(counts.values()) == {1}, counts
    leads = sorted(
        Webhook(hook.secret).verify(r.body, r.headers)["data"]["lead"]["id"] for r in got
    )
    assert leads == LEADS
    query = sa.select(deliveries.c.status)
    assert set(service.read(lambda conn: list(conn.execute(query).scalars()))) == {"delivered"}
    service.close()


def test_the_worker_command_sends_what_is_queued(store_url: str) -> None:
    service = Service.open(store_url)
    with Receiver() as receiver:
        hook = add_webhook(service, receiver.url, ["webhook.test"])
        send_test(service, hook.webhook.id)
        worker = _start(["worker", "--database", store_url, "--max-attempts", "3"], store_url)
        try:
            (got,) = receiver.wait_for(1, timeout=30)
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=20)
        assert Webhook(hook.secret).verify(got.body, got.headers)["type"] == "webhook.test"
        assert code == 0, worker.stderr.read().decode() if worker.stderr else ""
    service.close()
