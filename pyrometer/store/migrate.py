"""Bring a database to the newest schema with the Alembic migrations shipped in the package.

Run on every start, so upgrading Pyrometer upgrades the store. Concurrent starts are safe:
PostgreSQL takes an advisory lock, SQLite a write lock, for the whole upgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from pyrometer.store.engine import WRITE, is_postgres

SCRIPT_LOCATION = "pyrometer.store:migrations"
_LOCK_ID = 0x5059524F  # "PYRO"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def upgrade(engine: Engine) -> None:
    """Apply every migration the database has not had yet."""
    config = alembic_config()
    with engine.connect() as conn:
        conn.execution_options(**{WRITE: True})
        with conn.begin():
            if is_postgres(conn):
                # A migration of a large table may take longer than a request's statement
                # time-out (engine.StoreTimeouts): this transaction has none.
                conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
                conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
