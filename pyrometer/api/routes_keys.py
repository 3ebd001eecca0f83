"""API keys over HTTP, for the admin scope: list, create, revoke.

A listing never shows a key or its hash (see :class:`pyrometer.service.keys.KeyInfo`);
a key is shown once, in the answer that creates it. A revoked key is refused from the
next request on, by every server process.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

from pyrometer.api.auth import require
from pyrometer.api.deps import not_found, service_of
from pyrometer.api.query_check import no_unknown_query
from pyrometer.api.schemas import SafeText
from pyrometer.core.timeutil import iso
from pyrometer.service.keys import KeyInfo, Scope, list_keys, new_key, revoke_key

router = APIRouter(
    prefix="/v1",
    tags=["keys"],
    dependencies=[Depends(require(Scope.ADMIN)), Depends(no_unknown_query)],
)
KeyId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class KeyIn(BaseModel):
    """A key to create: its scope and a note on who uses it."""

    model_config = ConfigDict(extra="forbid")

    scope: Scope
    name: Annotated[SafeText, Field(max_length=200)] = ""


def _view(info: KeyInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "scope": info.scope,
        "name": info.name,
        "prefix": info.prefix,
        "created": iso(info.created_us),
        "last_used": None if info.last_used_us is None else iso(info.last_used_us),
        "revoked": info.revoked,
    }


@router.get("/keys")
def keys_list(request: Request) -> dict[str, Any]:
    """Every key, oldest first: id, scope, name, first characters, created, last used (to
    the minute; null: never), revoked."""
    return {"items": [_view(info) for info in list_keys(service_of(request))]}


@router.post("/keys", status_code=status.HTTP_201_CREATED)
def keys_create(request: Request, body: KeyIn) -> dict[str, Any]:
    """A new key; ``key`` is in this answer only (the store keeps its hash)."""
    created = new_key(service_of(request), body.scope, body.name)
    return {**_view(created.info), "key": created.key}


@router.delete("/keys/{key_id}")
def keys_revoke(request: Request, key_id: KeyId) -> dict[str, Any]:
    """Revoke a key (again is fine): refused from the next request on, everywhere."""
    info = revoke_key(service_of(request), key_id)
    if info is None:
        raise not_found(f"key {key_id}")
    return _view(info)
