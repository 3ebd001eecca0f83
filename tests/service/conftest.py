"""Fixtures for the service: a fresh store on SQLite and on the real PostgreSQL server.

Each PostgreSQL test gets its own schema (dropped afterwards), so runs never collide.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient

from pyrometer.api.app import create_app
from pyrometer.core.timeutil import to_us
from pyrometer.service.keys import Scope, create_key
from pyrometer.service.runtime import Service

PG_SERVER = os.environ.get(
    "PYROMETER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
START = to_us("2026-11-23T09:00:00Z")


def _postgres_reachable() -> str | None:
    try:
        engine = sa.create_engine(PG_SERVER, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means: no server to test against
        return str(exc).splitlines()[0]


_PG_PROBLEM = _postgres_reachable()


class Clock:
    """A clock the test moves by hand: scores are read as of it."""

    def __init__(self, now_us: int = START) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    if _PG_PROBLEM:
        pytest.skip(f"PostgreSQL at {PG_SERVER} is unreachable: {_PG_PROBLEM}")
    schema = f"pyro_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_SERVER)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(store_url: str, clock: Clock) -> Iterator[Service]:
    service = Service.open(store_url, clock)
    yield service
    service.close()


class Keys:
    def __init__(self, service: Service) -> None:
        self.admin = create_key(service, Scope.ADMIN)
        self.ingest = create_key(service, Scope.INGEST)
        self.read = create_key(service, Scope.READ)

    @staticmethod
    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keys(service: Service) -> Keys:
    return Keys(service)


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service, background=False)) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_url(service: Service) -> Iterator[str]:
    """The app served by a real uvicorn on loopback, in a thread of this process."""
    port = free_port()
    config = uvicorn.Config(
        create_app(service, background=False), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def smtp() -> Iterator[tuple[str, Any]]:
    """A real SMTP server (aiosmtpd) on loopback: its URL and its inbox."""
    from tests.service.smtp_server import FreePortController, Inbox

    inbox = Inbox()
    controller = FreePortController(
        inbox, hostname="127.0.0.1", port=0, server_hostname="pyrometer-test"
    )
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{controller.port}", inbox
    finally:
        controller.stop()
