"""Dashboard users: who may sign in, with which role, and their passwords.

Passwords are stored as argon2id hashes (``argon2-cffi``'s defaults: 64 MiB, about
0.1 s a check, so a stolen table is slow to guess). A new user gets a generated
password, shown once, that must be replaced at the first sign-in. API keys stay for
machines; these are for people.

Roles: ``rep`` (their own queue, leads, touches), ``manager`` (every rep's queue,
reports, lead attributes, the playbook read-only) and ``admin`` (publishing too).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.engine import Connection

from pyrometer.service.runtime import Service
from pyrometer.store import reps as rep_store
from pyrometer.store import users as store
from pyrometer.store.users import UserRow

MIN_PASSWORD = 10
MAX_PASSWORD = 1000  # argon2 takes any length; a megabyte "password" is only work for us
_EMAIL = re.compile(r"^[^@\s]{1,200}@[^@\s]{1,118}$")


class Role(StrEnum):
    REP = "rep"
    MANAGER = "manager"
    ADMIN = "admin"


RANK = {Role.REP: 0, Role.MANAGER: 1, Role.ADMIN: 2}


def at_least(role: str, needed: Role) -> bool:
    """Whether ``role`` may do what ``needed`` may (admin ⊇ manager ⊇ rep)."""
    try:
        return RANK[Role(role)] >= RANK[needed]
    except ValueError:
        return False


class UserError(ValueError):
    """A bad e-mail, role, rep or password; ``field`` names the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# Replaced by tests with argon2.profiles.CHEAPEST; hashes carry their own parameters, so
# a hash made with one hasher is checked by any other.
hasher = PasswordHasher()
# Checked when the e-mail is unknown, so that a wrong e-mail takes as long as a wrong
# password and the answer's time does not tell which addresses have accounts.
_DUMMY_HASH: list[str] = []


def _dummy() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(hasher.hash(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise UserError("EMAIL", f"not an e-mail address: {email!r}")
    return email


def generate_password() -> str:
    """16 URL-safe characters (96 random bits), no spaces: the last word of a line."""
    return secrets.token_urlsafe(12)


@dataclass(frozen=True, slots=True)
class User:
    """A user as the dashboard sees one (never the hash)."""

    id: int
    email: str
    role: str
    rep_id: str | None
    must_change: bool
    session_version: int
    created_us: int
    last_sign_in_us: int | None

    @classmethod
    def of(cls, row: UserRow) -> User:
        return cls(
            row.id,
            row.email,
            row.role,
            row.rep_id,
            row.must_change,
            row.session_version,
            row.created_us,
            row.last_sign_in_us,
        )

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "role": self.role, "rep": self.rep_id}


def add_user(
    service: Service, email: str, role: str, rep_id: str | None = None
) -> tuple[User, str]:
    """A new user and their generated password (to be changed at first sign-in)."""
    email = normalize_email(email)
    try:
        role = Role(role).value
    except ValueError:
        raise UserError("--role", f"expected rep, manager or admin, got {role!r}") from None
    password = generate_password()
    hashed = hasher.hash(password)

    def work(conn: Connection) -> User:
        if rep_id is not None and rep_store.rep_row(conn, rep_id) is None:
            raise UserError("--rep", f"there is no rep {rep_id!r} (see `pyrometer reps list`)")
        if store.by_email(conn, email) is not None:
            raise UserError("EMAIL", f"there is a user {email} already")
        return User.of(store.insert_user(conn, email, role, rep_id, hashed, service.clock()))

    try:
        return service.write(work), password
    except sa.exc.IntegrityError:  # added by another process between the check and insert
        raise UserError("EMAIL", f"there is a user {email} already") from None


def list_users(service: Service) -> list[User]:
    return [User.of(row) for row in service.read(store.all_users)]


def remove_user(service: Service, email: str) -> bool:
    email = email.strip().lower()
    return service.write(lambda conn: store.delete_user(conn, email))


def get_user(service: Service, user_id: int) -> User | None:
    row = service.read(lambda conn: store.by_id(conn, user_id))
    return None if row is None else User.of(row)


def authenticate(service: Service, email: str, password: str) -> User | None:
    """The user whose e-mail and password these are, or None (whichever was wrong)."""
    email = email.strip().lower()
    if len(password) > MAX_PASSWORD:
        return None
    row = service.read(lambda conn: store.by_email(conn, email))
    if row is None:
        _check(_dummy(), password)
        return None
    if not _check(row.password_hash, password):
        return None
    now = service.clock()

    def work(conn: Connection) -> None:
        store.signed_in(conn, row.id, now)
        if hasher.check_needs_rehash(row.password_hash):
            store.rehash(conn, row.id, hasher.hash(password))

    service.write(work)
    return User.of(row)


def _check(hashed: str, password: str) -> bool:
    try:
        return hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def change_password(service: Service, user_id: int, current: str, new: str) -> User:
    """Replace the password (``current`` must be right); ends the user's other sessions.
    Returns the user as now stored (its new session version)."""
    row = service.read(lambda conn: store.by_id(conn, user_id))
    if row is None:
        raise UserError("user", "no longer exists")
    if not _check(row.password_hash, current[:MAX_PASSWORD]):
        raise UserError("current", "is not your current password")
    if len(new) < MIN_PASSWORD:
        raise UserError("new", f"must be at least {MIN_PASSWORD} characters")
    if len(new) > MAX_PASSWORD:
        raise UserError("new", f"must be at most {MAX_PASSWORD} characters")
    if new == current:
        raise UserError("new", "must differ from the current password")
    hashed = hasher.hash(new)

    def work(conn: Connection) -> UserRow:
        store.set_password(conn, user_id, hashed, must_change=False)
        found = store.by_id(conn, user_id)
        assert found is not None
        return found

    return User.of(service.write(work))


def demo_user(service: Service, email: str, role: str, rep_id: str | None, password: str) -> User:
    """``serve --demo``'s user with exactly this password and nothing to change (the
    demo prints it at every start): made if missing, its password set if it differs."""
    email = normalize_email(email)
    row = service.read(lambda conn: store.by_email(conn, email))
    if row is not None and _check(row.password_hash, password) and not row.must_change:
        return User.of(row)
    if row is None:
        row_user, _ = add_user(service, email, role, rep_id)
        user_id = row_user.id
    else:
        user_id = row.id
    hashed = hasher.hash(password)

    def work(conn: Connection) -> UserRow:
        store.set_password(conn, user_id, hashed, must_change=False)
        found = store.by_id(conn, user_id)
        assert found is not None
        return found

    return User.of(service.write(work))
