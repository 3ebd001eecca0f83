"""The service's settings from the environment, checked at once by ``serve``.

Each is read where it is used (so the worker processes of ``serve --workers N``, which
get the environment, read the same); ``check_settings`` reads them all up front, so a
bad value is one clear line before anything starts, not a traceback in a worker.
"""

from __future__ import annotations

from pyrometer.api.availability import request_timeout_from_env
from pyrometer.api.cors import cors_origins_from_env
from pyrometer.api.docs import docs_from_env
from pyrometer.api.slow_clients import (
    BODY_TIMEOUT_VARIABLE,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    HEADER_TIMEOUT_VARIABLE,
    timeout_from_env,
)
from pyrometer.service.delivery import DeliverySettings
from pyrometer.store.engine import StoreTimeouts


def check_settings() -> bool:
    """Raise ``ValueError`` naming the first bad variable; whether docs are on."""
    StoreTimeouts.from_env()
    DeliverySettings.from_env()
    request_timeout_from_env()
    cors_origins_from_env()
    timeout_from_env(HEADER_TIMEOUT_VARIABLE, DEFAULT_HEADER_TIMEOUT)
    timeout_from_env(BODY_TIMEOUT_VARIABLE, DEFAULT_BODY_TIMEOUT)
    return docs_from_env()
