"""Sales reps over HTTP, for the admin scope: list, get, add, change, remove.

A rep is validated by :func:`pyrometer.routing.reps.parse_rep`: a bad territory, time
zone, working hours or e-mail is a 422 whose ``loc`` names the field, and changes
nothing. ``PATCH`` changes only the fields it is given (``{"away": true}`` marks the rep
away: routing gives it nothing new).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

from pyrometer.api.auth import require
from pyrometer.api.convert import FieldErrors
from pyrometer.api.deps import not_found, service_of
from pyrometer.api.query_check import no_unknown_query
from pyrometer.api.schemas import JsonObject, SafeText
from pyrometer.core.timeutil import iso
from pyrometer.routing.reps import RepError
from pyrometer.service.reps import (
    RepExists,
    StoredRep,
    add_rep,
    get_rep,
    list_reps,
    remove_rep,
    update_rep,
)
from pyrometer.service.scopes import Scope

router = APIRouter(
    prefix="/v1",
    tags=["reps"],
    dependencies=[Depends(require(Scope.ADMIN)), Depends(no_unknown_query)],
)
RepId = Annotated[SafeText, Path(min_length=1, max_length=200)]
MAX_CAPACITY = 1_000_000
Text = Annotated[SafeText, Field(max_length=200)]


class RepPatch(BaseModel):
    """Fields of a rep to change; those left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = None
    email: Text | None = None
    capacity: int | None = Field(
        default=None, ge=1, le=MAX_CAPACITY, description="Most new leads per window."
    )
    territory: JsonObject | None = Field(
        default=None, description="A condition on lead attributes, e.g. {country: [LT, LV]}."
    )
    timezone: Text | None = None
    hours: Text | None = Field(default=None, description="Local working hours, 09:00-17:00.")
    away: bool | None = None


class RepIn(RepPatch):
    """A rep to add."""

    id: Text
    name: Text
    email: Text
    timezone: Text = "UTC"
    away: bool = False


def _field_errors(exc: RepError) -> FieldErrors:
    return FieldErrors(
        [
            {"loc": ("body", *field.split(".")) if field else ("body",), "msg": message}
            for field, message in exc.problems
        ]
    )


def _view(stored: StoredRep) -> dict[str, Any]:
    return {
        **stored.rep.to_dict(),
        "created": iso(stored.created_us),
        "updated": iso(stored.updated_us),
    }


@router.get("/reps")
def reps_list(request: Request) -> dict[str, Any]:
    """Every rep, by id."""
    return {"items": [_view(stored) for stored in list_reps(service_of(request))]}


@router.get("/reps/{rep_id}")
def reps_get(request: Request, rep_id: RepId) -> dict[str, Any]:
    """One rep."""
    stored = get_rep(service_of(request), rep_id)
    if stored is None:
        raise not_found(f"rep {rep_id}")
    return _view(stored)


@router.post("/reps", status_code=status.HTTP_201_CREATED)
def reps_add(request: Request, body: RepIn) -> dict[str, Any]:
    """Add a rep; 409 if one with this id exists."""
    try:
        stored = add_rep(service_of(request), body.model_dump(exclude_unset=True))
    except RepError as exc:
        raise _field_errors(exc) from None
    except RepExists as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return _view(stored)


@router.patch("/reps/{rep_id}")
def reps_update(request: Request, rep_id: RepId, body: RepPatch) -> dict[str, Any]:
    """Change the given fields of a rep (``null`` clears capacity, territory or hours)."""
    changes = body.model_dump(exclude_unset=True)
    for field in ("name", "email", "timezone", "away"):
        if field in changes and changes[field] is None:
            raise FieldErrors([{"loc": ("body", field), "msg": f"{field} cannot be null"}])
    try:
        stored = update_rep(service_of(request), rep_id, changes)
    except RepError as exc:
        raise _field_errors(exc) from None
    if stored is None:
        raise not_found(f"rep {rep_id}")
    return _view(stored)


@router.delete("/reps/{rep_id}")
def reps_remove(request: Request, rep_id: RepId) -> dict[str, Any]:
    """Remove a rep; 404 if there is none."""
    if not remove_rep(service_of(request), rep_id):
        raise not_found(f"rep {rep_id}")
    return {"id": rep_id, "removed": True}
