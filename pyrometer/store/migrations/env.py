"""Alembic environment: always given a connection by :func:`pyrometer.store.migrate.upgrade`."""

from __future__ import annotations

from alembic import context

from pyrometer.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
