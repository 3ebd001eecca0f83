"""Lead ids that hold ``/`` in the ``/v1/leads/{lead_id}`` routes.

A lead id is any text ingest accepts, ``ann/x@corp.example`` too, and a client sends it
in a path as ``ann%2Fx@corp.example``. The server decodes ``%2F`` before routing, so the
id became two segments and no lead route matched: such a lead could not be read,
exported or erased over the API. :class:`LeadPathIds` reads the id's segment from the
raw path and hands it to routing with each ``/`` as :data:`SLASH`, a lone surrogate,
which no decoded path can hold (the server decodes with replacement); the lead routes'
id type turns it back with :func:`restore_slashes`. ``/v1/leads/ann/x`` stays what it
was: the lead ``ann``'s sub-route ``x``, which does not exist.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from fastapi import Path
from pydantic import AfterValidator, BeforeValidator
from starlette.types import ASGIApp, Receive, Scope, Send

from pyrometer.api.schemas import MAX_ID, _check_text, _lead_id

SLASH = "\udc2f"  # stands for "/" inside a lead id segment, between routing and the route
_PREFIX = b"/v1/leads/"


def restore_slashes(value: object) -> object:
    """A lead id from the path, with the slashes :class:`LeadPathIds` stood in for (run
    before the text is validated, which refuses a lone surrogate)."""
    return value.replace(SLASH, "/") if isinstance(value, str) else value


# The {lead_id} of every /v1/leads route: trimmed and NFC, the id ingest stored.
LeadId = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID),
    BeforeValidator(restore_slashes),  # an encoded "/" in the id
    AfterValidator(_check_text),
    AfterValidator(_lead_id),
]


class LeadPathIds:
    """Keeps an encoded ``/`` (``%2F``) in a lead route's id segment inside that segment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if isinstance(raw, bytes) and raw.startswith(_PREFIX) and b"%2" in raw:
            segment, slash, rest = raw[len(_PREFIX) :].partition(b"/")
            if b"%2f" in segment.lower():
                lead = unquote(segment.decode("latin-1"), errors="replace")
                tail = unquote(rest.decode("latin-1"), errors="replace")
                path = "/v1/leads/" + lead.replace("/", SLASH) + slash.decode() + tail
                scope = {**scope, "path": path}
        await self.app(scope, receive, send)
