"""Shared by the dashboard's tests: cheap argon2, users with known passwords, a sign-in."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from fastapi.testclient import TestClient

from pyrometer.service import users
from pyrometer.service.runtime import Service

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def cheap_hashes() -> PasswordHasher:
    """Swap argon2's 64 MiB default for its cheapest profile (tests only); returns the old
    hasher. Hashes carry their parameters, so checks work either way."""
    old = users.hasher
    users.hasher = PasswordHasher.from_parameters(CHEAPEST)
    users._DUMMY_HASH.clear()
    return old


def user(service: Service, email: str, role: str, rep: str | None = None) -> users.User:
    """A user whose password is :data:`PASSWORD`, with nothing to change."""
    return users.demo_user(service, email, role, rep, PASSWORD)


def csrf_of(client: TestClient, path: str = "/") -> str:
    found = CSRF.search(client.get(path).text)
    assert found, f"no csrf field on {path}"
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign ``client`` in; returns the new session's CSRF token."""
    token = csrf_of(client)
    answer = client.post(
        "/sign-in",
        data={"csrf": token, "email": email, "password": password},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client, "/password" if answer.headers["location"] == "/password" else "/leads")
