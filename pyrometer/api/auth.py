"""Who is calling: ``Authorization: Bearer KEY``, or Segment-style Basic with the key as
user name (what Segment and RudderStack forwarders send), checked against its scope.

No key or an unknown or revoked key: 401. A key without the scope the route needs: 403.
The key is looked up in the store on every request, so a revocation counts at once; a
store that does not answer gives 503 with ``Retry-After``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBearer

from pyrometer.service.keys import KeyChecker, Scope, allows
from pyrometer.store.key_lookup import StoreUnreachable


def presented_key(header: str | None) -> str | None:
    if not header:
        return None
    kind, _, value = header.strip().partition(" ")
    value = value.strip()
    if kind.lower() == "bearer" and value:
        return value
    if kind.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        return user or password or None
    return None


# Declared so /docs offers an "Authorize" button; the header is parsed below either way.
_BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer KEY")
_BASIC = HTTPBasic(auto_error=False, description="Segment style: the key as user name")


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail=message,
        headers={"WWW-Authenticate": 'Bearer realm="pyrometer", Basic realm="pyrometer"'},
    )


def require(scope: Scope) -> Callable[[Request], Awaitable[str]]:
    """A dependency that lets a request through only with a key allowing ``scope``.

    Async: the lookup runs on the event loop (SQLite: a few µs; PostgreSQL: an
    asynchronous round trip), with no hop to a worker thread.
    """

    async def dependency(
        request: Request,
        _bearer: HTTPAuthorizationCredentials | None = Security(_BEARER),
        _basic: object = Security(_BASIC),
    ) -> str:
        key = presented_key(request.headers.get("authorization"))
        if key is None:
            raise _unauthorized("an API key is required: 'Authorization: Bearer KEY'")
        checker: KeyChecker = request.app.state.keys
        try:
            granted = await checker.scope_of_async(key)
        except StoreUnreachable:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="the store did not answer; try again shortly",
                headers={"Retry-After": "1"},
            ) from None
        if granted is None:
            raise _unauthorized("unknown or revoked API key")
        if not allows(granted, scope):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"this key has scope {granted!r}; this route needs {scope.value!r}",
            )
        return granted

    return dependency
