"""Running the app under uvicorn: the port taken first, the address announced once served.

``serve`` binds its port before anything else starts (opening the store, loading the
demo), so a port in use is one clear error at once instead of a traceback after the
work; the bound socket is handed to uvicorn (one process) or to its supervisor (``serve
--workers N``, whose worker processes end with it: :mod:`pyrometer.service.lifeline`).
The "Pyrometer on http://..." line is printed only when ``/health`` answers on that
port, so whoever reads it can connect at once.
"""

from __future__ import annotations

import errno
import http.client
import inspect
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from pyrometer.api.factory import SUPERVISOR_VARIABLE


class PortInUse(OSError):
    """The port is taken by another program."""


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``; connections made before uvicorn serves wait
    in its queue and are answered once it does."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # SO_REUSEADDR lets two sockets that do not listen yet share a port on Linux:
        # listening at once is what makes a second server fail here, not later.
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {port} on {host} is already in use (another server?); "
                "stop it or choose another port with --port"
            ) from None
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def announce_when_ready(host: str, port: int, say: Callable[[], None]) -> threading.Thread:
    """Call ``say`` once ``GET /health`` on the port answers (a daemon thread)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)

    def wait() -> None:
        while True:
            connection = http.client.HTTPConnection(target, port, timeout=2)
            try:
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    say()
                    return
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(0.05)

    thread = threading.Thread(target=wait, name="pyrometer-announce", daemon=True)
    thread.start()
    return thread


def run(app: Any, sock: socket.socket, workers: int, **options: Any) -> None:
    """Serve ``app`` (an app, or with ``workers`` > 1 a factory's import string) on
    ``sock`` until stopped; exits with uvicorn's start-up failure code if it never served.
    """
    config = uvicorn.Config(app, workers=workers, **options)
    server = uvicorn.Server(config)
    if workers == 1:
        server.run(sockets=[sock])
        if not server.started:
            sys.exit(3)
        return
    from uvicorn.supervisors import Multiprocess

    os.environ[SUPERVISOR_VARIABLE] = str(os.getpid())
    if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn before 0.36
        supervisor = Multiprocess(config, target=server.run, sockets=[sock])  # type: ignore[call-arg]
    else:
        supervisor = Multiprocess(config, sockets=[sock])
    supervisor.run()
