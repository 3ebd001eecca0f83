"""Time-outs for clients that send a request slowly, or never finish sending it.

uvicorn times out only an idle keep-alive connection: a client that sends half a
request line or half its headers, or announces a body it never sends, holds its
connection (and a request's memory) for as long as it likes, and a few thousand such
connections exhaust the server. This protocol, uvicorn's httptools one with two timers,
answers ``408`` and closes the connection when a request's headers have not all
arrived ``PYROMETER_HEADER_TIMEOUT`` seconds (default 10) after its first byte (after
the connection opened, for the first request), or its body ``PYROMETER_BODY_TIMEOUT``
seconds (default 30) after its headers; headers over 64 KiB get ``431``. It is a class
uvicorn's ``http=`` option takes, configured by the environment so that the worker
processes of ``serve --workers N`` get the same settings.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pyrometer.envconfig import seconds_from_env

HEADER_TIMEOUT_VARIABLE = "PYROMETER_HEADER_TIMEOUT"
BODY_TIMEOUT_VARIABLE = "PYROMETER_BODY_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
MAX_HEADER_BYTES = 64 * 1024


def timeout_from_env(variable: str, default: float) -> float:
    return seconds_from_env(variable, default)


def _answer(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\ncontent-length: " + str(len(message)).encode() + b"\r\n\r\n"
    ) + message


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header and a body time-out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = timeout_from_env(HEADER_TIMEOUT_VARIABLE, DEFAULT_HEADER_TIMEOUT)
        self._body_timeout = timeout_from_env(BODY_TIMEOUT_VARIABLE, DEFAULT_BODY_TIMEOUT)
        self._timer: asyncio.TimerHandle | None = None
        self._in_headers = False  # a request has begun and its headers are not all here
        self._header_bytes = 0
        self._tail = b""  # the last bytes of the headers so far: their end may be split

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            # Only the bytes up to the blank line that ends the headers count: a client
            # may send a large body in the same packet as its headers.
            window = self._tail + data
            end = window.find(b"\r\n\r\n")
            if end < 0:
                self._header_bytes += len(data)
                self._tail = window[-3:]
            else:
                self._header_bytes += max(0, end + 4 - len(self._tail))
                self._tail = b""
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(b"431 Request Header Fields Too Large", b"headers too large")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # a later request on a kept-alive connection
            self._start_headers()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._cancel()
        self._timer = self.loop.call_later(self._body_timeout, self._too_slow, b"body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel()
        super().on_message_complete()

    def _start_headers(self) -> None:
        self._in_headers = True
        self._header_bytes = 0
        self._tail = b""
        self._cancel()
        self._timer = self.loop.call_later(self._header_timeout, self._too_slow, b"headers")

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self, part: bytes) -> None:
        self._timer = None
        cycle = self.cycle
        idle = cycle is None or cycle.response_complete
        if part == b"headers" and self._header_bytes == 0 and idle:
            self.transport.close()  # nothing sent at all: an idle connection, closed quietly
            return
        self._refuse(b"408 Request Timeout", b"the request's " + part + b" came too slowly")

    def _refuse(self, status: bytes, message: bytes) -> None:
        self._cancel()
        cycle = self.cycle
        if self.transport.is_closing():
            return
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(_answer(status, message))
        # The app, if it was waiting for the body, now receives a disconnect.
        self.transport.close()
