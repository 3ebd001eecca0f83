"""The FastAPI application: routers, the body size limit, errors, background tasks.

``create_app`` takes a ready :class:`Service`, so tests give it a store and a clock of
their own; ``background=False`` leaves the decay scheduler, rescoring jobs, the SLA
watcher and webhook deliveries to the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pyrometer.api import (
    availability,
    routes_ingest,
    routes_keys,
    routes_leads,
    routes_merge,
    routes_models,
    routes_nurture,
    routes_playbook,
    routes_reports,
    routes_reps,
    routes_touches,
    routes_webhooks,
)
from pyrometer.api.convert import FieldErrors
from pyrometer.api.cors import cors_origins_from_env, install_cors
from pyrometer.api.docs import docs_from_env, install_docs
from pyrometer.api.errors import safe_errors, validation_error
from pyrometer.api.lead_paths import LeadPathIds
from pyrometer.api.limits import DEFAULT_MAX_BODY, BodyLimit
from pyrometer.api.request_context import RequestContext
from pyrometer.dashboard import install as install_dashboard
from pyrometer.service.collector import tuned_for_serving
from pyrometer.service.decay import DecayScheduler
from pyrometer.service.delivery import DeliverySettings, DeliveryWorker
from pyrometer.service.grouping import MAX_QUEUED_MESSAGES, GroupCommitter
from pyrometer.service.keys import KeyChecker
from pyrometer.service.models import Retrainer
from pyrometer.service.nurture import NurtureRunner, NurtureSettings
from pyrometer.service.rescore import resume_jobs
from pyrometer.service.runtime import Service
from pyrometer.service.scoring_pool import ScoringPool
from pyrometer.service.sla_watch import SlaWatcher
from pyrometer.service.store_health import StoreMonitor
from pyrometer.store.engine import WalCheckpointer


def create_app(
    service: Service,
    *,
    background: bool = True,
    max_body: int = DEFAULT_MAX_BODY,
    scoring_processes: int = 0,
    request_timeout: float | None = None,
    max_queued_messages: int = MAX_QUEUED_MESSAGES,
    cors_origins: Sequence[str] | None = None,
    docs: bool | None = None,
) -> FastAPI:
    """``scoring_processes``: processes that score ingest groups ahead of their write
    (:mod:`pyrometer.service.scoring_pool`); 0 scores in this process.
    ``request_timeout``: seconds before a request the store has not answered gets 503
    (default ``$PYROMETER_REQUEST_TIMEOUT``, else 30); ``max_queued_messages``: ingest
    messages waiting for a commit past which ingest answers 503. ``cors_origins``:
    origins allowed cross-origin requests (default ``$PYROMETER_CORS_ORIGINS``, else
    none); ``docs``: serve ``/docs`` and ``/openapi.json`` (default: unless
    ``PYROMETER_DOCS=off``)."""
    if cors_origins is None:
        cors_origins = cors_origins_from_env()
    if docs is None:
        docs = docs_from_env()
    if request_timeout is None:
        request_timeout = availability.request_timeout_from_env()
    monitor = StoreMonitor(service, timeout=min(5.0, request_timeout))
    # Read now: a bad PYROMETER_WEBHOOK_* setting stops the start, not the worker later.
    delivery_settings = DeliverySettings.from_env() if background else None
    nurture_settings = NurtureSettings.from_env() if background else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if scoring_processes > 0:
            service.scoring_pool = ScoringPool(service, scoring_processes)
        # The scheduler's leader (one process of ``serve --workers N``) resumes the
        # rescore jobs a stopped server left running.
        scheduler = DecayScheduler(service, lambda: resume_jobs(service)) if background else None
        watcher = SlaWatcher(service) if background else None
        retrainer = Retrainer(service) if background else None
        # Every process sends webhooks: claims exclude each other (pyrometer.service.delivery).
        sender = DeliveryWorker(service, delivery_settings) if delivery_settings else None
        # One process of a store runs nurture steps (a leader lock, as the SLA watcher).
        nurturer = NurtureRunner(service, nurture_settings) if nurture_settings else None
        monitor.probe()  # so /health knows the store's state from the start
        checkpointer = WalCheckpointer(service.engine)
        checkpointer.start()
        committer.start()
        if scheduler is not None:
            scheduler.start()
        if watcher is not None:
            watcher.start()
        if retrainer is not None:
            retrainer.start()
        if sender is not None:
            sender.start()
        if nurturer is not None:
            nurturer.start()
        try:
            with tuned_for_serving():  # the heap made so far is never walked again
                yield
        finally:
            if nurturer is not None:
                nurturer.stop()
            if sender is not None:
                sender.stop()
            committer.stop()
            checkpointer.stop()
            if scheduler is not None:
                scheduler.stop()
            if watcher is not None:
                watcher.stop()
            if retrainer is not None:
                retrainer.stop()
            pool, service.scoring_pool = service.scoring_pool, None
            if pool is not None:
                pool.close()
            monitor.close()
            app.state.keys.close()

    app = FastAPI(
        title="Pyrometer",
        version="0.1.0",
        description="Lead scoring: Segment-compatible ingest, live explained scores.",
        lifespan=lifespan,
        docs_url=None,  # served from installed files by install_docs, not from a CDN
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    if docs:
        install_docs(app)
    app.state.service = service
    app.state.keys = KeyChecker(service)
    app.state.background = background
    # Two group-commit threads: with two scoring processes each keeps one busy; without,
    # one can score its group ahead while the other writes (on SQLite the writes still
    # take turns). More threads make smaller groups of single events: 20% fewer of
    # those per second with three.
    committer = GroupCommitter(service, writers=2, max_queued=max_queued_messages)
    app.state.committer = committer
    for module in (routes_ingest, routes_leads, routes_playbook, routes_reports):
        app.include_router(module.router)
    app.include_router(routes_keys.router)
    app.include_router(routes_merge.router)
    app.include_router(routes_models.router)
    app.include_router(routes_reps.router)
    app.include_router(routes_touches.router)
    app.include_router(routes_webhooks.router)
    app.include_router(routes_nurture.router)
    app.include_router(routes_nurture.public)
    install_dashboard(app)  # the web pages at /, from this package's own files

    @app.exception_handler(FieldErrors)
    async def field_errors(_request: Request, exc: FieldErrors) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": safe_errors(exc.errors)})

    # Names the field and shows an excerpt, never the whole input (pyrometer.api.errors).
    app.add_exception_handler(RequestValidationError, validation_error)

    availability.install(app, monitor, request_timeout)
    app.add_middleware(BodyLimit, max_bytes=max_body)
    app.add_middleware(LeadPathIds)  # before routing: a lead id may hold an encoded /
    install_cors(app, cors_origins)  # outside all but the ids: preflights and 503s carry it
    app.add_middleware(RequestContext)  # outermost: ids and logs for every answer
    return app
