"""The FastAPI application: routers, the body size limit, errors, background tasks.

``create_app`` takes a ready :class:`Service`, so tests give it a store and a clock of
their own; ``background=False`` leaves the decay scheduler and rescoring jobs to the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from pyrometer.api import (
    routes_ingest,
    routes_leads,
    routes_merge,
    routes_playbook,
    routes_reports,
)
from pyrometer.api.convert import FieldErrors
from pyrometer.api.limits import DEFAULT_MAX_BODY, BodyLimit
from pyrometer.service.decay import DecayScheduler
from pyrometer.service.grouping import GroupCommitter
from pyrometer.service.keys import KeyChecker
from pyrometer.service.rescore import resume_jobs
from pyrometer.service.runtime import Service
from pyrometer.service.scoring_pool import ScoringPool
from pyrometer.store.engine import WalCheckpointer


def create_app(
    service: Service,
    *,
    background: bool = True,
    max_body: int = DEFAULT_MAX_BODY,
    scoring_processes: int = 0,
) -> FastAPI:
    """``scoring_processes``: processes that score ingest groups ahead of their write
    (:mod:`pyrometer.service.scoring_pool`); 0 scores in this process."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if scoring_processes > 0:
            service.scoring_pool = ScoringPool(service, scoring_processes)
        # The scheduler's leader (one process of ``serve --workers N``) resumes the
        # rescore jobs a stopped server left running.
        scheduler = DecayScheduler(service, lambda: resume_jobs(service)) if background else None
        checkpointer = WalCheckpointer(service.engine)
        checkpointer.start()
        committer.start()
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            committer.stop()
            checkpointer.stop()
            if scheduler is not None:
                scheduler.stop()
            pool, service.scoring_pool = service.scoring_pool, None
            if pool is not None:
                pool.close()

    app = FastAPI(
        title="Pyrometer",
        version="0.1.0",
        description="Lead scoring: Segment-compatible ingest, live explained scores.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.keys = KeyChecker(service)
    app.state.background = background
    # Two group-commit threads: with two scoring processes each keeps one busy; without,
    # one can score its group ahead while the other writes (on SQLite the writes still
    # take turns). More threads make smaller groups of single events: 20% fewer of
    # those per second with three.
    committer = GroupCommitter(service, writers=2)
    app.state.committer = committer
    for module in (routes_ingest, routes_leads, routes_playbook, routes_reports):
        app.include_router(module.router)
    app.include_router(routes_merge.router)

    @app.exception_handler(FieldErrors)
    async def field_errors(_request: Request, exc: FieldErrors) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": exc.errors})

    @app.get("/health", tags=["health"])
    def health() -> dict[str, Any]:
        """Liveness: answers without a key."""
        return {"ok": True}

    app.add_middleware(BodyLimit, max_bytes=max_body)
    return app
