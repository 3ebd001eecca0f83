"""API keys: created once and shown once, stored only as a SHA-256 hash.

Keys are long random tokens, so a plain fast hash is enough (no password stretching) and
lets a request's key be found by an indexed lookup. Every request looks its key up in
the store (:mod:`pyrometer.store.key_lookup`, a few µs on SQLite, one round trip on
PostgreSQL): a revoked key fails on the very next request, in every server process.
When a key was last used is noted in memory and written once a minute.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import threading
from dataclasses import dataclass

import sqlalchemy as sa

from pyrometer.service.runtime import Service
from pyrometer.service.scopes import Scope
from pyrometer.store.key_lookup import KeyLookup
from pyrometer.store.tables import api_keys

LAST_USED_FLUSH_SECONDS = 60.0


def allows(granted: str, needed: Scope) -> bool:
    return granted == Scope.ADMIN or granted == needed


def hash_key(key: str) -> str:
    """What the store keeps of a key (and finds it by)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about a key: never the key, never its hash.

    ``last_used_us``: when a server last let it in, to within a minute (None: never).

    ``prefix`` is the key's first 16 characters (``pyro_read_Uphya``), enough to tell
    keys apart and far too little to use one.
    """

    id: int
    scope: str
    name: str
    prefix: str
    created_us: int
    revoked: bool
    last_used_us: int | None = None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created: ``key`` is known only now."""

    info: KeyInfo
    key: str


def new_key(service: Service, scope: Scope, name: str = "") -> NewKey:
    """A new key with ``scope``; the only time the key itself is known."""
    key = f"pyro_{scope.value}_{secrets.token_urlsafe(24)}"
    created = service.clock()
    values = {
        "key_hash": hash_key(key),
        "prefix": key[:16],
        "scope": scope.value,
        "name": name or scope.value,
        "created_us": created,
        "revoked": False,
    }
    key_id = service.write(
        lambda conn: conn.execute(api_keys.insert().values(**values)).inserted_primary_key[0]
    )
    info = KeyInfo(int(key_id), scope.value, values["name"], key[:16], created, False)
    return NewKey(info, key)


def create_key(service: Service, scope: Scope, name: str = "") -> str:
    """A new key with ``scope``, as text (see :func:`new_key`)."""
    return new_key(service, scope, name).key


_COLUMNS = (
    api_keys.c.id,
    api_keys.c.scope,
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.created_us,
    api_keys.c.revoked,
    api_keys.c.last_used_us,
)


def _info(row: sa.Row[tuple[int, str, str, str, int, bool, int | None]]) -> KeyInfo:
    return KeyInfo(
        int(row.id),
        row.scope,
        row.name,
        row.prefix,
        int(row.created_us),
        row.revoked,
        None if row.last_used_us is None else int(row.last_used_us),
    )


def list_keys(service: Service, include_revoked: bool = True) -> list[KeyInfo]:
    """Every key, oldest first, without its secret."""
    query = sa.select(*_COLUMNS).order_by(api_keys.c.id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked.is_(False))
    return [_info(row) for row in service.read(lambda conn: conn.execute(query).all())]


def revoke_key(service: Service, key_id: int) -> KeyInfo | None:
    """Revoke the key ``key_id`` (again is fine); None when there is no such key.

    Committed before this returns, and keys are checked in the store on every request,
    so the next request with the key is refused by every server process.
    """

    def work(conn: sa.Connection) -> KeyInfo | None:
        conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked=True))
        row = conn.execute(sa.select(*_COLUMNS).where(api_keys.c.id == key_id)).first()
        return None if row is None else _info(row)

    return service.write(work)


class KeyChecker:
    """Scope of a presented key (``None``: unknown or revoked), asked of the store each time.

    Also notes when each key was let in, and writes that down once a minute
    (``last_used_us``, the latest time wins across processes) from a background thread:
    a request pays a dictionary assignment, not a write.
    """

    def __init__(self, service: Service, flush_seconds: float = LAST_USED_FLUSH_SECONDS) -> None:
        self._service = service
        self._lookup = KeyLookup(service.engine)
        self._flush_seconds = flush_seconds
        self._used: dict[int, int] = {}
        self._used_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    async def scope_of_async(self, key: str) -> str | None:
        """On the event loop; raises ``StoreUnreachable`` when the store does not answer."""
        return self._note(await self._lookup.scope(hash_key(key)))

    def scope_of(self, key: str) -> str | None:
        return self._note(self._lookup.scope_sync(hash_key(key)))

    def _note(self, found: tuple[int, str] | None) -> str | None:
        if found is None:
            return None
        key_id, scope = found
        now = self._service.clock()
        with self._used_lock:
            self._used[key_id] = now
            if self._flusher is None and not self._stop.is_set():
                self._flusher = threading.Thread(
                    target=self._flush_every, name="pyrometer-key-use", daemon=True
                )
                self._flusher.start()
        return scope

    def _flush_every(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            with contextlib.suppress(Exception):  # a database blip: the times wait a round
                self.flush()

    def flush(self) -> None:
        """Write the noted use times now (a later time never goes back)."""
        with self._used_lock:
            used, self._used = self._used, {}
        if not used:
            return
        try:
            record_use(self._service, used)
        except Exception:
            with self._used_lock:
                for key_id, at in used.items():
                    self._used[key_id] = max(at, self._used.get(key_id, at))
            raise

    def close(self) -> None:
        """Stop the writer, write what is noted, close the lookup's connections."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=10)
        with contextlib.suppress(Exception):  # closing anyway; at most a minute of use lost
            self.flush()
        self._lookup.close()


def record_use(service: Service, used: dict[int, int]) -> None:
    """``used``: key id -> when it was let in; written only where it is later."""
    statement = (
        api_keys.update()
        .where(api_keys.c.id == sa.bindparam("key_id"))
        .where(
            sa.or_(
                api_keys.c.last_used_us.is_(None),
                api_keys.c.last_used_us < sa.bindparam("used_us"),
            )
        )
        .values(last_used_us=sa.bindparam("used_us"))
    )
    rows = [{"key_id": key_id, "used_us": at} for key_id, at in sorted(used.items())]
    service.write(lambda conn: conn.execute(statement, rows))
