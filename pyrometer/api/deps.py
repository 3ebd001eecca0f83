"""Shared route helpers: the service behind the app, and 422s shaped like FastAPI's."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request

from pyrometer.service.runtime import Service


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def unprocessable(loc: list[str | int], msg: str, kind: str = "value_error") -> HTTPException:
    detail: list[dict[str, Any]] = [{"loc": loc, "msg": msg, "type": kind}]
    return HTTPException(status_code=422, detail=detail)


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} not found")
