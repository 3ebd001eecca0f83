"""Every request gets an id, every error is logged without the data that caused it.

The outermost middleware of the app:

- **Request id.** A sane incoming ``X-Request-ID`` (what a proxy or the caller set:
  1-128 of ``A-Z a-z 0-9 . _ : = + / -``) is kept, anything else replaced by a new one.
  It is in the answer's ``X-Request-ID`` header, in the body of every JSON error answer
  (``"request_id"``, beside ``detail``) and in every log line written while serving it
  (:data:`pyrometer.api.logs.REQUEST_ID`), so a caller's report leads to the log lines.
- **Errors.** An exception no handler answered becomes a ``500``
  (``{"detail": "internal server error", "request_id": ...}``) and one ERROR line with
  the exception's types, the request's method, route, body size, status and duration;
  never the body or the exception's message (see :mod:`pyrometer.api.logs`).
- **Access log** (``serve --access-log``): one INFO line per request with the same
  fields. The path is the route's template (``/v1/leads/{lead_id}``) with no query
  string: lead ids and searches (``q=``) are often e-mail addresses.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
import weakref
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pyrometer.api.fast_json import send_json
from pyrometer.api.logs import ACCESS_LOGGER, ERROR_LOGGER, REQUEST_ID
from pyrometer.service.redact import describe, safe_traceback, sqlstate

_HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:=+/-]{1,128}")
_MAX_ERROR_BODY = 1 << 20  # error bodies larger than this are passed on unchanged
_access = logging.getLogger(ACCESS_LOGGER)
_errors = logging.getLogger(ERROR_LOGGER)


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-ID`` if it is sane, else a new random one."""
    for name, value in headers:
        if name == _HEADER:
            if _SANE.fullmatch(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex


def route_path(scope: Scope) -> str:
    """The matched route's template, else the path with only the API's own words kept.

    A path no route matches (a typo'd route, or a lead id holding ``/``: ``%2F`` is
    decoded before routing) may hold a lead id, often an e-mail address: each segment
    that is not a literal segment of some route (``v1``, ``leads``, ``export``) is
    logged as ``{?}`` (``/v1/lead/ann@x.example`` is ``/v1/{?}/{?}``).
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    words = _route_words(scope.get("app"))
    segments = str(scope.get("path", "")).split("/")
    return "/".join(s if not s or s in words else "{?}" for s in segments)[:200]


_WORDS: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()


def _route_words(app: Any) -> frozenset[str]:
    """The literal segments of ``app``'s API paths, from its OpenAPI description (built
    once, also when ``/openapi.json`` is not served); none if it has none."""
    try:
        words = _WORDS.get(app)
        if words is None:
            paths = app.openapi()["paths"]
            found = {s for path in paths for s in path.split("/") if s and s[0] != "{"}
            words = _WORDS.setdefault(app, frozenset(found))
        return words
    except Exception:  # not a FastAPI app: keep no segment, which is always safe
        return frozenset()


def _with_request_id(body: bytes, request_id: str) -> bytes | None:
    """A JSON object error body with ``request_id`` added; None if it is not one."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    parsed["request_id"] = request_id
    return orjson.dumps(parsed)


class RequestContext:
    """The request id, the error answer and the log lines of each HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(scope, receive, send)
        token = REQUEST_ID.set(exchange.request_id)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            exchange.status = 500
            _errors.error("request failed: %s", describe(exc), extra=exchange.fields(exc))
            if not exchange.began:
                await _internal_error(send, exchange.request_id)
        else:
            if exchange.status >= 500:
                _errors.error("request answered %d", exchange.status, extra=exchange.fields())
            elif _access.isEnabledFor(logging.INFO):
                _access.info("request", extra=exchange.fields())
        finally:
            REQUEST_ID.reset(token)


class _Exchange:
    """One request and its answer as they pass: body size in, status and headers out.

    A JSON error answer is held until its body is complete, to add ``request_id``.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.request_id = request_id_from(scope.get("headers", []))
        scope.setdefault("state", {})["request_id"] = self.request_id
        self.started = time.perf_counter()
        self.received = 0
        self.status = 0
        self.began = False  # an answer's start went out: too late for a 500
        self._receive = receive
        self._send = send
        self._held: Message | None = None  # an error answer's start, until its body is known
        self._chunks: list[bytes] = []

    async def receive(self) -> Message:
        message = await self._receive()
        self.received += len(message.get("body", b""))
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
            headers.append((_HEADER, self.request_id.encode("ascii")))
            message = {**message, "headers": headers}
            if self.status >= 400 and _is_json(headers):
                self._held = message
                return
            self.began = True
        elif message["type"] == "http.response.body" and self._held is not None:
            await self._error_body(message)
            return
        await self._send(message)

    async def _error_body(self, message: Message) -> None:
        self._chunks.append(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if more and sum(map(len, self._chunks)) <= _MAX_ERROR_BODY:
            return
        start, self._held = self._held, None
        assert start is not None
        body = b"".join(self._chunks)
        self._chunks.clear()
        tagged = None if more else _with_request_id(body, self.request_id)
        if tagged is not None:
            body = tagged
            start = {**start, "headers": _set_length(start["headers"], len(body))}
        self.began = True
        await self._send(start)
        await self._send({**message, "body": body})

    def fields(self, exc: BaseException | None = None) -> dict[str, Any]:
        """What a log line may say about the request: ids, types, sizes, times."""
        fields: dict[str, Any] = {
            "request_id": self.request_id,
            "method": self.scope.get("method"),
            "path": route_path(self.scope),
            "status": self.status,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 2),
            "body_bytes": self.received,
        }
        if exc is not None:
            fields["error"] = describe(exc)
            fields["sqlstate"] = sqlstate(exc)
            # Rendered here, not passed as exc_info: no formatter ever sees the message.
            fields["stack"] = safe_traceback(type(exc), exc, exc.__traceback__)
        return fields


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            kind = value.split(b";")[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return False


def _set_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    kept.append((b"content-length", str(length).encode()))
    return kept


async def _internal_error(send: Send, request_id: str) -> None:
    body = orjson.dumps({"detail": "internal server error", "request_id": request_id})
    try:
        await send_json(send, 500, body, [(_HEADER, request_id.encode("ascii"))])
    except Exception:  # the answer had begun, or the client is gone: nothing more to say
        return
