"""422 answers that name what is wrong without sending the request back.

FastAPI's own validation answer repeats each bad value whole under ``input``: a 1 MB id, or
a 2,501-message batch, comes back in full, and a value JSON cannot encode (NaN, an
infinity, an unpaired surrogate) turns the answer itself into a 500 and a reset
connection. Here every error keeps its ``loc``, ``msg`` and ``type``, and ``input`` is a
short, always encodable excerpt (at most :data:`EXCERPT` characters); at most
:data:`MAX_ERRORS` errors are listed.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

EXCERPT = 80
MAX_MSG = 300
MAX_ERRORS = 50

_REPR = reprlib.Repr()
_REPR.maxstring = EXCERPT
_REPR.maxother = EXCERPT
_REPR.maxlong = EXCERPT
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 3
_REPR.maxlevel = 2


def _safe(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with anything UTF-8 cannot hold escaped."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def excerpt(value: Any) -> str:
    """A short text showing ``value``: the start of a string, a bounded repr otherwise."""
    return _safe(value if isinstance(value, str) else _REPR.repr(value), EXCERPT)


def _loc_part(part: Any) -> str | int:
    return part if isinstance(part, int) and not isinstance(part, bool) else excerpt(str(part))


def safe_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Errors as JSON can always encode them: ``loc``, ``msg``, ``type``, an ``input``
    excerpt; past :data:`MAX_ERRORS` one last entry counts the rest."""
    listed: list[dict[str, Any]] = []
    more = 0
    for error in errors:
        if len(listed) == MAX_ERRORS:
            more += 1
            continue
        entry: dict[str, Any] = {
            "loc": [_loc_part(p) for p in error.get("loc", ())],
            "msg": _safe(str(error.get("msg", "")), MAX_MSG),
            "type": _safe(str(error.get("type", "value_error")), EXCERPT),
        }
        if "input" in error:
            entry["input"] = excerpt(error["input"])
        listed.append(entry)
    if more:
        listed.append(
            {"loc": [], "msg": f"and {more} more errors like these", "type": "too_many_errors"}
        )
    return listed


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """The app's answer to :class:`RequestValidationError`."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": safe_errors(exc.errors())})
