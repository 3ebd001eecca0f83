"""The API's documentation pages, served from installed files: ``/docs`` works offline.

FastAPI's own ``/docs`` page loads Swagger UI's JavaScript and CSS from a CDN, so on a
machine without Internet access (or behind a strict proxy) it shows a blank page. Here
the page references only ``/docs/assets/...``, served from the ``swagger-ui-bundle-v2``
package (Swagger UI 5, which reads the OpenAPI 3.1 FastAPI writes). Production may turn
the pages and ``/openapi.json`` off (``PYROMETER_DOCS=off``, ``serve --no-docs``).
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_VARIABLE = "PYROMETER_DOCS"
ASSETS = "/docs/assets"
_OFF = {"off", "0", "false", "no"}
_ON = {"on", "1", "true", "yes", ""}


def docs_from_env() -> bool:
    """``PYROMETER_DOCS``: ``off`` (or 0, false, no) turns the pages off; default on."""
    text = os.environ.get(DOCS_VARIABLE, "").strip().lower()
    if text in _OFF:
        return False
    if text in _ON:
        return True
    raise ValueError(f"{DOCS_VARIABLE}: expected on or off, got {text!r}")


def install_docs(app: FastAPI) -> None:
    """``GET /docs`` (Swagger UI) with its assets under ``/docs/assets``; the app must have
    been created with ``docs_url=None, redoc_url=None``."""
    from swagger_ui_bundle import swagger_ui_path  # the service extra installs it

    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
    title = f"{app.title} - API docs"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge from an outside host
        )
