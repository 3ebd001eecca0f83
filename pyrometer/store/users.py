"""The store's side of dashboard users: rows read and written in a caller's transaction.

Hashing and checking passwords is the service's (:mod:`pyrometer.service.users`); the
store keeps the hash it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.store.tables import users


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    email: str
    role: str
    rep_id: str | None
    password_hash: str
    must_change: bool
    session_version: int
    created_us: int
    last_sign_in_us: int | None


def _row(row: Any) -> UserRow:
    return UserRow(
        int(row.id),
        row.email,
        row.role,
        row.rep_id,
        row.password_hash,
        bool(row.must_change),
        int(row.session_version),
        int(row.created_us),
        None if row.last_sign_in_us is None else int(row.last_sign_in_us),
    )


def all_users(conn: Connection) -> list[UserRow]:
    return [_row(r) for r in conn.execute(sa.select(users).order_by(users.c.email))]


def by_email(conn: Connection, email: str) -> UserRow | None:
    row = conn.execute(sa.select(users).where(users.c.email == email)).first()
    return None if row is None else _row(row)


def by_id(conn: Connection, user_id: int) -> UserRow | None:
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    return None if row is None else _row(row)


def insert_user(
    conn: Connection, email: str, role: str, rep_id: str | None, password_hash: str, now_us: int
) -> UserRow:
    """A new user who must change the password at first sign-in; the caller checked that
    the e-mail is free (an ``IntegrityError`` if two add it at once)."""
    values = {
        "email": email,
        "role": role,
        "rep_id": rep_id,
        "password_hash": password_hash,
        "must_change": True,
        "session_version": 1,
        "created_us": now_us,
    }
    new_id = conn.execute(users.insert().values(**values)).inserted_primary_key[0]
    return UserRow(int(new_id), email, role, rep_id, password_hash, True, 1, now_us, None)


def set_password(conn: Connection, user_id: int, password_hash: str, must_change: bool) -> None:
    """A new password hash; sessions made before it end (their version is older)."""
    conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(
            password_hash=password_hash,
            must_change=must_change,
            session_version=users.c.session_version + 1,
        )
    )


def rehash(conn: Connection, user_id: int, password_hash: str) -> None:
    """The same password under newer hash parameters (sessions stay)."""
    conn.execute(users.update().where(users.c.id == user_id).values(password_hash=password_hash))


def signed_in(conn: Connection, user_id: int, now_us: int) -> None:
    conn.execute(users.update().where(users.c.id == user_id).values(last_sign_in_us=now_us))


def delete_user(conn: Connection, email: str) -> bool:
    return bool(conn.execute(users.delete().where(users.c.email == email)).rowcount)
