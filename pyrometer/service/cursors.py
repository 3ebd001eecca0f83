"""Cursors that only the server can write: a JSON payload signed with HMAC-SHA256.

A page cursor carries the time every page of a list is scored at and where the last page
stopped. Unsigned, a reader could pick the scoring time or hand the SQL a value of any
type; signed, anything but a cursor this server (or another process of the same store)
gave out is refused with :class:`BadCursor` before its payload is read.

The key is ``PYROMETER_SECRET`` when set (several stores behind one address, or a key kept
in a secrets manager), otherwise a random secret made once and kept in the store
(:mod:`pyrometer.store.secrets`), so every worker process signs and checks alike and
cursors outlive a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import weakref
from typing import Any

from pyrometer.service.runtime import Service
from pyrometer.store.secrets import get_or_create

ENV = "PYROMETER_SECRET"
_SECRET_NAME = "cursor-hmac"
_CONTEXT = b"pyrometer-cursor-v1:"  # a key used for cursors signs nothing else
_KEYS: weakref.WeakKeyDictionary[Service, bytes] = weakref.WeakKeyDictionary()


class BadCursor(ValueError):
    """A cursor this API did not give out (or one for another query)."""


def _key(service: Service) -> bytes:
    configured = os.environ.get(ENV)
    if configured:
        return configured.encode()
    key = _KEYS.get(service)
    if key is None:
        secret = service.write(lambda conn: get_or_create(conn, _SECRET_NAME, service.clock()))
        key = _KEYS.setdefault(service, secret.encode())
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))


def _mac(service: Service, payload: str) -> bytes:
    return hmac.new(_key(service), _CONTEXT + payload.encode("ascii"), hashlib.sha256).digest()


def encode_cursor(service: Service, data: dict[str, Any]) -> str:
    """``data`` (JSON-able) as a signed, URL-safe cursor."""
    payload = _b64(json.dumps(data, separators=(",", ":")).encode())
    return f"{payload}.{_b64(_mac(service, payload))}"


def decode_cursor(service: Service, cursor: str) -> dict[str, Any]:
    """The payload of a cursor :func:`encode_cursor` made, or :class:`BadCursor`."""
    bad = BadCursor("not a cursor this API gave out")
    payload, dot, signature = cursor.partition(".")
    if not dot or not payload.isascii() or not signature.isascii():
        raise bad
    try:
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        raise bad from None
    if not hmac.compare_digest(given, _mac(service, payload)):
        raise bad
    try:
        data = json.loads(_unb64(payload))
    except (binascii.Error, ValueError):  # JSONDecodeError and UnicodeDecodeError too
        raise bad from None
    if not isinstance(data, dict):
        raise bad
    return data
