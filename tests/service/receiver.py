"""A real HTTP receiver for webhook tests: a threaded ``http.server`` on loopback that
records each request's headers and body and answers as told (a list of statuses, then
200), or never answers at all."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # lower-case names
    body: str
    at: float  # time.monotonic() when the body was read


class Receiver:
    """``answers``: the statuses of the first requests, in order (then 200); ``hang``: read
    each request and never answer (until :meth:`close`); ``delay``: seconds before each
    answer."""

    def __init__(
        self,
        port: int = 0,
        answers: list[int] | None = None,
        *,
        hang: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.requests: list[Received] = []
        self._answers = collections.deque(answers or [])
        self._hang = hang
        self._delay = delay
        self._lock = threading.Condition()
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length).decode()
                received = Received(
                    {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                )
                with receiver._lock:
                    receiver.requests.append(received)
                    status = receiver._answers.popleft() if receiver._answers else 200
                    receiver._lock.notify_all()
                if receiver._hang:
                    receiver._closing.wait(60)
                    self.close_connection = True
                    return
                if receiver._delay:
                    time.sleep(receiver._delay)
                answer = b"ok" if status < 300 else b"receiver says no"
                self.send_response(status)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/pyrometer?token=abc"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """The requests once there are ``count`` of them; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.requests)} requests, waited for {count}")
                self._lock.wait(left)
            return list(self.requests)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
