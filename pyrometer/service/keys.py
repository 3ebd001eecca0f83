"""API keys: created once and shown once, stored only as a SHA-256 hash.

Keys are long random tokens, so a plain fast hash is enough (no password stretching) and
lets a request's key be found by an indexed lookup. Checked keys are cached briefly so
ingest does not pay a query per request; a revoked key stops working within the TTL.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

import sqlalchemy as sa

from pyrometer.service.runtime import Service
from pyrometer.service.scopes import Scope
from pyrometer.store.tables import api_keys

CACHE_SECONDS = 30.0


def allows(granted: str, needed: Scope) -> bool:
    return granted == Scope.ADMIN or granted == needed


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(service: Service, scope: Scope, name: str = "") -> str:
    """A new key with ``scope``; the only time the key itself is known."""
    key = f"pyro_{scope.value}_{secrets.token_urlsafe(24)}"
    service.write(
        lambda conn: conn.execute(
            api_keys.insert().values(
                key_hash=_hash(key),
                prefix=key[:16],
                scope=scope.value,
                name=name or scope.value,
                created_us=service.clock(),
                revoked=False,
            )
        )
    )
    return key


class KeyChecker:
    """Scope of a presented key (``None``: unknown or revoked), with a short cache."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> tuple[bool, str | None]:
        """``(True, scope)`` when the cache knows the key (scope ``None``: a bad key)."""
        with self._lock:
            hit = self._cache.get(_hash(key))
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def scope_of(self, key: str) -> str | None:
        digest = _hash(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        scope = self._service.read(
            lambda conn: conn.execute(
                sa.select(api_keys.c.scope).where(
                    api_keys.c.key_hash == digest, api_keys.c.revoked.is_(False)
                )
            ).scalar()
        )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + CACHE_SECONDS, scope)
        return scope
