"""Playbook versions: the newest published one is in force; older ones are kept.

Parsed playbooks are cached by version (a version never changes), so a request costs one
indexed ``max(version)`` lookup, which keeps several server processes in agreement.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.playbook import Playbook, default_playbook_text, parse_playbook
from pyrometer.store.tables import playbooks


def same_content(a: Playbook, b: Playbook) -> bool:
    """Whether two playbooks say the same, whatever their YAML's comments and layout."""
    return a is b or a.to_yaml_dict() == b.to_yaml_dict()


class PlaybookRegistry:
    def __init__(self, max_age: float = 1.0) -> None:
        self._parsed: dict[int, Playbook] = {}
        self._lock = threading.Lock()
        self._max_age = max_age
        self._latest: tuple[float, int] | None = None  # (monotonic time read, version)

    def active_version(self, conn: Connection) -> int:
        version = conn.execute(sa.select(sa.func.max(playbooks.c.version))).scalar()
        if version is None:
            raise LookupError("the store has no playbook; run the migrations and seed it")
        return int(version)

    def get(self, conn: Connection, version: int) -> Playbook:
        with self._lock:
            cached = self._parsed.get(version)
        if cached is not None:
            return cached
        text = conn.execute(
            sa.select(playbooks.c.yaml).where(playbooks.c.version == version)
        ).scalar_one()
        book = parse_playbook(text, source=f"playbook version {version}")
        with self._lock:
            self._parsed[version] = book
        return book

    def active(self, conn: Connection) -> tuple[int, Playbook]:
        version = self.active_version(conn)
        return version, self.get(conn, version)

    def recent(self, conn: Connection, at_least: int = 0) -> tuple[int, Playbook]:
        """The version in force, read at most ``max_age`` seconds ago (ingest's hot path).

        A version older than ``at_least`` (one a lead was already scored under) is never
        used: the cache is refreshed instead, so no lead is scored back under an old one.
        """
        now = time.monotonic()
        latest = self._latest
        if latest is None or now - latest[0] > self._max_age or latest[1] < at_least:
            latest = (now, self.active_version(conn))
            self._latest = latest
        return latest[1], self.get(conn, latest[1])

    def seed_default(self, conn: Connection, now_us: int) -> None:
        """A new store starts with the built-in playbook as version 1."""
        if conn.execute(sa.select(sa.func.count()).select_from(playbooks)).scalar():
            return
        text = default_playbook_text()
        book = parse_playbook(text, source="default playbook")
        conn.execute(
            playbooks.insert().values(version=1, yaml=text, name=book.name, created_us=now_us)
        )

    def publish(self, conn: Connection, text: str, now_us: int) -> int:
        """Store ``text`` (already validated) as the next version; returns its number."""
        book = parse_playbook(text, source="playbook")
        version = self.active_version(conn) + 1
        conn.execute(
            playbooks.insert().values(version=version, yaml=text, name=book.name, created_us=now_us)
        )
        self._latest = None
        return version


def version_rows(conn: Connection) -> list[sa.Row[Any]]:
    """Every published version (number, name, created), newest first, without the YAML."""
    query = sa.select(playbooks.c.version, playbooks.c.name, playbooks.c.created_us)
    return list(conn.execute(query.order_by(playbooks.c.version.desc())).all())


def version_row(conn: Connection, version: int | None = None) -> sa.Row[Any] | None:
    """One version with its YAML; ``None``: the one in force."""
    query = sa.select(playbooks)
    if version is None:
        query = query.order_by(playbooks.c.version.desc()).limit(1)
    else:
        query = query.where(playbooks.c.version == version)
    return conn.execute(query).first()
