"""Signed session cookies and CSRF tokens for the dashboard.

The cookie is a signed (itsdangerous, HMAC), timed token holding only ids: the user's id,
their session version (a new password raises it, ending older sessions) and the CSRF
token. No e-mail or name: the payload is only base64, readable by anyone who has it.

CSRF: every session, signed in or not, carries a random token; every form sends it back
(a hidden ``csrf`` field, or the ``X-CSRF-Token`` header from htmx) and every POST is
refused with 403 unless it matches. With ``SameSite=Lax`` this is belt and braces.

The signing key is ``PYROMETER_SECRET`` when set, else a random secret made once and kept
in the store, so every process of ``serve --workers N`` signs alike and sessions survive
a restart.
"""

from __future__ import annotations

import hmac
import os
import secrets
import weakref
from dataclasses import dataclass, replace

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from pyrometer.service.runtime import Service
from pyrometer.store.secrets import get_or_create

COOKIE = "pyrometer_session"
MAX_AGE = 12 * 3600  # seconds: a working day, then sign in again
ENV = "PYROMETER_SECRET"
_SECRET_NAME = "session-key"
_SALT = "pyrometer-dashboard-session-v1"  # a key for cursors signs no session, and back
_SIGNERS: weakref.WeakKeyDictionary[Service, URLSafeTimedSerializer] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Session:
    """What the cookie says; ``changed``: the response must write it."""

    csrf: str
    user_id: int | None = None
    version: int = 0
    changed: bool = False

    def signed_in(self, user_id: int, version: int) -> Session:
        """After a sign-in: a new CSRF token too (one seen before sign-in is not reused)."""
        return Session(secrets.token_urlsafe(24), user_id, version, changed=True)

    def signed_out(self) -> Session:
        return Session(secrets.token_urlsafe(24), changed=True)

    def with_version(self, version: int) -> Session:
        return replace(self, version=version, changed=True)


def _signer(service: Service) -> URLSafeTimedSerializer:
    signer = _SIGNERS.get(service)
    if signer is None:
        secret = os.environ.get(ENV) or service.write(
            lambda conn: get_or_create(conn, _SECRET_NAME, service.clock())
        )
        signer = _SIGNERS.setdefault(service, URLSafeTimedSerializer(secret, salt=_SALT))
    return signer


def read_session(service: Service, request: Request) -> Session:
    """The request's session, or a new anonymous one (with a new CSRF token)."""
    token = request.cookies.get(COOKIE)
    if token and len(token) < 4096:
        try:
            data = _signer(service).loads(token, max_age=MAX_AGE)
        except BadSignature:  # tampered, another store's, or expired
            data = None
        if isinstance(data, dict) and isinstance(data.get("c"), str):
            user = data.get("u")
            version = data.get("v")
            if isinstance(user, int) and isinstance(version, int):
                return Session(data["c"], user, version)
            return Session(data["c"])
    return Session(secrets.token_urlsafe(24), changed=True)


def write_session(service: Service, request: Request, response: Response, session: Session) -> None:
    """Set the cookie when the session changed: HttpOnly, SameSite=Lax, Secure over https."""
    if not session.changed:
        return
    data: dict[str, object] = {"c": session.csrf}
    if session.user_id is not None:
        data["u"] = session.user_id
        data["v"] = session.version
    response.set_cookie(
        COOKIE,
        _signer(service).dumps(data),
        max_age=MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def csrf_matches(session: Session, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf, presented or "")
