"""Slow clients: a request whose headers or body do not arrive in time is answered 408
and its connection closed, instead of being held open as long as the client likes."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from pyrometer.api.app import create_app
from pyrometer.api.slow_clients import (
    BODY_TIMEOUT_VARIABLE,
    HEADER_TIMEOUT_VARIABLE,
    GuardedHttpToolsProtocol,
)
from pyrometer.service.runtime import Service
from service.conftest import Keys, free_port

TIMEOUT = 1.0
SLACK = 2.0  # a loaded 2-core machine


@pytest.fixture
def guarded_url(service: Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    monkeypatch.setenv(HEADER_TIMEOUT_VARIABLE, str(TIMEOUT))
    monkeypatch.setenv(BODY_TIMEOUT_VARIABLE, str(TIMEOUT))
    port = free_port()
    config = uvicorn.Config(
        create_app(service, background=False),
        host="127.0.0.1",
        port=port,
        log_level="critical",
        http=GuardedHttpToolsProtocol,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", port
    server.should_exit = True
    thread.join(timeout=30)


def _closed_within(sock: socket.socket, seconds: float) -> tuple[float, bytes]:
    """Seconds until the server closed ``sock``, and what it sent before."""
    began = time.monotonic()
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return float("inf"), received
    except ConnectionResetError:
        pass
    return time.monotonic() - began, received


def test_half_sent_requests_are_closed_in_time(
    guarded_url: tuple[str, int], service: Service
) -> None:
    url, port = guarded_url
    key = Keys(service).ingest
    starts = [
        b"POST /v1/tr",  # half a request line
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",  # no end
        (  # headers whole, body announced and never all sent
            b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: 200\r\n\r\n"
            b'{"userId": "slow", '
        ),
        b"",  # connected, and nothing sent at all
    ]
    sockets = []
    for start in starts * 3:
        sock = socket.create_connection(("127.0.0.1", port))
        if start:
            sock.sendall(start)
        sockets.append((start, sock))
    try:
        for start, sock in sockets:
            took, received = _closed_within(sock, TIMEOUT + SLACK + 3)
            assert took < TIMEOUT + SLACK, (start, took)
            if start:
                assert received.startswith(b"HTTP/1.1 408"), (start, received)
    finally:
        for _, sock in sockets:
            sock.close()
    # Whole requests are served as before, on new and on kept-alive connections.
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        for number in range(3):
            answer = http.post(
                "/v1/track", json={"userId": "fast", "event": "x", "messageId": f"f{number}"}
            )
            assert answer.status_code == 200, answer.text
            time.sleep(TIMEOUT / 2)  # kept alive across more than the header time-out


def test_a_second_request_on_a_kept_alive_connection_is_timed_too(
    guarded_url: tuple[str, int],
) -> None:
    _, port = guarded_url
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHo")
        took, received = _closed_within(sock, TIMEOUT + SLACK + 3)
    assert received.startswith(b"HTTP/1.1 200")
    assert took < TIMEOUT + SLACK


def test_a_large_body_sent_with_its_headers_is_no_header_overflow(
    guarded_url: tuple[str, int], keys: Keys
) -> None:
    """A batch of a few hundred KB in the packet that carries its headers is read; only
    headers over 64 KiB are refused (431)."""
    _, port = guarded_url
    messages = [
        {"type": "track", "userId": f"u{i}", "event": "page_view", "messageId": f"big-{i}",
         "properties": {"url": "https://acme.example/" + "x" * 200}}
        for i in range(1000)
    ]  # fmt: skip
    body = json.dumps({"batch": messages}).encode()
    assert len(body) > 2 * 64 * 1024
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {keys.ingest}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + body)  # one write: the headers and the body arrive together
        _, received = _closed_within(sock, 30)
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    assert b'"accepted":1000' in received
    with socket.create_connection(("127.0.0.1", port)) as sock:
        huge = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (70 * 1024) + b"\r\n\r\n"
        sock.sendall(huge)
        _, received = _closed_within(sock, 10)
    assert received.startswith(b"HTTP/1.1 431"), received[:200]
