"""The playbook: read the one in force and older versions, validate, publish.

Publishing answers 202 at once; every lead is rescored under the new version in the
background, with progress at ``/v1/jobs/{id}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status

from pyrometer.api.auth import require
from pyrometer.api.deps import not_found, service_of
from pyrometer.api.query_check import no_unknown_query
from pyrometer.api.schemas import BacktestIn, PlaybookIn
from pyrometer.core.playbook import PlaybookError
from pyrometer.core.playbook_check import check_playbook
from pyrometer.core.timeutil import iso
from pyrometer.service.keys import Scope
from pyrometer.service.playbooks import version_row, version_rows
from pyrometer.service.rescore import job_view, publish, start_job

router = APIRouter(prefix="/v1", tags=["playbook"], dependencies=[Depends(no_unknown_query)])
Number = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _problems(exc: PlaybookError) -> list[dict[str, Any]]:
    return [
        {"loc": ["body", "yaml", *([path] if path else [])], "msg": message, "type": "playbook"}
        for path, message in exc.problems
    ]


def _version(row: Any, with_yaml: bool) -> dict[str, Any]:
    out = {"version": row.version, "name": row.name, "created": iso(row.created_us)}
    if with_yaml:
        out["yaml"] = row.yaml
    return out


@router.get("/playbook", dependencies=[Depends(require(Scope.READ))])
def playbook_current(request: Request) -> dict[str, Any]:
    """The playbook in force, as YAML, with its version."""
    row = service_of(request).read(version_row)
    assert row is not None  # a store always has its seeded version 1
    return _version(row, with_yaml=True)


@router.get("/playbook/versions", dependencies=[Depends(require(Scope.READ))])
def playbook_versions(request: Request) -> list[dict[str, Any]]:
    """Every version ever published, newest first."""
    rows = service_of(request).read(version_rows)
    return [_version(row, with_yaml=False) for row in rows]


@router.get("/playbook/versions/{version}", dependencies=[Depends(require(Scope.READ))])
def playbook_version(version: Number, request: Request) -> dict[str, Any]:
    row = service_of(request).read(lambda conn: version_row(conn, version))
    if row is None:
        raise not_found(f"playbook version {version}")
    return _version(row, with_yaml=True)


@router.post("/playbook/validate", dependencies=[Depends(require(Scope.READ))])
def playbook_validate(body: PlaybookIn) -> dict[str, Any]:
    """Check a playbook without publishing it: `valid` and the problems, each with its path;
    `warnings` as `pyrometer playbook check` gives them (events in no vocabulary...)."""
    try:
        _, warnings = check_playbook(body.yaml, source="playbook")
    except PlaybookError as exc:
        return {"valid": False, "problems": _problems(exc), "warnings": []}
    return {
        "valid": True,
        "problems": [],
        "warnings": [{"path": path, "msg": message} for path, message in warnings],
    }


@router.post(
    "/playbook",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require(Scope.ADMIN))],
    responses={200: {"description": "The content in force already: nothing published"}},
)
def playbook_publish(body: PlaybookIn, request: Request, response: Response) -> dict[str, Any]:
    """Publish a new version; every lead is rescored in the background (see the job).

    The same content as the version in force (comments and layout aside) is no new
    version: 200 with that version, `"changed": false` and no job.
    """
    service = service_of(request)
    try:
        created = publish(service, body.yaml)
    except PlaybookError as exc:
        raise HTTPException(status_code=422, detail=_problems(exc)) from None
    if not created["changed"]:
        response.status_code = status.HTTP_200_OK
        return {"version": created["version"], "changed": False, "job": None}
    if request.app.state.background:
        start_job(service, created["job_id"])
    return {
        "version": created["version"],
        "changed": True,
        "job": job_view(service, created["job_id"]),
    }


@router.post(
    "/playbook/backtest",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require(Scope.ADMIN))],
)
def playbook_backtest(body: BacktestIn, request: Request) -> dict[str, Any]:
    """Backtest a playbook on the stored events before publishing it: at each as-of time
    (daily by default, 180 up to the last day a whole horizon has passed) every lead
    scored from its events up to then, under the playbook in force and this one, against
    the wins stored after it. Answers 202 with a job; `GET /v1/jobs/{id}` shows progress
    and, once done, `result` (the figures of `pyrometer backtest --json`)."""
    from pyrometer.core.timeutil import parse_duration_us, to_us
    from pyrometer.service import backtest

    service = service_of(request)
    try:
        plan = backtest.plan(
            service,
            body.yaml,
            to_us(body.start) if body.start else None,
            to_us(body.end) if body.end else None,
            parse_duration_us(body.every),
            parse_duration_us(body.horizon),
            body.capacity,
        )
    except PlaybookError as exc:
        raise HTTPException(status_code=422, detail=_problems(exc)) from None
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        detail = [{"loc": ["body", field], "msg": message or str(exc), "type": "value_error"}]
        raise HTTPException(status_code=422, detail=detail) from None
    job_id = backtest.create_job(service, plan)
    if request.app.state.background:
        backtest.start_job(service, job_id, plan)
    return {"job": job_view(service, job_id)}


@router.get("/jobs/{job_id}", dependencies=[Depends(require(Scope.READ))])
def job(job_id: Number, request: Request) -> dict[str, Any]:
    """A background job's progress: `done` of `total` leads, and its status."""
    found = job_view(service_of(request), job_id)
    if found is None:
        raise not_found(f"job {job_id}")
    return found
