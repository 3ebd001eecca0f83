"""Answers of the read routes written by orjson, not FastAPI's generic encoder.

FastAPI walks a returned dict with ``jsonable_encoder`` before writing it: 10 ms for a
lead page of 200 ledger lines and 200 events, most of the page's time, all of it
holding the GIL that ingest in the same process needs. The pages are plain JSON types
already, so orjson writes them directly (the standard library's ``json`` where orjson
refuses a value, such as an integer past 64 bits in an old row).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson
from fastapi.responses import JSONResponse
from starlette.types import Send


class JSONBytes(JSONResponse):
    """A JSON answer (described as one in the OpenAPI document) written by orjson."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:
            return json.dumps(content, ensure_ascii=False, allow_nan=False).encode()


async def send_json(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """A whole JSON answer straight to ASGI ``send``: for middleware that answers before
    (or instead of) the app."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
