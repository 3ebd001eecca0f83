"""The scopes an API key can have; apart from :mod:`pyrometer.service.keys` so that the
command line names them without importing SQLAlchemy."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    INGEST = "ingest"  # track, identify, batch
    READ = "read"  # leads, playbook, reports
    ADMIN = "admin"  # everything, including changes
