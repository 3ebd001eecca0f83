"""Cross-origin requests, off unless configured (``PYROMETER_CORS_ORIGINS``).

Browsers send a page's scripts' requests to another origin only if the server allows
that origin; the API allows none by default, so a web page elsewhere cannot use a key a
browser holds. A dashboard served from its own origin is named explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

CORS_VARIABLE = "PYROMETER_CORS_ORIGINS"


def cors_origins_from_env() -> list[str]:
    """Comma-separated origins (``https://app.example.com,https://crm.example.com``, or
    ``*`` for any); empty or unset: none."""
    text = os.environ.get(CORS_VARIABLE, "")
    origins = [part.strip().rstrip("/") for part in text.split(",") if part.strip()]
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(
                f"{CORS_VARIABLE}: {origin!r} is not an origin such as https://app.example.com"
            )
    return origins


def install_cors(app: FastAPI, origins: Sequence[str]) -> None:
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )
