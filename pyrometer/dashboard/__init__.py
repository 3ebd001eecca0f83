"""The web dashboard served at ``/``: sign-in, my queue, leads, a lead, reports, playbook.

:func:`install` mounts it on the API's app; every file it serves (templates, CSS,
scripts, the vendored htmx) comes from this package: no CDN, works with no network.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from pyrometer.dashboard import routes_auth, routes_live, routes_manage, routes_sales
from pyrometer.dashboard.throttle import Throttle
from pyrometer.dashboard.web import HERE, PageError, Redirect, redirect, render


def install(app: FastAPI) -> None:
    app.state.sign_in_throttle = Throttle()
    for module in (routes_auth, routes_sales, routes_live, routes_manage):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="dashboard-static")

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> HTMLResponse:
        context = {"status": exc.status, "message": exc.message}
        return render(request, "error.html", context, exc.status)

    @app.exception_handler(Redirect)
    async def must_go(request: Request, exc: Redirect) -> Response:
        return redirect(request, exc.location)
