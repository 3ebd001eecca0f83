"""Managing sales reps: list, get, add, change, mark away or back, remove.

Every rep written is first parsed by :func:`pyrometer.routing.reps.parse_rep`, so a bad
territory, time zone, working hours or e-mail is refused with a
:class:`~pyrometer.routing.reps.RepError` naming the field, and nothing stored changes.
A change is partial: the stored rep with the given fields replaced, parsed as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.routing.reps import Rep, RepError, parse_rep
from pyrometer.service.runtime import Service
from pyrometer.store import reps as store


class RepExists(ValueError):
    """A rep with this id is already stored."""

    def __init__(self, rep_id: str) -> None:
        self.rep_id = rep_id
        super().__init__(f"there is already a rep {rep_id!r}")


@dataclass(frozen=True, slots=True)
class StoredRep:
    """A rep with when it was added and last changed (UTC microseconds)."""

    rep: Rep
    created_us: int
    updated_us: int


def _stored(row: store.RepRow) -> StoredRep:
    return StoredRep(parse_rep(row.data), row.created_us, row.updated_us)


def list_reps(service: Service) -> list[StoredRep]:
    """Every rep, by id."""
    return [_stored(row) for row in service.read(store.all_reps)]


def get_rep(service: Service, rep_id: str) -> StoredRep | None:
    row = service.read(lambda conn: store.rep_row(conn, rep_id))
    return None if row is None else _stored(row)


def add_rep(service: Service, data: Mapping[str, Any]) -> StoredRep:
    """Store a new rep; :class:`RepError` if it is not valid, :class:`RepExists` if its id is
    taken."""
    rep = parse_rep(data)

    def work(conn: Connection) -> StoredRep:
        if store.rep_row(conn, rep.id) is not None:
            raise RepExists(rep.id)
        row = store.insert_rep(conn, rep.id, rep.to_dict(), service.clock())
        return StoredRep(rep, row.created_us, row.updated_us)

    try:
        return service.write(work)
    except sa.exc.IntegrityError:  # added by another process between the check and insert
        raise RepExists(rep.id) from None


def update_rep(service: Service, rep_id: str, changes: Mapping[str, Any]) -> StoredRep | None:
    """Replace the given fields of the rep ``rep_id``; None if there is no such rep.

    The id cannot change (remove the rep and add it again).
    """
    if "id" in changes and changes["id"] != rep_id:
        raise RepError([("id", "a rep's id cannot change; remove the rep and add it again")])

    def work(conn: Connection) -> StoredRep | None:
        row = store.rep_row(conn, rep_id, for_update=True)
        if row is None:
            return None
        rep = parse_rep({**row.data, **changes, "id": rep_id})
        now = service.clock()
        store.replace_rep(conn, rep_id, rep.to_dict(), now)
        return StoredRep(rep, row.created_us, now)

    return service.write(work)


def remove_rep(service: Service, rep_id: str) -> bool:
    """Remove the rep ``rep_id``; whether there was one."""
    return service.write(lambda conn: store.delete_rep(conn, rep_id))
