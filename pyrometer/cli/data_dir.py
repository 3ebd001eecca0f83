"""Where ``serve --demo`` keeps its files: a data folder, not the current directory.

The folder is ``--data-dir``, else ``$PYROMETER_DATA_DIR``, else
``$XDG_DATA_HOME/pyrometer`` (``~/.local/share/pyrometer``). It holds the demo's SQLite
store (``demo.db``, with its WAL and lock files) and the demo's keys
(``demo-keys.json``, readable by its owner only), so a restart serves the same leads
and prints the same keys instead of new ones. Keys are kept per store URL, and reused
only while the store still accepts them with their scope.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pyrometer.service.keys import KeyChecker, Scope, create_key
from pyrometer.service.runtime import Service

DATA_DIR_VARIABLE = "PYROMETER_DATA_DIR"
KEYS_FILE = "demo-keys.json"
DEMO_DATABASE = "demo.db"


def data_dir(given: Path | None = None) -> Path:
    if given is not None:
        return given.expanduser()
    if os.environ.get(DATA_DIR_VARIABLE):
        return Path(os.environ[DATA_DIR_VARIABLE]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "pyrometer"


def prepare(folder: Path) -> Path:
    """The folder, created (owner only) if missing; an error naming it if it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise OSError(f"--data-dir {folder}: cannot create it ({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise OSError(f"--data-dir {folder}: not a folder")
    return folder


def demo_database_url(folder: Path) -> str:
    return f"sqlite:///{(folder / DEMO_DATABASE).resolve()}"


def demo_keys(service: Service, folder: Path, url: str) -> dict[Scope, str]:
    """The demo's admin and ingest keys for the store at ``url``: the ones kept in
    ``folder`` if the store still accepts them, else new ones, kept for next time."""
    path = folder / KEYS_FILE
    kept: dict[str, dict[str, str]] = {}
    if path.exists():
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            kept = {}  # unreadable: make new keys and write the file anew
    mine = kept.get(url, {})
    checker = KeyChecker(service)
    keys: dict[Scope, str] = {}
    changed = False
    for scope in (Scope.ADMIN, Scope.INGEST):
        key = mine.get(scope.value)
        if not key or checker.scope_of(key) != scope.value:
            key = create_key(service, scope, "demo")
            changed = True
        keys[scope] = key
    loose = path.exists() and bool(path.stat().st_mode & 0o077)  # others may read it
    if changed or loose or not path.exists():
        kept[url] = {scope.value: key for scope, key in keys.items()}
        _write_private(path, json.dumps(kept, indent=2) + "\n")
    return keys


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable and writable by its owner only (0600)."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, 0o600)  # an older file of that name may have had other bits
    os.replace(temporary, path)


USERS_FILE = "demo-users.json"
DEMO_USERS = (
    ("admin@example.com", "admin", None),
    ("kim@example.com", "rep", "kim"),
)


def demo_users(service: Service, folder: Path, url: str) -> list[tuple[str, str, str | None, str]]:
    """The demo's dashboard users (admin, and a rep for Kim's queue) as ``(email, role,
    rep, password)``: passwords kept in ``folder`` beside the keys, so every start prints
    the same ones; the store's users are made or reset to match."""
    from pyrometer.service.users import demo_user, generate_password

    path = folder / USERS_FILE
    kept: dict[str, dict[str, str]] = {}
    if path.exists():
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            kept = {}
    mine = dict(kept.get(url, {}))
    out = []
    for email, role, rep in DEMO_USERS:
        password = mine.get(email) or generate_password()
        demo_user(service, email, role, rep, password)
        mine[email] = password
        out.append((email, role, rep, password))
    if kept.get(url) != mine or bool(path.exists() and path.stat().st_mode & 0o077):
        kept[url] = mine
        _write_private(path, json.dumps(kept, indent=2) + "\n")
    return out
