"""Conversion models learned from the store's outcomes (issue #14): train, list, activate.

Training answers 202 with its job, as publishing a playbook does; progress and the
result (the new model's number, whether it was activated and why, the leakage guard's
warnings) are at ``/v1/jobs/{id}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, status

from pyrometer.api.auth import require
from pyrometer.api.deps import not_found, service_of
from pyrometer.api.query_check import no_unknown_query
from pyrometer.service import models
from pyrometer.service.keys import Scope
from pyrometer.service.rescore import job_view
from pyrometer.store import models as registry

router = APIRouter(prefix="/v1", tags=["models"], dependencies=[Depends(no_unknown_query)])
Number = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "/models/train",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require(Scope.ADMIN))],
)
def models_train(request: Request) -> dict[str, Any]:
    """Train a model on the stored outcomes in the background; follow the job."""
    service = service_of(request)
    job_id = models.create_job(service, trigger="api")
    if request.app.state.background:
        models.start_training(service, job_id)
    return {"job": job_view(service, job_id)}


@router.get("/models", dependencies=[Depends(require(Scope.READ))])
def models_list(request: Request) -> list[dict[str, Any]]:
    """Every trained model, newest first, with its headline figures on held-out outcomes."""
    rows = service_of(request).read(registry.list_models)
    return [models.model_view(row) for row in rows]


@router.get("/models/{version}", dependencies=[Depends(require(Scope.READ))])
def models_get(version: Number, request: Request) -> dict[str, Any]:
    """One model: its figures, lift by decile and calibration on the newest outcomes,
    its baselines, the active model's figures on the same leads, and what was dropped."""
    row = service_of(request).read(lambda conn: registry.get_model(conn, version))
    if row is None:
        raise not_found(f"model {version}")
    return models.model_view(row, full=True)


@router.post("/models/{version}/activate", dependencies=[Depends(require(Scope.ADMIN))])
def models_activate(version: Number, request: Request) -> dict[str, Any]:
    """Make this model the one every lead read is scored with."""
    service = service_of(request)
    if not models.activate(service, version):
        raise not_found(f"model {version}")
    row = service.read(lambda conn: registry.get_model(conn, version))
    assert row is not None
    return models.model_view(row)
