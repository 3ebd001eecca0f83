"""Refuse query parameters a route does not take, instead of silently ignoring them.

``GET /v1/leads?temprature=hot`` used to answer every lead, as if the filter had been
applied. A router that has :func:`no_unknown_query` among its dependencies answers
``400`` naming the first parameter it does not know, and the ones it does.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from fastapi.dependencies.models import Dependant

_KNOWN: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def no_unknown_query(request: Request) -> None:
    """A dependency: ``400`` for a query parameter the matched route does not declare."""
    route: Any = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    known = _KNOWN.get(id(route))
    if known is None:
        known = _KNOWN[id(route)] = frozenset(_query_names(dependant))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        name = unknown[0][:100]
        takes = ", ".join(sorted(known)) if known else "none"
        raise HTTPException(
            status_code=400,
            detail=[
                {
                    "loc": ["query", name],
                    "msg": f"unknown query parameter {name!r} (this route takes: {takes})",
                    "type": "unknown_parameter",
                }
            ],
        )
