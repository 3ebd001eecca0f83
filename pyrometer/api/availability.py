"""A store that stops answering gets 503 with ``Retry-After``, never a request left hanging.

Three parts:

- :class:`StoreDeadline`, an ASGI middleware: a request that needs the store and has no
  answer after ``timeout`` seconds is answered 503 (the work it started is left to finish
  or fail on its own: an ingest that commits later was not acknowledged, and its
  ``messageId`` makes the client's retry count once). While the store is known to be
  unreachable, such requests are answered 503 at once.
- handlers turning a store error (refused connection, statement time-out, no pooled
  connection in time) and a full ingest queue into the same 503.
- ``GET /health`` (liveness: always 200, with the store's last known state; costs no
  query) and ``GET /ready`` (readiness: asks the store, 503 if it does not answer in time).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pyrometer.api.fast_json import send_json
from pyrometer.envconfig import seconds_from_env
from pyrometer.service.grouping import Overloaded
from pyrometer.service.store_health import StoreMonitor, StoreState

REQUEST_TIMEOUT_VARIABLE = "PYROMETER_REQUEST_TIMEOUT"
DEFAULT_REQUEST_TIMEOUT = 30.0
RETRY_AFTER_SECONDS = 5
# Paths that never touch the store: answered whatever its state.
_FREE_PATHS = ("/health", "/ready", "/docs", "/openapi.json", "/redoc", "/static/")


def request_timeout_from_env() -> float:
    return seconds_from_env(REQUEST_TIMEOUT_VARIABLE, DEFAULT_REQUEST_TIMEOUT)


def _unavailable_body(message: str) -> bytes:
    return json.dumps({"detail": message}).encode()


def unavailable(message: str, retry_after: int = RETRY_AFTER_SECONDS) -> JSONResponse:
    return JSONResponse(
        status_code=503, content={"detail": message}, headers={"Retry-After": str(retry_after)}
    )


class StoreDeadline:
    """503 for a request the store does not answer within ``timeout`` seconds."""

    def __init__(self, app: ASGIApp, monitor: StoreMonitor, timeout: float) -> None:
        self.app = app
        self.monitor = monitor
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(_FREE_PATHS):
            await self.app(scope, receive, send)
            return
        if self.monitor.down:
            await self._refuse(send, "the store is unreachable; send again later")
            return
        started = False
        abandoned = False
        refusal: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()

        async def guarded(message: Message) -> None:
            nonlocal started
            if abandoned:
                return  # answered 503 already: whatever the work says now goes nowhere
            started = started or message["type"] == "http.response.start"
            await send(message)

        def expire() -> None:
            nonlocal abandoned, refusal
            if started:  # already answering: let it end
                return
            abandoned = True
            self.monitor.probe()
            message = f"the store did not answer within {self.timeout:g} s"
            refusal = loop.create_task(self._refuse(send, message))

        # A timer, not a task per request: this costs about a microsecond when the
        # answer comes in time. The work goes on after a 503; an ingest that commits
        # later was not acknowledged, and its messageId makes a resend count once.
        timer = loop.call_later(self.timeout, expire)
        try:
            await self.app(scope, receive, guarded)
        except Exception:
            if not abandoned:
                raise
            # Answered 503 already; the work failing later is the same outage.
        finally:
            timer.cancel()
            if refusal is not None:
                await refusal

    async def _refuse(self, send: Send, message: str) -> None:
        retry = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
        await send_json(send, 503, _unavailable_body(message), retry)


def install(app: FastAPI, monitor: StoreMonitor, timeout: float) -> None:
    """The health routes, the store-error answers and the deadline, on ``app``."""

    async def store_error(_request: Request, exc: Exception) -> JSONResponse:
        monitor.probe()
        first = str(getattr(exc, "orig", exc) or type(exc).__name__).splitlines()[0]
        return unavailable(f"the store did not answer: {first[:200]}")

    async def overloaded(_request: Request, exc: Exception) -> JSONResponse:
        return unavailable(str(exc), retry_after=1)

    for kind in (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError):
        app.add_exception_handler(kind, store_error)
    app.add_exception_handler(Overloaded, overloaded)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, Any]:
        """Liveness, without a key: always 200 while the process serves, with the
        store's last known state (``ok``, ``unreachable`` or ``unknown``). Answered on the
        event loop, not in the worker threads, which an outage may have filled with
        requests waiting on the store."""
        return {"ok": True, "store": monitor.state.value}

    @app.get("/ready", tags=["health"], responses={503: {"description": "store unreachable"}})
    async def ready() -> JSONResponse:
        """Readiness, without a key: 200 once the store answers a query, else 503."""
        number = monitor.probe()
        deadline = time.monotonic() + monitor.timeout
        while not monitor.answered(number) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        state = monitor.state if monitor.answered(number) else StoreState.UNREACHABLE
        if state is StoreState.OK:
            return JSONResponse({"ready": True, "store": state.value})
        return JSONResponse(
            status_code=503,
            content={"ready": False, "store": state.value},
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    app.add_middleware(StoreDeadline, monitor=monitor, timeout=timeout)
